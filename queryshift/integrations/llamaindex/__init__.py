"""LlamaIndex wrappers: put a queryshift adapter in front of what a LlamaIndex app already has.

* :class:`~queryshift.integrations.llamaindex.embedding.AdaptedEmbedding` wraps any ``BaseEmbedding``:
  query embeddings go through the adapter, text (document) embeddings pass through unchanged.
* :class:`~queryshift.integrations.llamaindex.retriever.AdaptedRetriever` wraps an existing retriever
  (``index.as_retriever()``) and hands it adapted query vectors; the index is never touched.
* :class:`~queryshift.integrations.llamaindex.embedding.SentenceTransformerEmbedding` is a
  sentence-transformers embed model that goes through queryshift's on-disk embedding cache.
* :func:`load_llamaindex_adapter` / :func:`export_llamaindex_adapter` convert adapters from/to
  the folders written by LlamaIndex's ``EmbeddingAdapterFinetuneEngine``
  (:mod:`queryshift.integrations.llamaindex.files`, which works without llama-index).

The wrapper classes are imported on first access, so the file interop (and ``import
queryshift.integrations.llamaindex.files``) never needs llama-index; the wrappers need
``pip install queryshift[llama-index]`` (``llama-index-core``).
"""

from __future__ import annotations

import importlib
from typing import Any

from queryshift.integrations.llamaindex.files import (
    export_llamaindex_adapter,
    load_llamaindex_adapter,
    resolve_adapter,
)

__all__ = [
    "AdaptedEmbedding",
    "AdaptedRetriever",
    "SentenceTransformerEmbedding",
    "resolve_adapter",
    # files.py
    "load_llamaindex_adapter",
    "export_llamaindex_adapter",
]

_LAZY = {
    "AdaptedEmbedding": "embedding",
    "SentenceTransformerEmbedding": "embedding",
    "AdaptedRetriever": "retriever",
}


def __getattr__(name: str) -> Any:
    """Import the llama-index wrappers on first use (PEP 562)."""
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
