"""LlamaIndex wrappers: put a queryshift adapter in front of what a LlamaIndex app already has.

* :class:`AdaptedEmbedding` wraps any ``BaseEmbedding``: query embeddings go through the
  adapter, text (document) embeddings pass through unchanged. Use it as the embed model of
  a query engine over an index that was built with the base model.
* :class:`AdaptedRetriever` wraps an existing retriever (``index.as_retriever()``): it embeds
  the query with the retriever's own embed model, adapts the vector and hands the inner
  retriever a ``QueryBundle`` that carries it. The index and its vector store are never touched.
* :class:`SentenceTransformerEmbedding` is a sentence-transformers embed model that goes
  through queryshift's on-disk embedding cache, so evaluating through LlamaIndex is fast.
* :func:`load_llamaindex_adapter` / :func:`export_llamaindex_adapter` convert adapters from/to
  the folders written by LlamaIndex's ``EmbeddingAdapterFinetuneEngine`` (re-exported from
  :mod:`queryshift.integrations.llamaindex_files`, which works without llama-index).

The adapter is applied with numpy; nothing on the query path imports torch.
Needs ``pip install queryshift[llama-index]`` (``llama-index-core``).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

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

from queryshift.adapters.base import QueryAdapter
from queryshift.adapters.io import CONFIG_NAME, load_adapter
from queryshift.embeddings import DEFAULT_MODEL, EmbeddingCache, SentenceTransformerEncoder
from queryshift.integrations.llamaindex_files import (
    LLAMAINDEX_CONFIG_NAME,
    export_llamaindex_adapter,
    load_llamaindex_adapter,
)

logger = logging.getLogger(__name__)

__all__ = [
    "AdaptedEmbedding",
    "AdaptedRetriever",
    "SentenceTransformerEmbedding",
    "resolve_adapter",
    # llamaindex_files.py
    "load_llamaindex_adapter",
    "export_llamaindex_adapter",
]

Embedding = list[float]
_NON_EMBEDDING_MODES = ("sparse", "text_search")


def resolve_adapter(adapter: QueryAdapter | str | Path) -> QueryAdapter:
    """Return ``adapter`` itself, or load it from a folder in either layout.

    A folder with ``adapter_config.json`` is a queryshift adapter (:func:`~queryshift.adapters.load_adapter`);
    one with only ``config.json`` + ``pytorch_model.bin`` is a LlamaIndex adapter
    (:func:`load_llamaindex_adapter`).

    Example:
        >>> from queryshift.adapters import LinearAdapter
        >>> resolve_adapter(LinearAdapter.identity(dim=4))
        LinearAdapter(kind='linear', dim=4)
    """
    if isinstance(adapter, (str, Path)):
        folder = Path(adapter)
        if not (folder / CONFIG_NAME).is_file() and (folder / LLAMAINDEX_CONFIG_NAME).is_file():
            return load_llamaindex_adapter(folder)
        return load_adapter(folder)
    if not isinstance(adapter, QueryAdapter):
        raise TypeError(
            f"adapter must be a queryshift adapter or a folder path, got {type(adapter).__name__}; "
            "load one with queryshift.load_adapter(path)"
        )
    return adapter


class AdaptedEmbedding(BaseEmbedding):
    """A LlamaIndex embed model whose query embeddings go through a queryshift adapter.

    Query embeddings (``get_query_embedding``, ``aget_query_embedding``, the aggregated
    ``get_agg_embedding_from_queries`` and :meth:`get_query_embedding_batch`) are computed by
    the wrapped model and then adapted with ``adapter.apply`` (numpy), which re-normalises
    them when ``adapter.config.normalize`` is set. Text embeddings — what an index stores for
    documents — come from the wrapped model unchanged and in the same batches, so an index
    built with either model holds identical vectors.

    Args:
        base_embed_model: The model the index was built with (any ``BaseEmbedding``).
        adapter: A queryshift adapter, or a folder holding one (queryshift or LlamaIndex layout).
        embed_batch_size: Texts per batch; ``None`` takes the wrapped model's.
        callback_manager: LlamaIndex callback manager; ``None`` for a fresh one.

    Raises:
        ValueError: ``base_embed_model`` is already an :class:`AdaptedEmbedding` (queries
            would be adapted twice).

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
    _adapter: Any = PrivateAttr()

    def __init__(
        self,
        base_embed_model: BaseEmbedding,
        adapter: QueryAdapter | str | Path,
        *,
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
        resolved = resolve_adapter(adapter)
        super().__init__(
            model_name=f"queryshift:{base_embed_model.model_name}",
            embed_batch_size=embed_batch_size or base_embed_model.embed_batch_size,
            callback_manager=callback_manager,
        )
        self._base_embed_model = base_embed_model
        self._adapter = resolved

    @classmethod
    def class_name(cls) -> str:
        return "QueryshiftAdaptedEmbedding"

    @property
    def base_embed_model(self) -> BaseEmbedding:
        """The wrapped model (it embeds documents, and queries before adaptation)."""
        return self._base_embed_model

    @property
    def adapter(self) -> QueryAdapter:
        return self._adapter

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
        return self._base_embed_model.get_text_embedding(text)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await self._base_embed_model.aget_text_embedding(text)

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._base_embed_model.get_text_embedding_batch(texts)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await self._base_embed_model.aget_text_embedding_batch(texts)


class AdaptedRetriever(BaseRetriever):
    """Wrap a retriever so that it searches with adapted query vectors; the index is untouched.

    For each query the wrapper embeds ``query_bundle.embedding_strs`` with the retriever's
    embed model (or takes ``query_bundle.embedding`` when it is already set — it must then be
    the *base* model's vector), applies the adapter, and calls the inner retriever with a copy
    of the bundle whose ``embedding`` is the adapted vector. Several embedding strings are
    adapted one by one and averaged, as LlamaIndex averages them. Works with any vector store
    behind the index (Qdrant, the in-memory default, ...), because only the query changes.

    Args:
        retriever: The retriever to wrap, e.g. ``index.as_retriever(similarity_top_k=10)``.
        adapter: A queryshift adapter, or a folder holding one (queryshift or LlamaIndex layout).
        embed_model: The model that embedded the index. ``None`` takes the retriever's own
            (``VectorIndexRetriever`` keeps it); required for retrievers that do not.

    Raises:
        TypeError: No embed model was given and the retriever does not carry one.
        ValueError: The embed model is an :class:`AdaptedEmbedding` (double adaptation), or the
            retriever queries in a mode that uses no dense vector (``sparse``, ``text_search``).

    Relations:
        :class:`AdaptedEmbedding` adapts inside the embed model instead (e.g. for query engines
        you do not construct yourself).

    Example:
        >>> from llama_index.core import VectorStoreIndex
        >>> from llama_index.core.embeddings import MockEmbedding
        >>> from llama_index.core.schema import TextNode
        >>> from queryshift.adapters import LinearAdapter
        >>> index = VectorStoreIndex([TextNode(text="hello", id_="n1")], embed_model=MockEmbedding(embed_dim=4))
        >>> retriever = AdaptedRetriever(index.as_retriever(similarity_top_k=1), LinearAdapter.identity(dim=4))
        >>> [n.node.node_id for n in retriever.retrieve("hi")]
        ['n1']
    """

    def __init__(
        self,
        retriever: BaseRetriever,
        adapter: QueryAdapter | str | Path,
        *,
        embed_model: BaseEmbedding | None = None,
    ) -> None:
        if not isinstance(retriever, BaseRetriever):
            raise TypeError(f"retriever must be a llama_index BaseRetriever, got {type(retriever).__name__}")
        if embed_model is None:
            embed_model = getattr(retriever, "_embed_model", None)
            if embed_model is None:
                raise TypeError(
                    f"{type(retriever).__name__} does not carry an embed model; pass embed_model= the model "
                    "that embedded the index"
                )
        if isinstance(embed_model, AdaptedEmbedding):
            raise ValueError(
                "the retriever's embed model is already an AdaptedEmbedding, so queries would be adapted "
                "twice; wrap a retriever built with the base embed model, or use the AdaptedEmbedding alone"
            )
        mode = getattr(retriever, "_vector_store_query_mode", None)
        if mode is not None and str(getattr(mode, "value", mode)) in _NON_EMBEDDING_MODES:
            raise ValueError(
                f"the retriever queries in mode {str(getattr(mode, 'value', mode))!r}, which uses no dense "
                "query vector, so an adapter cannot change its results; use the default or hybrid mode"
            )
        super().__init__(callback_manager=retriever.callback_manager)
        self._retriever = retriever
        self._adapter = resolve_adapter(adapter)
        self._embed_model = embed_model

    @property
    def retriever(self) -> BaseRetriever:
        """The wrapped retriever."""
        return self._retriever

    @property
    def adapter(self) -> QueryAdapter:
        return self._adapter

    @property
    def embed_model(self) -> BaseEmbedding:
        """The base model used to embed queries before adaptation."""
        return self._embed_model

    def _adapted_bundle(self, query_bundle: QueryBundle, base: list[Embedding]) -> QueryBundle:
        adapted = self._adapter.apply(np.asarray(base, dtype=np.float32))  # (n_strings, dim)
        vector = adapted[0] if len(adapted) == 1 else adapted.mean(axis=0)  # (dim,)
        return dataclasses.replace(query_bundle, embedding=vector.tolist())

    def _strings(self, query_bundle: QueryBundle) -> list[str]:
        strings = query_bundle.embedding_strs
        if not strings:
            raise ValueError(
                "the query bundle has neither text to embed (query_str and custom_embedding_strs are empty) "
                "nor a precomputed embedding"
            )
        return strings

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        if query_bundle.embedding is not None:
            base = [list(query_bundle.embedding)]
        else:
            base = [self._embed_model.get_query_embedding(s) for s in self._strings(query_bundle)]
        return self._retriever.retrieve(self._adapted_bundle(query_bundle, base))

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        if query_bundle.embedding is not None:
            base = [list(query_bundle.embedding)]
        else:
            base = [await self._embed_model.aget_query_embedding(s) for s in self._strings(query_bundle)]
        return await self._retriever.aretrieve(self._adapted_bundle(query_bundle, base))


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
