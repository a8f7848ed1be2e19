"""LangChain ``Embeddings`` with adapted queries, and a LangChain face for queryshift encoders."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from queryshift.errors import MissingDependencyError

try:
    from langchain_core.embeddings import Embeddings
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        "queryshift.integrations.langchain needs langchain-core: `pip install queryshift[langchain]`"
    ) from exc

from queryshift.adapters.base import QueryAdapter
from queryshift.adapters.io import load_adapter
from queryshift.embeddings import Encoder

logger = logging.getLogger(__name__)

__all__ = ["AdaptedEmbeddings", "EncoderEmbeddings"]


class AdaptedEmbeddings(Embeddings):
    """Any LangChain ``Embeddings`` whose query embeddings go through a queryshift adapter.

    ``embed_query`` / ``aembed_query`` embed with the wrapped model, then apply the adapter
    (numpy; it re-normalises when ``adapter.config.normalize`` is set). ``embed_documents`` /
    ``aembed_documents`` are the wrapped model's own calls, unchanged, so the vectors a
    vector store already holds (and those it adds) stay the base model's.

    Args:
        base: The embeddings the vector store was filled with (``HuggingFaceEmbeddings``,
            ``OpenAIEmbeddings``, :class:`EncoderEmbeddings`, ...).
        adapter: A queryshift adapter, or the directory of a saved one.

    Raises:
        ValueError: ``base`` is already an :class:`AdaptedEmbeddings` (queries would be adapted twice).

    Relations:
        :class:`queryshift.integrations.llamaindex.AdaptedEmbedding` is the LlamaIndex twin;
        :func:`queryshift.export.to_sentence_transformer` bakes the adapter into a model instead.

    Example:
        >>> import numpy as np
        >>> from langchain_core.embeddings import DeterministicFakeEmbedding
        >>> from queryshift.adapters import AdapterConfig, LinearAdapter
        >>> base = DeterministicFakeEmbedding(size=2)
        >>> swap = LinearAdapter(AdapterConfig(dim=2, normalize=False), weight=np.array([[0.0, 1.0], [1.0, 0.0]]))
        >>> embeddings = AdaptedEmbeddings(base, swap)
        >>> bool(np.allclose(embeddings.embed_query("q"), base.embed_query("q")[::-1]))
        True
        >>> embeddings.embed_documents(["d"]) == base.embed_documents(["d"])
        True
    """

    def __init__(self, base: Embeddings, adapter: QueryAdapter | str | Path) -> None:
        if isinstance(base, AdaptedEmbeddings):
            raise ValueError(
                "base is already an AdaptedEmbeddings; wrapping it again would adapt queries twice. "
                "Wrap its .base instead"
            )
        if not isinstance(base, Embeddings):
            raise TypeError(f"base must be a langchain_core Embeddings, got {type(base).__name__}")
        self.base = base
        self.adapter: QueryAdapter = load_adapter(adapter) if isinstance(adapter, (str, Path)) else adapter

    def _adapt(self, vector: list[float]) -> list[float]:
        return self.adapter.apply(np.asarray(vector, dtype=np.float32)).tolist()  # (dim,)

    def embed_query(self, text: str) -> list[float]:
        """The wrapped model's query embedding, adapted."""
        return self._adapt(self.base.embed_query(text))

    async def aembed_query(self, text: str) -> list[float]:
        """The wrapped model's async query embedding, adapted."""
        return self._adapt(await self.base.aembed_query(text))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """The wrapped model's document embeddings, unchanged."""
        return self.base.embed_documents(texts)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """The wrapped model's async document embeddings, unchanged."""
        return await self.base.aembed_documents(texts)

    def __repr__(self) -> str:
        return f"AdaptedEmbeddings(base={type(self.base).__name__}, adapter={self.adapter!r})"


class EncoderEmbeddings(Embeddings):
    """A queryshift :class:`~queryshift.embeddings.Encoder` as LangChain ``Embeddings``.

    With :class:`~queryshift.embeddings.SentenceTransformerEncoder` this embeds exactly as
    queryshift did while training (``encode_query`` / ``encode_document``, normalised), so a
    vector store filled through it holds the vectors the adapter was trained against. For live
    queries give it an encoder with ``cache=False``: the on-disk cache writes a file per call
    that brings new texts. ``langchain-huggingface``'s ``HuggingFaceEmbeddings`` does a similar job;
    queryshift does not depend on it because it pins ``huggingface-hub<2`` and installing it
    would downgrade the hub client under an installed transformers (2.4 → 1.33 here).

    Args:
        encoder: Anything with ``encode_queries`` / ``encode_documents`` returning ``(n, dim)`` float32.

    Example:
        >>> import numpy as np
        >>> class Ones:
        ...     model_id = "ones"
        ...     def encode_queries(self, texts): return np.ones((len(texts), 2), np.float32)
        ...     def encode_documents(self, texts): return np.zeros((len(texts), 2), np.float32)
        >>> EncoderEmbeddings(Ones()).embed_query("q"), EncoderEmbeddings(Ones()).embed_documents(["d"])
        ([1.0, 1.0], [[0.0, 0.0]])
    """

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder

    def embed_query(self, text: str) -> list[float]:
        return np.asarray(self.encoder.encode_queries([text]), dtype=np.float32)[0].tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return np.asarray(self.encoder.encode_documents(list(texts)), dtype=np.float32).tolist()

    def __repr__(self) -> str:
        return f"EncoderEmbeddings({getattr(self.encoder, 'model_id', type(self.encoder).__name__)!r})"
