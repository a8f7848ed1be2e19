"""Adapted retrieval on an existing Qdrant collection: wrap the client, change nothing else.

:class:`AdaptedQdrantClient` (and :class:`AsyncAdaptedQdrantClient` for
``AsyncQdrantClient``) holds the user's client and, in ``query_points``,
``query_batch_points`` and ``query_points_groups``, replaces every raw query vector by
``adapter.apply(vector)`` before forwarding the call; document vectors stored in the collection
are never touched, so no re-indexing is needed. What counts as a raw query vector (and why point
ids, sparse vectors, multi-vectors and inference objects pass through untouched) is described in
:mod:`queryshift.integrations.qdrant.requests`. Every other method (``upsert``, ``scroll``,
``retrieve``, ``get_collection``, ...) is the client's own, reached by attribute delegation.

The wrapper works the same for ``QdrantClient(":memory:")``, ``QdrantClient(path=...)`` and
``QdrantClient(url=...)``: it only calls the client's public methods and never looks at which
backend the client uses.

Before the first adapted query on a (collection, vector), the adapter is checked against the
collection's configuration (``get_collection``): dimension and distance must match, or a
:class:`~queryshift.errors.DimensionMismatchError` / :class:`~queryshift.errors.DistanceMismatchError`
is raised. The result is cached per (collection, vector) and re-done after a swap.

The low-level ``client.http`` / ``client.grpc_points`` APIs bypass the wrapper; use the
``query_points`` family.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
from qdrant_client import AsyncQdrantClient, QdrantClient
from qdrant_client.conversions import common_types as types
from qdrant_client.http import models

from queryshift.adapters.base import QueryAdapter
from queryshift.integrations.qdrant.requests import (
    VectorFn,
    rewrite_prefetches,
    rewrite_query,
    rewrite_request,
)
from queryshift.integrations.qdrant.routing import (
    AdapterKey,
    AdapterRegistry,
    AdapterTable,
    check_adapter_fits,
)

logger = logging.getLogger(__name__)

__all__ = ["AdaptedQdrantClient", "AsyncAdaptedQdrantClient", "vector_params"]

QueryInput = (
    types.PointId
    | list[float]
    | list[list[float]]
    | types.SparseVector
    | types.Query
    | types.NumpyArray
    | types.Document
    | types.Image
    | types.InferenceObject
    | None
)
"""Everything ``QdrantClient.query_points(query=...)`` accepts (qdrant-client 1.20)."""


def vector_params(
    collection_info: models.CollectionInfo, collection_name: str, using: str | None = None
) -> models.VectorParams:
    """The dense ``VectorParams`` that queries with ``using`` search in a collection.

    Args:
        collection_info: ``client.get_collection(collection_name)``.
        collection_name: Used in error messages.
        using: Vector name; ``None`` (or ``""``) for the unnamed default vector.

    Raises:
        ValueError: The collection has no dense vector of that name; the message lists the
            dense and sparse vector names it has.

    Example:
        >>> client = QdrantClient(":memory:")
        >>> _ = client.create_collection("docs", vectors_config=models.VectorParams(size=4, distance="Cosine"))
        >>> vector_params(client.get_collection("docs"), "docs").size
        4
    """
    params = collection_info.config.params
    vectors = params.vectors
    sparse = sorted((params.sparse_vectors or {}).keys())
    name = using or ""
    if isinstance(vectors, models.VectorParams):
        if not name:
            return vectors
        named: list[str] = []
    else:
        named = sorted((vectors or {}).keys())
        if name in (vectors or {}):
            return vectors[name]  # type: ignore[index]
    if name in sparse:
        raise ValueError(
            f"vector {name!r} of collection {collection_name!r} is a sparse vector; query adapters "
            "only apply to dense vectors, so configure the adapter for a dense vector name"
        )
    if not name:
        raise ValueError(
            f"collection {collection_name!r} has no unnamed vector (named dense vectors: {named}); "
            "pass using=NAME in the query and key the adapter as (collection, NAME)"
        )
    available = (
        "an unnamed vector only (use using=None)" if isinstance(vectors, models.VectorParams) else named
    )
    raise ValueError(
        f"collection {collection_name!r} has no dense vector named {name!r}; it has {available}"
        + (f" and sparse vectors {sparse}" if sparse else "")
    )


def _where(collection_name: str, using: str | None) -> str:
    return f"collection {collection_name!r}, " + (f"vector {using!r}" if using else "unnamed vector")


def _pending_usings(
    table: AdapterTable, collection_name: str, walk: Callable[[VectorFn], object]
) -> list[str | None]:
    """Vector names that hold raw dense vectors to adapt and whose adapter is not checked yet."""
    found: dict[str | None, None] = {}

    def record(using: str | None, vector: Any) -> Any:
        if table.resolve(collection_name, using) is not None and not table.is_verified(
            collection_name, using
        ):
            found[using or None] = None
        return vector  # unchanged: the walk copies nothing

    walk(record)
    return list(found)


def _verify(
    table: AdapterTable,
    collection_name: str,
    usings: Sequence[str | None],
    collection_info: models.CollectionInfo,
) -> None:
    for using in usings:
        adapter = table.resolve(collection_name, using)
        if adapter is None:
            continue
        params = vector_params(collection_info, collection_name, using)
        check_adapter_fits(
            adapter,
            size=params.size,
            distance=params.distance,
            multivector=params.multivector_config is not None,
            where=_where(collection_name, using),
        )
        table.mark_verified(collection_name, using, adapter)


def _adapting_fn(table: AdapterTable, collection_name: str) -> VectorFn:
    """``fn(using, vector)`` applying the adapter of this snapshot; vectors come back as ``list[float]``."""

    def adapt(using: str | None, vector: Any) -> Any:
        adapter = table.resolve(collection_name, using)
        if adapter is None:
            return vector
        adapted = adapter.apply(np.asarray(vector, dtype=np.float32))  # (dim,)
        return adapted.tolist()  # what qdrant-client itself sends for a numpy query

    return adapt


class _AdapterConfiguration:
    """The adapter-handling half shared by the sync and async wrappers (composition target)."""

    def __init__(self, adapters: Mapping[AdapterKey, QueryAdapter] | None) -> None:
        self.registry = AdapterRegistry(adapters)

    def resolve_configured(
        self, collection_name: str, using: str | None
    ) -> tuple[AdapterTable, QueryAdapter]:
        table = self.registry.table
        adapter = table.resolve(collection_name, using)
        if adapter is None:
            raise KeyError(
                f"no adapter configured for {_where(collection_name, using)}; "
                f"configured keys: {sorted(map(str, table.as_mapping()))}"
            )
        return table, adapter


class AdaptedQdrantClient:
    """A ``QdrantClient`` whose queries go through query adapters.

    Args:
        client: The user's ``QdrantClient`` (any backend: ``":memory:"``, ``path=``, ``url=``).
            It is used as is and stays usable on its own.
        adapters: Which adapter serves which vectors. Keys are ``"collection"`` (every dense
            vector of that collection without a more specific entry), ``("collection", "name")``
            (one named vector) or ``("collection", None)`` (the unnamed vector). Collections
            without an entry are queried unchanged.

    Relations:
        :class:`AsyncAdaptedQdrantClient` is the ``AsyncQdrantClient`` twin.
        :class:`~queryshift.integrations.qdrant.edge.AdaptedEdgeShard` does the same for an
        embedded qdrant-edge shard. Adapters come from :func:`~queryshift.training.train_adapter`
        or :func:`~queryshift.adapters.load_adapter`.

    Example:
        >>> import numpy as np
        >>> from qdrant_client import QdrantClient, models
        >>> from queryshift.adapters import LinearAdapter
        >>> client = QdrantClient(":memory:")
        >>> _ = client.create_collection("docs", vectors_config=models.VectorParams(size=4, distance="Cosine"))
        >>> vectors = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.8, 0.6, 0.0, 0.0]]
        >>> _ = client.upsert("docs", [models.PointStruct(id=i, vector=v) for i, v in enumerate(vectors)])
        >>> swap = LinearAdapter(LinearAdapter.identity(4).config, weight=np.eye(4)[[1, 0, 2, 3]])
        >>> adapted = AdaptedQdrantClient(client, adapters={"docs": swap})
        >>> adapted.query_points("docs", query=[1.0, 0.0, 0.0, 0.0], limit=1).points[0].id  # adapted
        1
        >>> adapted.query_points("docs", query=0, limit=1).points[0].id  # by id: stored vector, untouched
        2
        >>> adapted.count("docs").count  # every other method is the client's own
        3
    """

    def __init__(
        self, client: QdrantClient, adapters: Mapping[AdapterKey, QueryAdapter] | None = None
    ) -> None:
        if isinstance(client, AsyncQdrantClient):
            raise TypeError("AdaptedQdrantClient wraps a QdrantClient; use AsyncAdaptedQdrantClient")
        self._client = client
        self._config = _AdapterConfiguration(adapters)

    # -- adapter configuration -------------------------------------------------------------

    @property
    def client(self) -> QdrantClient:
        """The wrapped client (queries through it are not adapted)."""
        return self._client

    @property
    def adapters(self) -> Mapping[AdapterKey, QueryAdapter]:
        """A read-only view of the current adapter configuration."""
        return MappingProxyType(self._config.registry.table.as_mapping())

    def set_adapters(self, adapters: Mapping[AdapterKey, QueryAdapter] | None) -> None:
        """Replace the whole configuration atomically (queries in flight finish with the old one)."""
        self._config.registry.replace(adapters)

    def set_adapter(self, key: AdapterKey, adapter: QueryAdapter) -> None:
        """Add or swap the adapter for one key, atomically; the new one is checked on its first query."""
        self._config.registry.set(key, adapter)

    def remove_adapter(self, key: AdapterKey) -> None:
        """Stop adapting queries for ``key``; raises ``KeyError`` when it is not configured."""
        self._config.registry.remove(key)

    def adapter_for(self, collection_name: str, using: str | None = None) -> QueryAdapter | None:
        """The adapter a query on ``(collection_name, using)`` would use now, or ``None``."""
        return self._config.registry.table.resolve(collection_name, using)

    def verify(self, collection_name: str, using: str | None = None) -> QueryAdapter:
        """Check the configured adapter against the collection now instead of at the first query.

        Returns:
            The adapter that was checked.

        Raises:
            KeyError: No adapter is configured for this vector.
            DimensionMismatchError, DistanceMismatchError: It does not fit the collection.
        """
        table, adapter = self._config.resolve_configured(collection_name, using)
        _verify(table, collection_name, [using], self._client.get_collection(collection_name))
        return adapter

    def _prepare(self, table: AdapterTable, collection_name: str, walk: Callable[[VectorFn], Any]) -> Any:
        pending = _pending_usings(table, collection_name, walk)
        if pending:
            _verify(table, collection_name, pending, self._client.get_collection(collection_name))
        return walk(_adapting_fn(table, collection_name))

    # -- adapted query methods (signatures mirror qdrant-client 1.20) ------------------------

    def query_points(
        self,
        collection_name: str,
        query: QueryInput = None,
        using: str | None = None,
        prefetch: types.Prefetch | list[types.Prefetch] | None = None,
        query_filter: types.Filter | None = None,
        search_params: types.SearchParams | None = None,
        limit: int = 10,
        offset: int | None = None,
        with_payload: types.WithPayloadInterface = True,
        with_vectors: types.WithVector = False,
        score_threshold: float | None = None,
        lookup_from: types.LookupLocation | None = None,
        consistency: types.ReadConsistency | None = None,
        shard_key_selector: types.ShardKeySelector | None = None,
        timeout: int | None = None,
        **kwargs: Any,
    ) -> types.QueryResponse:
        """``QdrantClient.query_points`` with raw query vectors (also in ``prefetch``) adapted.

        Arguments and result are those of :meth:`qdrant_client.QdrantClient.query_points`;
        everything besides the vectors is forwarded unchanged, unknown ``kwargs`` included
        (the client rejects them).
        """
        table = self._config.registry.table  # one snapshot for every vector of this call
        if table.covers(collection_name):
            query, prefetch = self._prepare(
                table,
                collection_name,
                lambda fn: (rewrite_query(query, using, fn), rewrite_prefetches(prefetch, fn)),
            )
        return self._client.query_points(
            collection_name=collection_name,
            query=query,
            using=using,
            prefetch=prefetch,
            query_filter=query_filter,
            search_params=search_params,
            limit=limit,
            offset=offset,
            with_payload=with_payload,
            with_vectors=with_vectors,
            score_threshold=score_threshold,
            lookup_from=lookup_from,
            consistency=consistency,
            shard_key_selector=shard_key_selector,
            timeout=timeout,
            **kwargs,
        )

    def query_batch_points(
        self,
        collection_name: str,
        requests: Sequence[types.QueryRequest],
        consistency: types.ReadConsistency | None = None,
        timeout: int | None = None,
        **kwargs: Any,
    ) -> list[types.QueryResponse]:
        """``QdrantClient.query_batch_points`` with the raw query vectors of every request adapted.

        The whole batch uses one adapter snapshot, so a concurrent swap never splits a batch.
        """
        table = self._config.registry.table
        if table.covers(collection_name):
            requests = self._prepare(
                table, collection_name, lambda fn: [rewrite_request(r, fn) for r in requests]
            )
        return self._client.query_batch_points(
            collection_name=collection_name,
            requests=requests,
            consistency=consistency,
            timeout=timeout,
            **kwargs,
        )

    def query_points_groups(
        self,
        collection_name: str,
        group_by: str,
        query: QueryInput = None,
        using: str | None = None,
        prefetch: types.Prefetch | list[types.Prefetch] | None = None,
        query_filter: types.Filter | None = None,
        search_params: types.SearchParams | None = None,
        limit: int = 10,
        group_size: int = 3,
        with_payload: types.WithPayloadInterface = True,
        with_vectors: types.WithVector = False,
        score_threshold: float | None = None,
        with_lookup: types.WithLookupInterface | None = None,
        lookup_from: types.LookupLocation | None = None,
        consistency: types.ReadConsistency | None = None,
        shard_key_selector: types.ShardKeySelector | None = None,
        timeout: int | None = None,
        **kwargs: Any,
    ) -> types.GroupsResult:
        """``QdrantClient.query_points_groups`` with raw query vectors (also in ``prefetch``) adapted."""
        table = self._config.registry.table
        if table.covers(collection_name):
            query, prefetch = self._prepare(
                table,
                collection_name,
                lambda fn: (rewrite_query(query, using, fn), rewrite_prefetches(prefetch, fn)),
            )
        return self._client.query_points_groups(
            collection_name=collection_name,
            group_by=group_by,
            query=query,
            using=using,
            prefetch=prefetch,
            query_filter=query_filter,
            search_params=search_params,
            limit=limit,
            group_size=group_size,
            with_payload=with_payload,
            with_vectors=with_vectors,
            score_threshold=score_threshold,
            with_lookup=with_lookup,
            lookup_from=lookup_from,
            consistency=consistency,
            shard_key_selector=shard_key_selector,
            timeout=timeout,
            **kwargs,
        )

    # -- everything else is the client's ----------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._client, name)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | {n for n in dir(self._client) if not n.startswith("_")})

    def __repr__(self) -> str:
        keys = sorted(map(str, self._config.registry.table.as_mapping()))
        return f"AdaptedQdrantClient(client={self._client!r}, adapters={keys})"


class AsyncAdaptedQdrantClient:
    """An ``AsyncQdrantClient`` whose queries go through query adapters.

    Same behaviour and arguments as :class:`AdaptedQdrantClient`; the three query methods
    and :meth:`verify` are coroutines, and every other attribute is the wrapped client's.

    Example:
        >>> import asyncio
        >>> from qdrant_client import AsyncQdrantClient, models
        >>> from queryshift.adapters import LinearAdapter
        >>> async def main():
        ...     client = AsyncQdrantClient(":memory:")
        ...     await client.create_collection("docs", vectors_config=models.VectorParams(size=2, distance="Cosine"))
        ...     await client.upsert("docs", [models.PointStruct(id=1, vector=[1.0, 0.0])])
        ...     adapted = AsyncAdaptedQdrantClient(client, adapters={"docs": LinearAdapter.identity(2)})
        ...     return (await adapted.query_points("docs", query=[0.6, 0.8])).points[0].id
        >>> asyncio.run(main())
        1
    """

    def __init__(
        self, client: AsyncQdrantClient, adapters: Mapping[AdapterKey, QueryAdapter] | None = None
    ) -> None:
        if isinstance(client, QdrantClient):
            raise TypeError("AsyncAdaptedQdrantClient wraps an AsyncQdrantClient; use AdaptedQdrantClient")
        self._client = client
        self._config = _AdapterConfiguration(adapters)

    @property
    def client(self) -> AsyncQdrantClient:
        """The wrapped client (queries through it are not adapted)."""
        return self._client

    @property
    def adapters(self) -> Mapping[AdapterKey, QueryAdapter]:
        """A read-only view of the current adapter configuration."""
        return MappingProxyType(self._config.registry.table.as_mapping())

    def set_adapters(self, adapters: Mapping[AdapterKey, QueryAdapter] | None) -> None:
        """Replace the whole configuration atomically (queries in flight finish with the old one)."""
        self._config.registry.replace(adapters)

    def set_adapter(self, key: AdapterKey, adapter: QueryAdapter) -> None:
        """Add or swap the adapter for one key, atomically; the new one is checked on its first query."""
        self._config.registry.set(key, adapter)

    def remove_adapter(self, key: AdapterKey) -> None:
        """Stop adapting queries for ``key``; raises ``KeyError`` when it is not configured."""
        self._config.registry.remove(key)

    def adapter_for(self, collection_name: str, using: str | None = None) -> QueryAdapter | None:
        """The adapter a query on ``(collection_name, using)`` would use now, or ``None``."""
        return self._config.registry.table.resolve(collection_name, using)

    async def verify(self, collection_name: str, using: str | None = None) -> QueryAdapter:
        """Check the configured adapter against the collection now; see :meth:`AdaptedQdrantClient.verify`."""
        table, adapter = self._config.resolve_configured(collection_name, using)
        _verify(table, collection_name, [using], await self._client.get_collection(collection_name))
        return adapter

    async def _prepare(
        self, table: AdapterTable, collection_name: str, walk: Callable[[VectorFn], Any]
    ) -> Any:
        pending = _pending_usings(table, collection_name, walk)
        if pending:
            _verify(table, collection_name, pending, await self._client.get_collection(collection_name))
        return walk(_adapting_fn(table, collection_name))

    async def query_points(
        self,
        collection_name: str,
        query: QueryInput = None,
        using: str | None = None,
        prefetch: types.Prefetch | list[types.Prefetch] | None = None,
        query_filter: types.Filter | None = None,
        search_params: types.SearchParams | None = None,
        limit: int = 10,
        offset: int | None = None,
        with_payload: types.WithPayloadInterface = True,
        with_vectors: types.WithVector = False,
        score_threshold: float | None = None,
        lookup_from: types.LookupLocation | None = None,
        consistency: types.ReadConsistency | None = None,
        shard_key_selector: types.ShardKeySelector | None = None,
        timeout: int | None = None,
        **kwargs: Any,
    ) -> types.QueryResponse:
        """``AsyncQdrantClient.query_points`` with raw query vectors (also in ``prefetch``) adapted."""
        table = self._config.registry.table
        if table.covers(collection_name):
            query, prefetch = await self._prepare(
                table,
                collection_name,
                lambda fn: (rewrite_query(query, using, fn), rewrite_prefetches(prefetch, fn)),
            )
        return await self._client.query_points(
            collection_name=collection_name,
            query=query,
            using=using,
            prefetch=prefetch,
            query_filter=query_filter,
            search_params=search_params,
            limit=limit,
            offset=offset,
            with_payload=with_payload,
            with_vectors=with_vectors,
            score_threshold=score_threshold,
            lookup_from=lookup_from,
            consistency=consistency,
            shard_key_selector=shard_key_selector,
            timeout=timeout,
            **kwargs,
        )

    async def query_batch_points(
        self,
        collection_name: str,
        requests: Sequence[types.QueryRequest],
        consistency: types.ReadConsistency | None = None,
        timeout: int | None = None,
        **kwargs: Any,
    ) -> list[types.QueryResponse]:
        """``AsyncQdrantClient.query_batch_points`` with the raw query vectors of every request adapted."""
        table = self._config.registry.table
        if table.covers(collection_name):
            requests = await self._prepare(
                table, collection_name, lambda fn: [rewrite_request(r, fn) for r in requests]
            )
        return await self._client.query_batch_points(
            collection_name=collection_name,
            requests=requests,
            consistency=consistency,
            timeout=timeout,
            **kwargs,
        )

    async def query_points_groups(
        self,
        collection_name: str,
        group_by: str,
        query: QueryInput = None,
        using: str | None = None,
        prefetch: types.Prefetch | list[types.Prefetch] | None = None,
        query_filter: types.Filter | None = None,
        search_params: types.SearchParams | None = None,
        limit: int = 10,
        group_size: int = 3,
        with_payload: types.WithPayloadInterface = True,
        with_vectors: types.WithVector = False,
        score_threshold: float | None = None,
        with_lookup: types.WithLookupInterface | None = None,
        lookup_from: types.LookupLocation | None = None,
        consistency: types.ReadConsistency | None = None,
        shard_key_selector: types.ShardKeySelector | None = None,
        timeout: int | None = None,
        **kwargs: Any,
    ) -> types.GroupsResult:
        """``AsyncQdrantClient.query_points_groups`` with raw query vectors (also in ``prefetch``) adapted."""
        table = self._config.registry.table
        if table.covers(collection_name):
            query, prefetch = await self._prepare(
                table,
                collection_name,
                lambda fn: (rewrite_query(query, using, fn), rewrite_prefetches(prefetch, fn)),
            )
        return await self._client.query_points_groups(
            collection_name=collection_name,
            group_by=group_by,
            query=query,
            using=using,
            prefetch=prefetch,
            query_filter=query_filter,
            search_params=search_params,
            limit=limit,
            group_size=group_size,
            with_payload=with_payload,
            with_vectors=with_vectors,
            score_threshold=score_threshold,
            with_lookup=with_lookup,
            lookup_from=lookup_from,
            consistency=consistency,
            shard_key_selector=shard_key_selector,
            timeout=timeout,
            **kwargs,
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._client, name)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | {n for n in dir(self._client) if not n.startswith("_")})

    def __repr__(self) -> str:
        keys = sorted(map(str, self._config.registry.table.as_mapping()))
        return f"AsyncAdaptedQdrantClient(client={self._client!r}, adapters={keys})"
