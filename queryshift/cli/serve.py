"""`queryshift serve`: adapted query embeddings over the OpenAI embeddings API."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from queryshift.cli.common import user_errors


def _config_options(func):
    """One flag per :class:`~queryshift.serve.ServeConfig` field, named, defaulted and explained by it."""
    from queryshift.serve.config import ServeConfig

    for field in reversed(dataclasses.fields(ServeConfig)):
        text = field.metadata["help"]
        func = click.option(
            "--" + field.name.replace("_", "-"),
            field.name,
            type=type(field.default),
            default=field.default,
            show_default=True,
            help=f"{text[0].upper()}{text[1:]}.",
        )(func)
    return func


@click.command()
@click.option(
    "--adapter",
    "adapter_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Adapter directory (what `queryshift train -o` wrote).",
)
@click.option("--model", default=None, help="Base model, name or path (default: the adapter's base model).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8000, show_default=True, help="Port to listen on.")
@click.option("--device", default=None, help="torch device (default: sentence-transformers' choice).")
@_config_options
def serve(adapter_dir: Path, model: str | None, host: str, port: int, device: str | None, **limits) -> None:
    """Serve adapted query vectors (and base document vectors) over the OpenAI embeddings API.

    POST /v1/embeddings with {"input": ..., "model": ...}; add "task": "document" for base vectors.
    GET /health and /metrics (Prometheus).
    """
    from queryshift.serve import ServeConfig
    from queryshift.serve import serve as run_server

    with user_errors(ImportError):
        config = ServeConfig(**limits)
        click.echo(
            f"loading {adapter_dir} and its base model, then serving on http://{host}:{port}/v1/embeddings"
        )
        run_server(adapter_dir, model=model, host=host, port=port, config=config, device=device)
