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

Aliases: a query through an alias uses the adapter keyed by the alias, else the one keyed by the
collection the alias names, and the adapter is checked against that collection. Qdrant does not
notify clients when an alias moves, so the wrapper re-reads the aliases (``get_aliases``) every
``alias_ttl`` seconds (default 10), right after alias changes made through it, and on
:meth:`~AdaptedQdrantClient.refresh`; a query through an alias that now names another collection
is checked again against it (e.g. after ``queryshift reindex`` switched it to a Dot collection).

A multi-vector query (late interaction) on a vector that has an adapter is refused with a
:class:`~queryshift.errors.DimensionMismatchError`: adapters map single vectors, and searching
unadapted would be silent.

The low-level ``client.http`` / ``client.grpc_points`` APIs bypass the wrapper; use the
``query_points`` family.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Generator, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from qdrant_client import AsyncQdrantClient, QdrantClient
from qdrant_client.conversions import common_types as types
from qdrant_client.http import models

from queryshift.adapters.base import QueryAdapter
from queryshift.errors import DimensionMismatchError
from queryshift.integrations.qdrant.requests import (
    VectorFn,
    is_dense_vector,
    is_multi_vector,
    rewrite_prefetches,
    rewrite_query,
    rewrite_request,
)
from queryshift.integrations.qdrant.routing import (
    UNRESOLVED,
    AdapterKey,
    AdapterRegistry,
    AdapterTable,
    AliasMap,
    ResolvedAdapters,
    adapted_vector,
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


def _forbidden(exc: Exception) -> bool:
    """Whether a client call failed for lack of permission (REST 403, gRPC PERMISSION_DENIED)."""
    if getattr(exc, "status_code", None) == 403:
        return True
    code = getattr(exc, "code", None)
    return callable(code) and getattr(code(), "name", None) == "PERMISSION_DENIED"


def _key_for(table: AdapterTable, collection_name: str, target: str) -> str | None:
    """The adapter key serving a query on ``collection_name``: its own entry first, else that of the
    collection it is an alias of (``target``); ``None`` when neither has adapters."""
    if table.covers(collection_name):
        return collection_name
    return target if table.covers(target) else None


def _pending_usings(
    table: AdapterTable, collection_name: str, target: str, walk: Callable[[VectorFn], object]
) -> list[str | None]:
    """Vector names that hold raw vectors to adapt and whose adapter is not checked against ``target`` yet."""
    found: dict[str | None, None] = {}

    def record(using: str | None, vector: Any) -> Any:
        if table.resolve(collection_name, using) is not None and not table.is_verified(
            collection_name, using, target=target
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
    *,
    target: str,
) -> None:
    """Check the adapters serving ``collection_name`` against ``target``, the collection it names."""
    through = "" if target == collection_name else f" (queried through alias {collection_name!r})"
    for using in usings:
        adapter = table.resolve(collection_name, using)
        if adapter is None:
            continue
        params = vector_params(collection_info, target, using)
        check_adapter_fits(
            adapter,
            size=params.size,
            distance=params.distance,
            multivector=params.multivector_config is not None,
            where=_where(target, using) + through,
        )
        table.mark_verified(collection_name, using, adapter, target=target)


def _adapting_fn(table: AdapterTable, collection_name: str) -> VectorFn:
    """``fn(using, vector)`` applying the adapter of this snapshot; vectors come back as ``list[float]``."""

    def adapt(using: str | None, vector: Any) -> Any:
        adapter = table.resolve(collection_name, using)
        if adapter is None:
            return vector
        if is_multi_vector(vector):
            raise DimensionMismatchError(
                f"{_where(collection_name, using)} has a query adapter, but the query is a multi-vector; "
                "adapters map single (dim,) query vectors: send one vector, or remove the adapter of this vector"
            )
        return adapted_vector(adapter, vector)  # a list: what qdrant-client itself sends for a numpy query

    return adapt


def _rewrite_query_and_prefetch(arguments: dict[str, Any], fn: VectorFn) -> dict[str, Any]:
    """``query_points`` / ``query_points_groups`` arguments with raw vectors in query and prefetch adapted."""
    query = rewrite_query(arguments["query"], arguments["using"], fn)
    return {**arguments, "query": query, "prefetch": rewrite_prefetches(arguments["prefetch"], fn)}


def _rewrite_requests(arguments: dict[str, Any], fn: VectorFn) -> dict[str, Any]:
    """``query_batch_points`` arguments with every request's raw vectors adapted."""
    return {**arguments, "requests": [rewrite_request(r, fn) for r in arguments["requests"]]}


def _arguments(local: dict[str, Any]) -> dict[str, Any]:
    """A query method's ``locals()`` as the keyword arguments to forward, unknown ``kwargs`` last."""
    named = {k: v for k, v in local.items() if k not in ("self", "kwargs", "__class__")}
    return {**named, **local["kwargs"]}


_Rewrite = Callable[[dict[str, Any], VectorFn], dict[str, Any]]
_Steps = Generator[tuple[Any, ...], Any, dict[str, Any]]
"""A call's preparation: yields ``(client method name, *arguments)`` when it needs that call's result
sent back (``("get_collection", name)``, ``("get_aliases",)``)."""
_ALIAS_CHANGES = frozenset(
    {"update_collection_aliases", "create_collection", "recreate_collection", "delete_collection"}
)
"""Client methods that can move or drop an alias: the wrapper re-reads aliases after them."""


class _AdaptedClientBase:
    """Everything the sync and async wrappers share; only how a call reaches the client differs.

    Each query method builds its argument dict and hands it to ``_call``, which runs
    :meth:`_prepared` (check pending adapters, adapt the vectors) and forwards the call:
    :class:`AdaptedQdrantClient` runs it directly, :class:`AsyncAdaptedQdrantClient` awaits
    ``get_collection`` and the query. Signatures mirror qdrant-client 1.20.
    """

    _wrong_client: type = object  # the other kind of client, refused with a pointer to _right_wrapper
    _client_name = ""
    _right_wrapper = ""

    def __init__(
        self,
        client: QdrantClient | AsyncQdrantClient,
        adapters: Mapping[AdapterKey, QueryAdapter] | None = None,
        *,
        alias_ttl: float | None = 10.0,
    ) -> None:
        if isinstance(client, self._wrong_client):
            raise TypeError(f"{type(self).__name__} wraps a {self._client_name}; use {self._right_wrapper}")
        self._client = client
        self._registry = AdapterRegistry(adapters)
        self._aliases = AliasMap(alias_ttl)
        self._resolved = ResolvedAdapters()  # for the fast path of plain-vector queries

    # -- adapter configuration -------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The wrapped client (queries through it are not adapted)."""
        return self._client

    @property
    def adapters(self) -> Mapping[AdapterKey, QueryAdapter]:
        """A read-only view of the current adapter configuration."""
        return MappingProxyType(self._registry.table.as_mapping())

    def set_adapters(self, adapters: Mapping[AdapterKey, QueryAdapter] | None) -> None:
        """Replace the whole configuration atomically (queries in flight finish with the old one)."""
        self._registry.replace(adapters)

    def set_adapter(self, key: AdapterKey, adapter: QueryAdapter) -> None:
        """Add or swap the adapter for one key, atomically; the new one is checked on its first query."""
        self._registry.set(key, adapter)

    def remove_adapter(self, key: AdapterKey) -> None:
        """Stop adapting queries for ``key``; raises ``KeyError`` when it is not configured."""
        self._registry.remove(key)

    def adapter_for(self, collection_name: str, using: str | None = None) -> QueryAdapter | None:
        """The adapter a query on ``(collection_name, using)`` would use now (aliases as last read), or ``None``."""
        table = self._registry.table
        key = _key_for(table, collection_name, self._aliases.target(collection_name))
        return table.resolve(key, using) if key is not None else None

    def refresh(self) -> None:
        """Re-read aliases before the next query (after an alias moved outside this wrapper).

        Aliases are also re-read every ``alias_ttl`` seconds and after alias changes made through
        this wrapper (``update_collection_aliases``, ``delete_collection``, ...); a query through an
        alias that now names another collection checks its adapter against that collection again.
        """
        self._aliases.invalidate()

    def _targets(self) -> Generator[tuple[Any, ...], Any, None]:
        """Read the aliases when the last read is stale.

        A key scoped to some collections may not list aliases (403): then names are taken as they
        are until the next read, with a warning, rather than failing every query.
        """
        if not self._aliases.stale:
            return
        try:
            response = yield ("get_aliases",)
        except Exception as exc:
            if not _forbidden(exc):
                raise
            logger.warning(
                "cannot read the server's aliases (%s): a query through an alias is adapted only by an "
                "adapter keyed by the alias itself; retrying in %s s",
                exc,
                self._aliases.ttl,
            )
            self._aliases.store({})
            return
        self._aliases.store({a.alias_name: a.collection_name for a in response.aliases})

    def _verify_steps(
        self, collection_name: str, using: str | None
    ) -> Generator[tuple[Any, ...], Any, QueryAdapter]:
        """:meth:`verify`'s body: check the configured adapter now instead of at the first query."""
        table = self._registry.table
        yield from self._targets()
        target = self._aliases.target(collection_name)
        key = _key_for(table, collection_name, target)
        adapter = table.resolve(key, using) if key is not None else None
        if adapter is None:
            raise KeyError(
                f"no adapter configured for {_where(collection_name, using)}; "
                f"configured keys: {sorted(map(str, table.as_mapping()))}"
            )
        _verify(table, key, [using], (yield ("get_collection", target)), target=target)
        return adapter

    def _prepared(self, arguments: dict[str, Any], rewrite: _Rewrite) -> _Steps:
        """The call's arguments with raw query vectors adapted, under one adapter snapshot."""
        table = self._registry.table  # one snapshot for every vector of this call
        if not (table.by_collection or table.by_vector):
            return arguments
        yield from self._targets()
        collection_name = arguments["collection_name"]
        target = self._aliases.target(collection_name)
        key = _key_for(table, collection_name, target)
        if key is None:
            return arguments
        pending = _pending_usings(table, key, target, lambda fn: rewrite(arguments, fn))
        if pending:
            _verify(table, key, pending, (yield ("get_collection", target)), target=target)
        return rewrite(arguments, _adapting_fn(table, key))

    def _fast(self, arguments: dict[str, Any], rewrite: _Rewrite) -> dict[str, Any] | None:
        """The forwarded arguments of the common call, or ``None`` to take :meth:`_prepared`.

        The common call is ``query_points`` / ``query_points_groups`` with one raw dense vector
        (a list or 1-d array) as ``query`` and no ``prefetch``, on a (collection, using) whose
        adapter was resolved and checked before under the current configuration and alias read
        (:class:`~queryshift.integrations.qdrant.routing.ResolvedAdapters`). It sends exactly what
        :meth:`_prepared` sends, without walking the request twice. Anything else (ids, models,
        prefetches, stale aliases, an adapter not checked yet) takes the generic path.
        """
        if rewrite is not _rewrite_query_and_prefetch or arguments["prefetch"] is not None:
            return None
        query = arguments["query"]
        if not is_dense_vector(query):
            return None
        table = self._registry.table
        if not (table.by_collection or table.by_vector):
            return arguments
        targets = self._aliases.fresh()
        if targets is None:
            return None  # the generic path reads the aliases first
        collection_name, using = arguments["collection_name"], arguments["using"]
        resolved = self._resolved.entries(table, targets)
        adapter = resolved.get((collection_name, using), UNRESOLVED)
        if adapter is UNRESOLVED:
            target = targets.get(collection_name, collection_name)
            key = _key_for(table, collection_name, target)
            adapter = table.resolve(key, using) if key is not None else None
            if adapter is not None and not table.is_verified(key, using, target=target):
                return None  # the generic path checks it against the collection first
            resolved[(collection_name, using)] = adapter
        if adapter is None:
            return arguments
        return {**arguments, "query": adapted_vector(adapter, query)}

    def _call(self, method: str, arguments: dict[str, Any], rewrite: _Rewrite) -> Any:
        raise NotImplementedError  # pragma: no cover - defined by the two wrappers

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
        """``query_points`` of the wrapped client with raw query vectors (also in ``prefetch``) adapted.

        Arguments and result are those of :meth:`qdrant_client.QdrantClient.query_points` (a
        coroutine on the async wrapper); everything besides the vectors is forwarded unchanged,
        unknown ``kwargs`` included (the client rejects them).
        """
        return self._call("query_points", _arguments(locals()), _rewrite_query_and_prefetch)

    def query_batch_points(
        self,
        collection_name: str,
        requests: Sequence[types.QueryRequest],
        consistency: types.ReadConsistency | None = None,
        timeout: int | None = None,
        **kwargs: Any,
    ) -> list[types.QueryResponse]:
        """``query_batch_points`` of the wrapped client with the raw query vectors of every request adapted.

        The whole batch uses one adapter snapshot, so a concurrent swap never splits a batch.
        """
        return self._call("query_batch_points", _arguments(locals()), _rewrite_requests)

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
        """``query_points_groups`` of the wrapped client with raw query vectors (also in ``prefetch``) adapted."""
        return self._call("query_points_groups", _arguments(locals()), _rewrite_query_and_prefetch)

    # -- everything else is the client's ----------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        attribute = getattr(self._client, name)
        return self._forgetting_aliases(attribute) if name in _ALIAS_CHANGES else attribute

    def _forgetting_aliases(self, method: Callable[..., Any]) -> Callable[..., Any]:
        raise NotImplementedError  # pragma: no cover - defined by the two wrappers

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | {n for n in dir(self._client) if not n.startswith("_")})

    def __repr__(self) -> str:
        keys = sorted(map(str, self._registry.table.as_mapping()))
        return f"{type(self).__name__}(client={self._client!r}, adapters={keys})"


def _run(steps: Generator[tuple[Any, ...], Any, Any], client: Any) -> Any:
    """Drive ``steps`` synchronously, answering each ``(method, *arguments)`` with that client call."""
    try:
        method, *args = next(steps)
        while True:
            try:
                result = getattr(client, method)(*args)
            except Exception as exc:  # handed to the step that asked (it may handle it), not swallowed
                method, *args = steps.throw(exc)
            else:
                method, *args = steps.send(result)
    except StopIteration as done:
        return done.value


def _awaited(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` of :class:`_AdaptedClientBase` as a coroutine function (same signature and docstring).

    The shared method returns the coroutine of the async ``_call``; wrapping it keeps
    ``inspect.iscoroutinefunction`` true, as it is for ``AsyncQdrantClient``'s own methods.
    """

    @functools.wraps(method)
    async def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await method(self, *args, **kwargs)

    return call


async def _run_async(steps: Generator[tuple[Any, ...], Any, Any], client: Any) -> Any:
    """:func:`_run` with each client call awaited."""
    try:
        method, *args = next(steps)
        while True:
            try:
                result = await getattr(client, method)(*args)
            except Exception as exc:  # handed to the step that asked (it may handle it), not swallowed
                method, *args = steps.throw(exc)
            else:
                method, *args = steps.send(result)
    except StopIteration as done:
        return done.value


class AdaptedQdrantClient(_AdaptedClientBase):
    """A ``QdrantClient`` whose queries go through query adapters.

    Args:
        client: The user's ``QdrantClient`` (any backend: ``":memory:"``, ``path=``, ``url=``).
            It is used as is and stays usable on its own.
        adapters: Which adapter serves which vectors. Keys are ``"collection"`` (every dense
            vector of that collection without a more specific entry), ``("collection", "name")``
            (one named vector) or ``("collection", None)`` (the unnamed vector). Collections
            without an entry are queried unchanged. A collection's entry also serves its aliases.
        alias_ttl: Seconds between reads of the server's aliases (``0``: before every query;
            ``None``: only after alias changes through this wrapper and :meth:`refresh`).

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

    _wrong_client = AsyncQdrantClient
    _client_name = "QdrantClient"
    _right_wrapper = "AsyncAdaptedQdrantClient"

    def verify(self, collection_name: str, using: str | None = None) -> QueryAdapter:
        """Check the configured adapter against the collection now instead of at the first query.

        Returns:
            The adapter that was checked.

        Raises:
            KeyError: No adapter is configured for this vector.
            DimensionMismatchError, DistanceMismatchError: It does not fit the collection.
        """
        return _run(self._verify_steps(collection_name, using), self._client)

    def _call(self, method: str, arguments: dict[str, Any], rewrite: _Rewrite) -> Any:
        forwarded = self._fast(arguments, rewrite)
        if forwarded is None:
            forwarded = _run(self._prepared(arguments, rewrite), self._client)
        return getattr(self._client, method)(**forwarded)

    def _forgetting_aliases(self, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            finally:
                self._aliases.invalidate()

        return call


class AsyncAdaptedQdrantClient(_AdaptedClientBase):
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

    _wrong_client = QdrantClient
    _client_name = "AsyncQdrantClient"
    _right_wrapper = "AdaptedQdrantClient"

    async def verify(self, collection_name: str, using: str | None = None) -> QueryAdapter:
        """Check the configured adapter against the collection now; see :meth:`AdaptedQdrantClient.verify`."""
        return await _run_async(self._verify_steps(collection_name, using), self._client)

    async def _call(self, method: str, arguments: dict[str, Any], rewrite: _Rewrite) -> Any:
        forwarded = self._fast(arguments, rewrite)
        if forwarded is None:
            forwarded = await _run_async(self._prepared(arguments, rewrite), self._client)
        return await getattr(self._client, method)(**forwarded)

    def _forgetting_aliases(self, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        async def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return await method(*args, **kwargs)
            finally:
                self._aliases.invalidate()

        return call

    query_points = _awaited(_AdaptedClientBase.query_points)
    query_batch_points = _awaited(_AdaptedClientBase.query_batch_points)
    query_points_groups = _awaited(_AdaptedClientBase.query_points_groups)
