"""The llama-index-core names the wrappers build on, imported in one place.

One ``try`` here gives every wrapper module the same clear error when the ``llama-index`` extra is
missing; :mod:`queryshift.integrations.llamaindex.files` does not import this module, so the file
interop works without llama-index.
"""

from __future__ import annotations

from queryshift.errors import MissingDependencyError

try:
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.schema import NodeWithScore, QueryBundle
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        "queryshift.integrations.llamaindex needs llama-index-core: `pip install queryshift[llama-index]`"
    ) from exc

__all__ = ["BaseEmbedding", "BaseRetriever", "CallbackManager", "NodeWithScore", "PrivateAttr", "QueryBundle"]

Embedding = list[float]
