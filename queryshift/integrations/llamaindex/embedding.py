"""LlamaIndex embed models: an adapter in front of any embed model, and a cached sentence-transformers one.

* :class:`AdaptedEmbedding` wraps any ``BaseEmbedding``: query embeddings go through the
  adapter, text (document) embeddings pass through unchanged. Use it as the embed model of
  a query engine over an index that was built with the base model.
* :class:`SentenceTransformerEmbedding` is a sentence-transformers embed model that goes
  through queryshift's on-disk embedding cache, so evaluating through LlamaIndex is fast.

The adapter is applied with numpy; nothing on the query path imports torch.
Needs ``pip install queryshift[llama-index]`` (``llama-index-core``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from queryshift.adapters.base import QueryAdapter
from queryshift.embeddings import DEFAULT_MODEL, EmbeddingCache, SentenceTransformerEncoder
from queryshift.errors import DimensionMismatchError
from queryshift.integrations.llamaindex._core import BaseEmbedding, CallbackManager, Embedding, PrivateAttr
from queryshift.integrations.llamaindex.files import resolve_adapter

logger = logging.getLogger(__name__)

__all__ = ["AdaptedEmbedding", "SentenceTransformerEmbedding"]


class AdaptedEmbedding(BaseEmbedding):
    """A LlamaIndex embed model whose query embeddings go through a queryshift adapter.

    Query embeddings (``get_query_embedding``, ``aget_query_embedding``, the aggregated
    ``get_agg_embedding_from_queries`` and :meth:`get_query_embedding_batch`) are computed by
    the wrapped model and then adapted with ``adapter.apply`` (numpy), which re-normalises
    them when ``adapter.config.normalize`` is set. Text embeddings — what an index stores for
    documents — come from the wrapped model unchanged and in the same batches, so an index
    built with either model holds identical vectors.

    A cross-model adapter (``adapter.config.cross_model``: queries from a new model, index
    written by an old one) embeds queries with ``base_embed_model`` (the new model) and texts
    with ``document_embed_model`` (the old one), so documents added later land in the index's space.

    Args:
        base_embed_model: The model the index was built with (any ``BaseEmbedding``); for a
            cross-model adapter, the model that embeds the queries.
        adapter: A queryshift adapter, or a folder holding one (queryshift or LlamaIndex layout).
        document_embed_model: The model that embeds texts (documents) when it is not
            ``base_embed_model``: required by a cross-model adapter, whose queries and documents
            come from different models. ``None``: ``base_embed_model`` embeds both.
        embed_batch_size: Texts per batch; ``None`` takes the wrapped model's.
        callback_manager: LlamaIndex callback manager; ``None`` for a fresh one.

    Raises:
        ValueError: ``base_embed_model`` is already an :class:`AdaptedEmbedding` (queries
            would be adapted twice), or a cross-model adapter comes without ``document_embed_model``.
        DimensionMismatchError: (when embedding) query vectors of another dimension than the
            adapter's ``input_dim``, or texts of another dimension than its ``dim``.

    Relations:
        :class:`AdaptedRetriever` adapts at the retriever instead, leaving the embed model alone.
        LlamaIndex's own ``AdapterEmbeddingModel`` does the same job with a torch adapter.

    Example:
        >>> import numpy as np
        >>> from llama_index.core.embeddings import MockEmbedding
        >>> from queryshift.adapters import AdapterConfig, LinearAdapter
        >>> double_x = LinearAdapter(AdapterConfig(dim=2, normalize=False), weight=np.diag([2.0, 0.0]))
        >>> model = AdaptedEmbedding(MockEmbedding(embed_dim=2), double_x)  # Mock embeds all as [0.5, 0.5]
        >>> model.get_query_embedding("q"), model.get_text_embedding("doc")
        ([1.0, 0.0], [0.5, 0.5])
    """

    _base_embed_model: BaseEmbedding = PrivateAttr()
    _document_embed_model: BaseEmbedding = PrivateAttr()
    _adapter: Any = PrivateAttr()

    def __init__(
        self,
        base_embed_model: BaseEmbedding,
        adapter: QueryAdapter | str | Path,
        *,
        document_embed_model: BaseEmbedding | None = None,
        embed_batch_size: int | None = None,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        if isinstance(base_embed_model, AdaptedEmbedding):
            raise ValueError(
                "base_embed_model is already an AdaptedEmbedding; wrapping it again would adapt queries "
                "twice. Wrap its .base_embed_model instead"
            )
        if not isinstance(base_embed_model, BaseEmbedding):
            raise TypeError(
                f"base_embed_model must be a llama_index BaseEmbedding, got {type(base_embed_model).__name__}"
            )
        if isinstance(document_embed_model, AdaptedEmbedding):
            raise ValueError(
                "document_embed_model is an AdaptedEmbedding; pass the model that embedded the index"
            )
        if document_embed_model is not None and not isinstance(document_embed_model, BaseEmbedding):
            raise TypeError(
                "document_embed_model must be a llama_index BaseEmbedding, got "
                f"{type(document_embed_model).__name__}"
            )
        resolved = resolve_adapter(adapter)
        if resolved.config.cross_model and document_embed_model is None:
            index = resolved.config.index_model or "the model that embedded the index"
            raise ValueError(
                f"the adapter maps queries of dim={resolved.input_dim} into an index of dim={resolved.dim} written "
                f"by another model; pass document_embed_model= {index} so that texts land in the index's space"
            )
        super().__init__(
            model_name=f"queryshift:{base_embed_model.model_name}",
            embed_batch_size=embed_batch_size or base_embed_model.embed_batch_size,
            callback_manager=callback_manager,
        )
        self._base_embed_model = base_embed_model
        self._document_embed_model = document_embed_model or base_embed_model
        self._adapter = resolved

    @classmethod
    def class_name(cls) -> str:
        return "QueryshiftAdaptedEmbedding"

    @property
    def base_embed_model(self) -> BaseEmbedding:
        """The wrapped model (it embeds documents, and queries before adaptation)."""
        return self._base_embed_model

    @property
    def document_embed_model(self) -> BaseEmbedding:
        """The model that embeds texts: ``document_embed_model`` when given, else the base model."""
        return self._document_embed_model

    @property
    def adapter(self) -> QueryAdapter:
        return self._adapter

    def _documents(self, vectors: list[Embedding]) -> list[Embedding]:
        """``vectors`` after checking they have the adapter's output dim (the index's)."""
        if vectors and len(vectors[0]) != self._adapter.dim:
            raise DimensionMismatchError(
                f"document_embed_model returns dim={len(vectors[0])} vectors, but the adapter maps queries "
                f"into dim={self._adapter.dim}; texts must be embedded by the model that embedded the index"
            )
        return vectors

    def _adapt(self, vectors: list[Embedding]) -> list[Embedding]:
        batch = np.asarray(vectors, dtype=np.float32)  # (n, dim)
        return self._adapter.apply(batch).tolist()

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._adapt([self._base_embed_model.get_query_embedding(query)])[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return self._adapt([await self._base_embed_model.aget_query_embedding(query)])[0]

    def get_query_embedding_batch(self, queries: list[str]) -> list[Embedding]:
        """Embed and adapt many queries; the adapter runs once on the whole ``(n, dim)`` batch.

        When the wrapped model is a :class:`SentenceTransformerEmbedding` the queries are also
        embedded as one batch; other models embed them one by one (``BaseEmbedding`` has no
        batch query call).
        """
        if not queries:
            return []
        if isinstance(self._base_embed_model, SentenceTransformerEmbedding):
            base = self._base_embed_model.get_query_embedding_batch(queries)
        else:
            base = [self._base_embed_model.get_query_embedding(q) for q in queries]
        return self._adapt(base)

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._documents([self._document_embed_model.get_text_embedding(text)])[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return self._documents([await self._document_embed_model.aget_text_embedding(text)])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._documents(self._document_embed_model.get_text_embedding_batch(texts))

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._documents(await self._document_embed_model.aget_text_embedding_batch(texts))


class SentenceTransformerEmbedding(BaseEmbedding):
    """A sentence-transformers embed model that embeds through queryshift's on-disk cache.

    Each text is embedded at most once per model: queries with ``encode_query`` and
    documents with ``encode_document`` (so models with prompts work as intended), cached by
    :class:`~queryshift.embeddings.SentenceTransformerEncoder`. Building an index over a corpus
    queryshift has already embedded — or evaluating the same questions again — costs no model
    calls. The model itself is loaded on first use.

    Every call that meets an uncached text writes one small cache shard; for a long-running
    service that embeds new user queries one at a time, pass ``cache=False``.

    Args:
        model: Model name or local path (the default resolves to the bundled copy when installed).
        device: ``"cpu"``, ``"cuda"``, ...; ``None`` lets sentence-transformers pick.
        batch_size: Texts per forward pass, also LlamaIndex's ``embed_batch_size``.
        normalize: L2-normalise vectors.
        cache: An :class:`~queryshift.embeddings.EmbeddingCache`, ``None`` for the default folder
            (``$QUERYSHIFT_CACHE_DIR``), or ``False`` to disable caching.
        callback_manager: LlamaIndex callback manager.

    Relations:
        LlamaIndex's ``HuggingFaceEmbedding`` (``llama-index-embeddings-huggingface``) embeds with
        the same models but without a cache. :meth:`from_encoder` shares an existing encoder.

    Example:
        >>> model = SentenceTransformerEmbedding(cache=False)
        >>> model.model_name
        'sentence-transformers/all-MiniLM-L6-v2'
    """

    _encoder: Any = PrivateAttr()

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        device: str | None = None,
        batch_size: int = 64,
        normalize: bool = True,
        cache: EmbeddingCache | None | bool = None,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        super().__init__(model_name=model, embed_batch_size=batch_size, callback_manager=callback_manager)
        self._encoder = SentenceTransformerEncoder(
            model, device=device, batch_size=batch_size, normalize=normalize, cache=cache
        )

    @classmethod
    def from_encoder(
        cls, encoder: SentenceTransformerEncoder, *, callback_manager: CallbackManager | None = None
    ) -> SentenceTransformerEmbedding:
        """Wrap an existing encoder (sharing its loaded model and cache)."""
        embedding = cls(
            encoder.model_name,
            batch_size=encoder.batch_size,
            cache=False,
            callback_manager=callback_manager,
        )
        embedding._encoder = encoder
        return embedding

    @classmethod
    def class_name(cls) -> str:
        return "QueryshiftSentenceTransformerEmbedding"

    @property
    def encoder(self) -> SentenceTransformerEncoder:
        """The queryshift encoder doing the work (use it with :func:`~queryshift.embeddings.embed_dataset`)."""
        return self._encoder

    def get_query_embedding_batch(self, queries: list[str]) -> list[Embedding]:
        """Embed many queries in one cached batch (no LlamaIndex callbacks are fired)."""
        if not queries:
            return []
        return self._encoder.encode_queries(list(queries)).tolist()

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._encoder.encode_queries([query])[0].tolist()

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._encoder.encode_documents([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        if not texts:
            return []
        return self._encoder.encode_documents(list(texts)).tolist()

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._get_text_embeddings(texts)
