"""The ``queryshift`` command line: parses flags, builds configs, calls the public API."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import click

from queryshift.data import load_dataset
from queryshift.embeddings import DEFAULT_MODEL, SentenceTransformerEncoder, embed_dataset, load_vectors
from queryshift.errors import QueryshiftError

logger = logging.getLogger(__name__)

__all__ = ["main"]

_FORMATS = click.Choice(["auto", "llamaindex", "beir", "pairs"])


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


def _training_options(func):
    """Flags mapping one-to-one onto :class:`~queryshift.training.TrainingConfig` fields."""
    from queryshift.training.config import TrainingConfig

    defaults = TrainingConfig()
    options = [
        click.option(
            "--adapter",
            "adapter",
            type=click.Choice(["linear", "low_rank", "residual_mlp"]),
            default=defaults.adapter,
            show_default=True,
            help="Adapter kind.",
        ),
        click.option(
            "--rank", type=int, default=defaults.rank, show_default=True, help="Rank of a low_rank adapter."
        ),
        click.option(
            "--hidden-dim",
            type=int,
            default=defaults.hidden_dim,
            show_default=True,
            help="Hidden width of residual_mlp.",
        ),
        click.option(
            "--bias/--no-bias",
            default=defaults.bias,
            show_default=True,
            help="Learn a bias (a prior for documents seen in training).",
        ),
        click.option("--epochs", type=int, default=defaults.epochs, show_default=True),
        click.option("--batch-size", type=int, default=defaults.batch_size, show_default=True),
        click.option("--learning-rate", type=float, default=defaults.learning_rate, show_default=True),
        click.option("--weight-decay", type=float, default=defaults.weight_decay, show_default=True),
        click.option("--temperature", type=float, default=defaults.temperature, show_default=True),
        click.option(
            "--negatives",
            type=click.Choice(["in_batch", "corpus"]),
            default=defaults.negatives,
            show_default=True,
        ),
        click.option(
            "--hard-negatives",
            type=int,
            default=defaults.hard_negatives,
            show_default=True,
            help="Mined from the base ranking, per query.",
        ),
        click.option(
            "--validation",
            type=click.Choice(["both", "query", "document", "none"]),
            default=defaults.validation,
            show_default=True,
            help="Held-out split(s) that choose the adapter.",
        ),
        click.option(
            "--validation-fraction", type=float, default=defaults.validation_fraction, show_default=True
        ),
        click.option(
            "--refit/--no-refit",
            default=defaults.refit,
            show_default=True,
            help="Retrain the chosen candidate on all training queries.",
        ),
        click.option(
            "--distance",
            type=click.Choice(["cosine", "dot", "euclid"]),
            default=defaults.distance,
            show_default=True,
            help="Distance of your collection.",
        ),
        click.option("--seed", type=int, default=defaults.seed, show_default=True),
        click.option("--device", default=None, help="torch device (default: cuda when available)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _training_config(params: dict):
    from queryshift.training.config import TrainingConfig

    fields = {f.name for f in dataclasses.fields(TrainingConfig)}
    return TrainingConfig(**{k: v for k, v in params.items() if k in fields})


def _encoder(model: str, *, device: str | None = None) -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder(model, device=device, show_progress_bar=True)


def _embed(dataset, encoder, query_vectors: Path | None, document_vectors: Path | None):
    return embed_dataset(
        dataset,
        encoder,
        query_vectors=load_vectors(query_vectors) if query_vectors else None,
        document_vectors=load_vectors(document_vectors) if document_vectors else None,
    )


@click.group()
@click.version_option(package_name="queryshift")
@click.option("-v", "--verbose", count=True, help="-v for progress logs, -vv for debug logs.")
def main(verbose: int) -> None:
    """queryshift: better retrieval on your data without re-embedding the index."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@main.command()
@click.argument("data", type=click.Path(exists=True, path_type=Path), required=False)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), required=True, help="Adapter directory to write."
)
@click.option(
    "--qdrant-path",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Local Qdrant storage folder (QdrantClient(path=...)).",
)
@click.option(
    "--qdrant-url", default=None, help="Qdrant URL, e.g. http://localhost:6333; API key from $QDRANT_API_KEY."
)
@click.option(
    "--collection", default=None, help="Train on the stored vectors of this collection (needs --pairs)."
)
@click.option(
    "--using", "vector_name", default=None, help="Named vector of the collection (default: unnamed vector)."
)
@click.option(
    "--pairs",
    "pairs_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='JSONL: {"query": text, "point_id": id} or {"query": text, "point_ids": [ids]}.',
)
@click.option("--text-field", default=None, help="Payload key holding each point's text (informational).")
@click.option(
    "--max-documents", type=int, default=None, help="Scroll at most this many points as the corpus."
)
@click.option("--format", "data_format", type=_FORMATS, default="auto", show_default=True)
@click.option("--split-name", default="train", show_default=True, help="BEIR qrels split to train on.")
@click.option(
    "--holdout",
    type=click.Choice(["none", "query", "document"]),
    default="none",
    show_default=True,
    help="Hold out test queries (saved with the adapter; `evaluate` uses them).",
)
@click.option(
    "--test-fraction",
    type=float,
    default=0.5,
    show_default=True,
    help="Share of queries held out by --holdout.",
)
@click.option(
    "--model",
    default=DEFAULT_MODEL,
    show_default=True,
    help="sentence-transformers model name or local path.",
)
@click.option(
    "--query-vectors",
    type=click.Path(exists=True, path_type=Path),
    help="Precomputed query vectors (.npy + .ids.txt).",
)
@click.option(
    "--document-vectors",
    type=click.Path(exists=True, path_type=Path),
    help="Precomputed document vectors (.npy + .ids.txt).",
)
@_training_options
def train(
    data,
    output,
    qdrant_path,
    qdrant_url,
    collection,
    vector_name,
    pairs_path,
    text_field,
    max_documents,
    data_format,
    split_name,
    holdout,
    test_fraction,
    model,
    query_vectors,
    document_vectors,
    **params,
):
    """Train a query adapter on DATA (or on a Qdrant collection's stored vectors) and save it to --output."""
    from queryshift.pipeline import train_and_save
    from queryshift.splits import seen_document_rate, split_dataset

    try:
        config = _training_config(params)
        if collection is not None:
            if data is not None:
                raise click.UsageError("give DATA or --collection with --pairs, not both")
            _train_from_qdrant(
                config,
                output,
                qdrant_path=qdrant_path,
                qdrant_url=qdrant_url,
                collection=collection,
                vector_name=vector_name,
                pairs_path=pairs_path,
                text_field=text_field,
                max_documents=max_documents,
                holdout=holdout,
                test_fraction=test_fraction,
                model=model,
            )
            return
        if data is None:
            raise click.UsageError("give DATA, or --collection with --pairs and --qdrant-path/--qdrant-url")
        dataset = load_dataset(data, format=data_format, split=split_name)
        heldout = None
        seen = None
        if holdout != "none":
            split = split_dataset(dataset, regime=holdout, test_fraction=test_fraction, seed=config.seed)
            train_set, test_set = split.apply(dataset)
            heldout = split.test
            seen = seen_document_rate(train_set, test_set)
        else:
            train_set = dataset
        click.echo(
            f"Training on {train_set.num_queries} queries over {train_set.num_documents} documents ({dataset.name})"
        )
        embedded = _embed(train_set, _encoder(model, device=config.device), query_vectors, document_vectors)
        adapter, result = train_and_save(
            embedded,
            config,
            output,
            base_model=model,
            heldout=heldout,
            split_regime=holdout,
            show_progress_bar=True,
        )
    except click.ClickException:
        raise
    except (QueryshiftError, ValueError, FileNotFoundError, OSError) as exc:
        raise _fail(exc) from exc
    _report_training(adapter, result, seen, heldout, holdout, data, output)


def _report_training(adapter, result, seen, heldout, holdout, data, output) -> None:
    """What `train` prints after training: validation figures, choice, regime, where it was saved."""
    from queryshift.pipeline import describe_regime

    click.echo(f"Trained {adapter!r} in {result.seconds:.1f}s on {result.device}")
    for name, figures in result.validation.items():
        base, adapted = figures["base"], figures["adapted"]
        shown = "  ".join(f"{m} {base[m]:.4f} -> {adapted[m]:.4f}" for m in ("ndcg@10", "mrr@10", "hit@5"))
        click.echo(f"validation ({name} split, {figures['queries']} queries): {shown}")
    if result.is_identity:
        click.echo(
            "No candidate beat the identity on validation: the saved adapter is the identity (no change)."
        )
    else:
        click.echo(f"Chosen: epoch {result.chosen.epoch}, interpolation alpha {result.chosen.alpha}")
    if seen is not None:
        click.echo(describe_regime(seen, heldout=True))
    else:
        click.echo(describe_regime(result.revisit_rate, heldout=False))
    if heldout:
        click.echo(
            f"Held out {len(heldout)} queries ({holdout} split); run `queryshift evaluate {data or 'DATA'} --adapter {output}`."
        )
    click.echo(f"Saved to {output}")


def _train_from_qdrant(
    config,
    output,
    *,
    qdrant_path,
    qdrant_url,
    collection,
    vector_name,
    pairs_path,
    text_field,
    max_documents,
    holdout,
    test_fraction,
    model,
) -> None:
    """`train --collection`: document vectors come from Qdrant; only query texts are embedded."""
    import os

    from qdrant_client import QdrantClient

    from queryshift.integrations.qdrant_source import collection_distance, load_training_data_from_qdrant
    from queryshift.pipeline import train_and_save
    from queryshift.splits import seen_document_rate, split_dataset

    if pairs_path is None:
        raise click.BadParameter("--collection needs --pairs", param_hint="--pairs")
    if (qdrant_path is None) == (qdrant_url is None):
        raise click.BadParameter(
            "give exactly one of --qdrant-path or --qdrant-url", param_hint="--qdrant-path"
        )
    if qdrant_path:
        client = QdrantClient(path=str(qdrant_path))
    else:
        client = QdrantClient(url=qdrant_url, api_key=os.environ.get("QDRANT_API_KEY"))
    try:
        config = dataclasses.replace(
            config, distance=collection_distance(client, collection, using=vector_name)
        )
        embedded = load_training_data_from_qdrant(
            client,
            collection,
            pairs_path,
            encoder=_encoder(model, device=config.device),
            using=vector_name,
            text_field=text_field,
            max_documents=max_documents,
        )
        heldout, seen = None, None
        if holdout != "none":
            split = split_dataset(
                embedded.dataset, regime=holdout, test_fraction=test_fraction, seed=config.seed
            )
            seen = seen_document_rate(*split.apply(embedded.dataset))
            heldout, embedded = split.test, embedded.subset(split.train)
        click.echo(
            f"Training on {len(embedded.query_ids)} queries over {len(embedded.document_ids)} points of {collection!r}"
        )
        adapter, result = train_and_save(
            embedded,
            config,
            output,
            base_model=model,
            heldout=heldout,
            split_regime=holdout,
            show_progress_bar=True,
        )
    finally:
        client.close()
    _report_training(adapter, result, seen, heldout, holdout, None, output)


@main.command()
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--adapter", "adapter_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True
)
@click.option("--format", "data_format", type=_FORMATS, default="auto", show_default=True)
@click.option("--split-name", default="test", show_default=True, help="BEIR qrels split to evaluate on.")
@click.option(
    "--queries",
    "which",
    type=click.Choice(["auto", "heldout", "all"]),
    default="auto",
    show_default=True,
    help="auto: the adapter's held-out queries when it has some, else all.",
)
@click.option("--model", default=None, help="Embedding model (default: the adapter's base model).")
@click.option("--query-vectors", type=click.Path(exists=True, path_type=Path))
@click.option("--document-vectors", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def evaluate(
    data, adapter_dir, data_format, split_name, which, model, query_vectors, document_vectors, as_json
):
    """Compare base and adapted retrieval on DATA (whole corpus searched, documents untouched)."""
    from queryshift.adapters import load_adapter
    from queryshift.pipeline import compare_adapter, heldout_subset, read_heldout

    try:
        adapter = load_adapter(adapter_dir)
        model = model or adapter.config.base_model or DEFAULT_MODEL
        if adapter.config.base_model and model != adapter.config.base_model:
            raise click.BadParameter(
                f"the adapter was trained on vectors of {adapter.config.base_model!r}, not {model!r}",
                param_hint="--model",
            )
        dataset = load_dataset(data, format=data_format, split=split_name)
        heldout = read_heldout(adapter_dir)
        if which == "heldout" and heldout is None:
            raise click.BadParameter(
                f"{adapter_dir} has no held-out queries (train with --holdout)", param_hint="--queries"
            )
        if which != "all" and heldout is not None:
            dataset = heldout_subset(dataset, heldout, adapter_dir)
        encoder = SentenceTransformerEncoder(model, show_progress_bar=not as_json)
        embedded = _embed(dataset, encoder, query_vectors, document_vectors)
        comparison = compare_adapter(adapter, embedded)
    except click.ClickException:
        raise
    except (QueryshiftError, ValueError, FileNotFoundError, OSError) as exc:
        raise _fail(exc) from exc
    if as_json:
        click.echo(
            json.dumps({"data": str(data), "adapter": str(adapter_dir), **comparison.to_dict()}, indent=2)
        )
    else:
        click.echo(
            f"{dataset.name}: {'held-out' if heldout is not None and which != 'all' else 'all'} queries"
        )
        click.echo(comparison.render())


@main.command()
@click.argument("adapter_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def inspect(adapter_dir, as_json):
    """Show an adapter's kind, shape, base model and training summary."""
    from queryshift.adapters import load_adapter

    try:
        adapter = load_adapter(adapter_dir)
    except (QueryshiftError, ValueError, FileNotFoundError) as exc:
        raise _fail(exc) from exc
    info = adapter.config.to_dict()
    size = sum(p.stat().st_size for p in Path(adapter_dir).iterdir() if p.is_file())
    if as_json:
        click.echo(json.dumps({**info, "size_bytes": size}, indent=2, sort_keys=True))
        return
    click.echo(f"{adapter!r}  ({size / 1024:.1f} KiB on disk)")
    for key in (
        "kind",
        "dim",
        "rank",
        "hidden_dim",
        "base_model",
        "distance",
        "normalize",
        "format_version",
        "queryshift_version",
    ):
        if info.get(key) is not None:
            click.echo(f"  {key}: {info[key]}")
    training = info.get("training") or {}
    for name, figures in (training.get("validation") or {}).items():
        click.echo(
            f"  validation[{name}]: ndcg@10 {figures['base']['ndcg@10']:.4f} -> {figures['adapted']['ndcg@10']:.4f}"
        )
    for key in ("split_regime", "data_fingerprint", "train_queries", "chosen_epoch", "chosen_alpha"):
        if key in training:
            click.echo(f"  {key}: {training[key]}")


@main.command()
@click.option(
    "--data",
    "data_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Local copy of run-llama/finetune-embedding data/ (default: download into the cache).",
)
@click.option("--model", default=DEFAULT_MODEL, show_default=True)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=Path("queryshift-demo"),
    show_default=True,
    help="Where the two demo adapters are saved.",
)
def demo(data_dir, model, output):
    """Train and evaluate adapters on public 10-K data: Lyft->Uber, and an Uber same-corpus split."""
    from queryshift.demo import example_data_dir
    from queryshift.pipeline import compare_adapter, train_and_save
    from queryshift.splits import split_by_query
    from queryshift.training.config import TrainingConfig

    try:
        folder = example_data_dir(data_dir)
        lyft = load_dataset(folder / "train_dataset.json")
        uber = load_dataset(folder / "val_dataset.json")
        encoder = _encoder(model)
        config = TrainingConfig()
        split = split_by_query(uber, test_fraction=0.5, seed=config.seed)
        settings = [
            ("Lyft -> Uber (train on Lyft questions, test on all Uber questions)", lyft, uber, "cross", None),
            (
                "Uber same-corpus (train on one question per chunk, test on the rest)",
                uber.subset(split.train),
                uber.subset(split.test),
                "query",
                split.test,
            ),
        ]
        for index, (title, train_set, test_set, regime, heldout) in enumerate(settings, start=1):
            click.echo(f"\n== {title}")
            train_embedded = embed_dataset(train_set, encoder)
            adapter, result = train_and_save(
                train_embedded,
                config,
                output / f"setting-{index}",
                base_model=model,
                heldout=heldout,
                split_regime=regime,
            )
            click.echo(
                f"trained in {result.seconds:.1f}s; chose epoch {result.chosen.epoch}, alpha {result.chosen.alpha}"
            )
            click.echo(compare_adapter(adapter, embed_dataset(test_set, encoder)).render())
    except (QueryshiftError, ValueError, FileNotFoundError, OSError) as exc:
        raise _fail(exc) from exc
    click.echo(f"\nAdapters saved under {output}/")


if __name__ == "__main__":  # pragma: no cover
    main()


# Commands of the fine-tune path live in their own module; importing it registers them on `main`.
from queryshift import cli_finetune  # noqa: E402, F401
