"""`queryshift export`: an adapter as a model other runtimes load (sentence-transformers)."""

from __future__ import annotations

from pathlib import Path

import click

from queryshift.cli.common import user_errors


@click.command()
@click.argument(
    "adapter_dir", metavar="ADAPTER", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--sentence-transformers",
    "st_out",
    type=click.Path(path_type=Path),
    required=True,
    help="Write a sentence-transformers model directory here (replaced atomically if it exists).",
)
@click.option("--model", default=None, help="Base model, name or path (default: the adapter's base model).")
@click.option(
    "--normalize-input/--no-normalize-input",
    default=True,
    show_default=True,
    help="L2-normalise base query vectors before the adapter, as queryshift trains.",
)
def export(adapter_dir: Path, st_out: Path, model: str | None, normalize_input: bool) -> None:
    """Export ADAPTER as a sentence-transformers model: adapted encode_query, base encode_document."""
    from queryshift.adapters import load_adapter
    from queryshift.export import needs_trust_remote_code, to_sentence_transformer

    with user_errors():
        adapter = load_adapter(adapter_dir)
        path = to_sentence_transformer(adapter, model, st_out, normalize_input=normalize_input)
    trust = ", trust_remote_code=True" if needs_trust_remote_code(adapter) else ""
    click.echo(
        f"wrote {path} ({adapter.config.kind} adapter); load it with SentenceTransformer({str(path)!r}{trust})"
    )
