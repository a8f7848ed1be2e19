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
    """Flags mapping one-to-one onto :class:`~queryshift.training.TrainingConfig` fields.

    Each flag's name, default and (unless given here) help come from the field itself, so the
    CLI cannot drift from the config.
    """
    from queryshift.training.config import TrainingConfig

    defaults = TrainingConfig()
    fields = {f.name: f for f in dataclasses.fields(TrainingConfig)}

    def option(name: str, **extra):
        flag = "--" + name.replace("_", "-")
        default = getattr(defaults, name)
        if isinstance(default, bool):
            flag = f"{flag}/--no-{flag[2:]}"
        text = fields[name].metadata["help"]
        extra.setdefault("help", f"{text[0].upper()}{text[1:]}.")
        return click.option(flag, name, default=default, show_default=default is not None, **extra)

    options = [
        option("adapter", type=click.Choice(["linear", "low_rank", "residual_mlp"]), help="Adapter kind."),
        option("rank", type=int, help="Rank of a low_rank adapter."),
        option("hidden_dim", type=int, help="Hidden width of residual_mlp."),
        option("bias", help="Learn a bias (a prior for documents seen in training)."),
        option("epochs", type=int),
        option("batch_size", type=int),
        option("learning_rate", type=float),
        option("weight_decay", type=float),
        option("temperature", type=float),
        option(
            "negatives",
            type=click.Choice(["in_batch", "corpus"]),
            help="in_batch, or corpus (every document).",
        ),
        option("hard_negatives", type=int, help="Mined from the base ranking, per query."),
        option("pseudo_queries", type=int),
        option("pseudo_max_documents", type=int),
        option(
            "validation",
            type=click.Choice(["both", "query", "document", "none"]),
            help="Held-out split(s) that choose the adapter.",
        ),
        option("validation_fraction", type=float),
        option("refit", help="Retrain the chosen candidate on all training queries."),
        option(
            "distance", type=click.Choice(["cosine", "dot", "euclid"]), help="Distance of your collection."
        ),
        option("seed", type=int),
        option("device", help="torch device (default: cuda when available)."),
    ]
    for decorator in reversed(options):
        func = decorator(func)
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
    from queryshift.pipeline import compare_adapter, pseudo_queries_for, train_and_save
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
            test_embedded = embed_dataset(test_set, encoder)
            # Pseudo-queries come from the documents' text only: the test questions are never seen.
            pseudo = pseudo_queries_for(encoder, [train_embedded, test_embedded], config)
            adapter, result = train_and_save(
                train_embedded,
                config,
                output / f"setting-{index}",
                base_model=model,
                heldout=heldout,
                split_regime=regime,
                pseudo=pseudo,
            )
            click.echo(
                f"trained in {result.seconds:.1f}s with {result.pseudo_queries} pseudo-queries from the documents; "
                f"chose epoch {result.chosen.epoch}, alpha {result.chosen.alpha}"
            )
            click.echo(compare_adapter(adapter, test_embedded).render())
    except (QueryshiftError, ValueError, FileNotFoundError, OSError) as exc:
        raise _fail(exc) from exc
    click.echo(f"\nAdapters saved under {output}/")


if __name__ == "__main__":  # pragma: no cover
    main()


# `train` and the fine-tune path's commands live in their own modules; importing them registers them
# on `main`.
from queryshift import cli_finetune, cli_train  # noqa: E402, F401
