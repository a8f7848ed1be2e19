"""Loading a model and an adapter for serving, and running the server with uvicorn."""

from __future__ import annotations

import logging
from pathlib import Path

from queryshift.adapters.base import QueryAdapter
from queryshift.adapters.io import CONFIG_NAME, load_adapter
from queryshift.embeddings import SentenceTransformerEncoder, model_name_from_config
from queryshift.errors import DimensionMismatchError
from queryshift.serve.config import ServeConfig

logger = logging.getLogger(__name__)

__all__ = ["load_service", "serve"]


def load_service(
    adapter: QueryAdapter | str | Path,
    *,
    model: str | None = None,
    device: str | None = None,
    batch_size: int = 64,
) -> tuple[SentenceTransformerEncoder, QueryAdapter]:
    """Load the adapter and its base model, and embed one text so the first request is not slow.

    Args:
        adapter: An adapter or its directory.
        model: The base model (name or local path); ``None`` takes the adapter's ``base_model``,
            read as a model name (:func:`~queryshift.embeddings.model_name_from_config`).
        device: Torch device for the model; ``None`` lets sentence-transformers choose.
        batch_size: Texts per forward pass inside the encoder.

    Returns:
        ``(encoder, adapter)``, ready for :func:`~queryshift.serve.create_app`. The encoder does
        not use the on-disk embedding cache: a server would grow it with every new query.

    Raises:
        ValueError: Neither ``model`` nor the adapter's config names a base model.
        AdapterFormatError: The config's ``base_model`` is a path, not a name (pass ``model``).
        DimensionMismatchError: The model's vectors do not have the adapter's dimension.
    """
    source = Path(adapter) / CONFIG_NAME if isinstance(adapter, (str, Path)) else "the adapter's config"
    if isinstance(adapter, (str, Path)):
        adapter = load_adapter(adapter)
    if model is None and adapter.config.base_model:  # a recorded name, never a path to load from
        model = model_name_from_config(adapter.config.base_model, source=source)
    if model is None:
        raise ValueError("the adapter config records no base model; pass --model NAME_OR_PATH")
    encoder = SentenceTransformerEncoder(model, device=device, batch_size=batch_size, cache=False)
    dim = encoder.encode_queries(["warm-up"]).shape[1]
    if dim != adapter.input_dim:
        raise DimensionMismatchError(
            f"model {model!r} returns dim={dim} vectors, but the adapter expects dim={adapter.input_dim}"
        )
    return encoder, adapter


def serve(
    adapter: QueryAdapter | str | Path,
    *,
    model: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    config: ServeConfig | None = None,
    device: str | None = None,
    log_level: str = "info",
) -> None:
    """Load everything, then serve until interrupted (what ``queryshift serve`` runs)."""
    import uvicorn

    from queryshift.serve.app import create_app

    config = config or ServeConfig()
    encoder, adapter = load_service(adapter, model=model, device=device, batch_size=config.max_batch_size)
    app = create_app(encoder, adapter, config=config, model_name=encoder.model_name)
    uvicorn.run(app, host=host, port=port, log_level=log_level, workers=1)
