"""A LlamaIndex retriever wrapper that searches with adapted query vectors.

:class:`AdaptedRetriever` wraps an existing retriever (``index.as_retriever()``): it embeds
the query with the retriever's own embed model, adapts the vector and hands the inner
retriever a ``QueryBundle`` that carries it. The index and its vector store are never touched.
Needs ``pip install queryshift[llama-index]`` (``llama-index-core``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from queryshift.adapters.base import QueryAdapter
from queryshift.errors import DimensionMismatchError
from queryshift.integrations.llamaindex._core import (
    BaseEmbedding,
    BaseRetriever,
    Embedding,
    NodeWithScore,
    QueryBundle,
)
from queryshift.integrations.llamaindex.embedding import AdaptedEmbedding
from queryshift.integrations.llamaindex.files import resolve_adapter

__all__ = ["AdaptedRetriever"]

_NON_EMBEDDING_MODES = ("sparse", "text_search")


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
        embed_model: The model that embeds the queries before adaptation: the one that embedded
            the index, or for a cross-model adapter the new query model. ``None`` takes the
            retriever's own (``VectorIndexRetriever`` keeps it); required for retrievers that do
            not, and for a cross-model adapter (the retriever's own model wrote the index).

    Raises:
        TypeError: No embed model was given and the retriever does not carry one, or a
            cross-model adapter comes without ``embed_model``.
        ValueError: The embed model is an :class:`AdaptedEmbedding` (double adaptation), or the
            retriever queries in a mode that uses no dense vector (``sparse``, ``text_search``).
        DimensionMismatchError: The index stores vectors of another dimension than the
            adapter's output (checked for LlamaIndex's in-memory store and for Qdrant), or (per
            query) the query vectors do not have the adapter's ``input_dim``.

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
        cross = resolve_adapter(adapter)
        if embed_model is None and cross.config.cross_model:
            raise TypeError(
                f"the adapter maps queries of dim={cross.input_dim} from another model into this index "
                f"(dim={cross.dim}); pass embed_model= the query model "
                f"({cross.config.base_model or 'the one it was trained for'}), not the index's own"
            )
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
        self._adapter = cross
        self._embed_model = embed_model
        stored = _stored_dim(retriever)
        if stored is not None and stored != self._adapter.dim:
            raise DimensionMismatchError(
                f"the index stores vectors of dim={stored} but the adapter maps queries into dim={self._adapter.dim} "
                f"(trained for {self._adapter.config.index_model or self._adapter.config.base_model!r}); "
                "use it only on an index embedded by the model it was trained for"
            )

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


def _stored_dim(retriever: BaseRetriever) -> int | None:
    """Dimension of the vectors behind ``retriever``, where the store can tell cheaply; else ``None``.

    Knows LlamaIndex's in-memory ``SimpleVectorStore`` (reads one stored vector) and
    ``QdrantVectorStore`` (reads the collection's dense vector size, when it has one unnamed or
    one named dense vector).
    """
    store = getattr(retriever, "_vector_store", None)
    embeddings = getattr(getattr(store, "data", None), "embedding_dict", None)
    if isinstance(embeddings, dict):
        first = next(iter(embeddings.values()), None)
        return None if first is None else len(first)
    client, name = getattr(store, "client", None), getattr(store, "collection_name", None)
    if client is None or not isinstance(name, str) or not hasattr(client, "get_collection"):
        return None
    if not client.collection_exists(name):
        return None
    vectors = client.get_collection(name).config.params.vectors
    if isinstance(vectors, dict):
        dense = getattr(store, "dense_vector_name", None)
        vectors = vectors.get(dense) if dense in vectors else None
    size = getattr(vectors, "size", None)
    return size if isinstance(size, int) else None
