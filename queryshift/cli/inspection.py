"""`queryshift evaluate` and `queryshift inspect`: measure a saved adapter, show what it is."""

from __future__ import annotations

import json
from pathlib import Path

import click

from queryshift.cli.common import FORMATS, embed, user_errors
from queryshift.data import load_dataset
from queryshift.embeddings import DEFAULT_MODEL, SentenceTransformerEncoder, model_name_from_config


@click.command()
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--adapter", "adapter_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True
)
@click.option("--format", "data_format", type=FORMATS, default="auto", show_default=True)
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
    from queryshift.adapters.io import CONFIG_NAME
    from queryshift.pipeline import compare_adapter, heldout_subset, read_heldout

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
        dataset = load_dataset(data, format=data_format, split=split_name)
        heldout = read_heldout(adapter_dir)
        if which == "heldout" and heldout is None:
            raise click.BadParameter(
                f"{adapter_dir} has no held-out queries (train with --holdout)", param_hint="--queries"
            )
        if which != "all" and heldout is not None:
            dataset = heldout_subset(dataset, heldout, adapter_dir)
        encoder = SentenceTransformerEncoder(model, show_progress_bar=not as_json)
        embedded = embed(dataset, encoder, query_vectors, document_vectors)
        comparison = compare_adapter(adapter, embedded)
    if as_json:
        click.echo(
            json.dumps({"data": str(data), "adapter": str(adapter_dir), **comparison.to_dict()}, indent=2)
        )
    else:
        click.echo(
            f"{dataset.name}: {'held-out' if heldout is not None and which != 'all' else 'all'} queries"
        )
        click.echo(comparison.render())


@click.command()
@click.argument("adapter_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
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
