"""`queryshift evaluate` and `queryshift inspect`: measure a saved adapter, show what it is."""

from __future__ import annotations

import json
from pathlib import Path

import click

from queryshift.cli.common import corpus_option, embed, format_option, user_errors
from queryshift.data import load_dataset
from queryshift.embeddings import DEFAULT_MODEL, SentenceTransformerEncoder, model_name_from_config


@click.command()
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--adapter",
    "adapter_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Adapter directory (what `queryshift train -o` wrote).",
)
@format_option
@corpus_option
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
@click.option(
    "--query-vectors",
    type=click.Path(exists=True, path_type=Path),
    help="Precomputed query vectors (.npy + .ids.txt) instead of embedding DATA's queries.",
)
@click.option(
    "--document-vectors",
    type=click.Path(exists=True, path_type=Path),
    help="Precomputed document vectors (.npy + .ids.txt) instead of embedding DATA's documents.",
)
@click.option(
    "--index-model",
    default=None,
    help="Cross-model adapters: the old model (default: the adapter's index_model); it embeds the "
    "documents (unless --document-vectors) and its own queries are the reference row.",
)
@click.option(
    "--reembed", is_flag=True, help="Cross-model adapters: also report a full re-embed with the new model."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def evaluate(
    data,
    adapter_dir,
    data_format,
    corpus,
    split_name,
    which,
    model,
    query_vectors,
    document_vectors,
    index_model,
    reembed,
    as_json,
):
    """Compare base and adapted retrieval on DATA (whole corpus searched, documents untouched).

    For a cross-model adapter the rows are the old model's own queries (when the old model is
    at hand), the new model's queries through the adapter and, with --reembed, the new model
    with every document re-embedded.
    """
    from queryshift.adapters import load_adapter
    from queryshift.adapters.io import CONFIG_NAME
    from queryshift.pipeline import compare_adapter, heldout_subset, read_heldout, training_queries_in

    with user_errors():
        adapter = load_adapter(adapter_dir)
        trained = adapter.config.base_model
        if model is None:  # the recorded base_model is a name, never a path to load from
            source = Path(adapter_dir) / CONFIG_NAME
            model = model_name_from_config(trained, source=source) if trained else DEFAULT_MODEL
        elif trained and model not in (trained, trained.split("@", 1)[0]):
            raise click.BadParameter(
                f"the adapter was trained on vectors of {trained!r}, not {model!r}", param_hint="--model"
            )
        dataset = load_dataset(data, format=data_format, split=split_name, corpus=corpus)
        heldout = read_heldout(adapter_dir)
        if which == "heldout" and heldout is None:
            raise click.BadParameter(
                f"{adapter_dir} has no held-out queries (train with --holdout)", param_hint="--queries"
            )
        if which != "all" and heldout is not None:
            dataset = heldout_subset(dataset, heldout, adapter_dir)
        seen = training_queries_in(adapter, dataset, heldout)
        if seen:
            # stderr, so that --json output stays clean
            click.echo(
                f"Warning: {seen} of the {dataset.num_queries} queries scored are the adapter's own training "
                "queries (its training summary's data fingerprint matches): their gain overstates what new "
                "queries will see. Score held-out queries (train with --holdout) or other data.",
                err=True,
            )
        encoder = SentenceTransformerEncoder(model, show_progress_bar=not as_json)
        if adapter.config.cross_model:
            comparison = _cross_model_comparison(
                adapter, dataset, encoder, index_model, query_vectors, document_vectors, reembed, as_json
            )
        else:
            if index_model or reembed:
                raise click.BadParameter(
                    "only for a cross-model adapter (queries of one model, index of another)",
                    param_hint="--index-model / --reembed",
                )
            embedded = embed(dataset, encoder, query_vectors, document_vectors)
            comparison = compare_adapter(adapter, embedded)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "data": str(data),
                    "adapter": str(adapter_dir),
                    "training_queries_scored": seen,
                    **comparison.to_dict(),
                },
                indent=2,
            )
        )
    else:
        click.echo(
            f"{dataset.name}: {'held-out' if heldout is not None and which != 'all' else 'all'} queries"
        )
        click.echo(comparison.render())


@click.command()
@click.argument("adapter_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--json", "as_json", is_flag=True, help="Print the whole adapter_config.json (and size) as JSON."
)
def inspect(adapter_dir, as_json):
    """Show an adapter's kind, shape (input and output dims), models and training summary."""
    from queryshift.adapters import load_adapter

    with user_errors():
        adapter = load_adapter(adapter_dir)
    info = adapter.config.to_dict()
    size = sum(p.stat().st_size for p in Path(adapter_dir).iterdir() if p.is_file())
    if as_json:
        click.echo(json.dumps({**info, "size_bytes": size}, indent=2, sort_keys=True))
        return
    click.echo(f"{adapter!r}  ({size / 1024:.1f} KiB on disk)")
    if adapter.config.cross_model:
        queries, index = adapter.config.base_model or "?", adapter.config.index_model or "?"
        click.echo(
            f"  cross-model: queries of {queries} (dim {adapter.input_dim}) -> index of {index} (dim {adapter.dim})"
        )
    for key in (
        "kind",
        "input_dim",
        "dim",
        "rank",
        "hidden_dim",
        "base_model",
        "index_model",
        "distance",
        "normalize",
        "format_version",
        "queryshift_version",
    ):
        if info.get(key) is not None:
            click.echo(f"  {key}: {info[key]}")
    training = info.get("training") or {}  # free-form: shown when in the form train writes, never trusted
    validation = training.get("validation")
    for name, figures in (validation if isinstance(validation, dict) else {}).items():
        click.echo(f"  validation[{name}]: {_ndcg_change(figures)}")
    for key in ("split_regime", "data_fingerprint", "train_queries", "chosen_epoch", "chosen_alpha"):
        if key in training:
            click.echo(f"  {key}: {training[key]}")


def _ndcg_change(figures: object) -> str:
    """``ndcg@10 base -> adapted`` from a training summary entry, if it has that form."""
    try:
        base, adapted = figures["base"]["ndcg@10"], figures["adapted"]["ndcg@10"]  # type: ignore[index]
        return f"ndcg@10 {float(base):.4f} -> {float(adapted):.4f}"
    except (KeyError, TypeError, ValueError):
        return "(not in the expected form)"


def _cross_model_comparison(
    adapter, dataset, encoder, index_model, query_vectors, document_vectors, reembed, quiet
):
    """:func:`~queryshift.migrate.compare_cross_model` with the old model and stored vectors the flags name."""
    from queryshift.embeddings import load_vectors
    from queryshift.migrate import compare_cross_model

    if query_vectors is not None:
        raise click.BadParameter(
            "a cross-model adapter is evaluated from query texts (each model embeds them)",
            param_hint="--query-vectors",
        )
    if index_model is None and document_vectors is None and adapter.config.index_model:
        recorded = adapter.config.index_model
        try:  # a recorded name, never a path (as for base_model)
            index_model = model_name_from_config(recorded, source="the adapter's index_model")
        except ValueError as exc:
            raise click.BadParameter(f"{exc} (here: --index-model)", param_hint="--index-model") from None
    old = SentenceTransformerEncoder(index_model, show_progress_bar=not quiet) if index_model else None
    stored = load_vectors(document_vectors) if document_vectors is not None else None
    return compare_cross_model(
        adapter, dataset, new_encoder=encoder, old_encoder=old, document_vectors=stored, reembed=reembed
    )
