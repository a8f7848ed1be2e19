"""Adapted retrieval on an embedded Qdrant engine: a qdrant-edge ``EdgeShard`` (HNSW, in-process).

:class:`AdaptedEdgeShard` holds the user's ``EdgeShard``; its ``query``, ``query_batch`` and
``search`` replace every raw query vector by ``adapter.apply(vector)`` and then run the
request on the shard. Stored points are never touched. The rules are those of the
qdrant-client wrapper (:mod:`queryshift.integrations.qdrant.requests`): the vectors of
``Query.Nearest``, ``Mmr`` and the examples of recommend / discover / context queries are
adapted; the feedback items of ``Query.FeedbackNaive`` (judged documents), sparse vectors and
multi-vectors are not. Edge queries never refer to points by id, so every dense vector in a
request is a raw query vector.

Why the adapted methods take keyword arguments instead of a built ``QueryRequest``:
qdrant-edge 0.9 does not let Python read a ``Query`` back once it is inside a
``QueryRequest``, ``Prefetch`` or ``SearchRequest`` (the getters return an opaque ``Query``
object without fields), so the wrapper could not find the vectors in a built request. The
keyword arguments are exactly those of ``qdrant_edge.QueryRequest`` / ``SearchRequest``, and
prefetches are given as mappings of ``qdrant_edge.Prefetch`` arguments::

    shard.query(qe.QueryRequest(limit=10, query=qe.Query.Nearest(v), with_payload=True))
    adapted.query(limit=10, query=qe.Query.Nearest(v), with_payload=True)

A built ``qe.Prefetch`` is accepted only when it holds no vector query (e.g. a fusion stage
over mapping prefetches); otherwise a ``TypeError`` says how to pass it.

Install with ``pip install queryshift[edge]``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from queryshift.adapters.base import QueryAdapter
from queryshift.errors import DimensionMismatchError, MissingDependencyError
from queryshift.integrations.qdrant.requests import is_dense_vector, is_multi_vector
from queryshift.integrations.qdrant.routing import (
    UNRESOLVED,
    AdapterRegistry,
    AdapterTable,
    ResolvedAdapters,
    adapted_vector,
    check_adapter_fits,
)

try:
    import qdrant_edge as qe
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        "queryshift.integrations.qdrant.edge needs qdrant-edge: `pip install queryshift[edge]`"
    ) from exc

logger = logging.getLogger(__name__)

__all__ = ["AdaptedEdgeShard"]

_SHARD = ""  # an edge shard is one collection; its adapter table uses this collection name
_PREFETCH_ARGS = frozenset({"limit", "query", "prefetches", "params", "filter", "score_threshold"})
_REQUEST_ARGS = _PREFETCH_ARGS | {"offset", "with_vector", "with_payload"}
_EdgeFn = Callable[[str | None, Any], Any]


def _named(value: Any, using: str | None, fn: _EdgeFn) -> Any:
    # Multi-vectors reach fn too, which refuses one aimed at an adapted vector (never silently unadapted).
    return fn(using, value) if is_dense_vector(value) or is_multi_vector(value) else value


def _pairs(pairs: list[Any], using: str | None, fn: _EdgeFn) -> list[Any]:
    return [
        qe.ContextPair(positive=_named(p.positive, using, fn), negative=_named(p.negative, using, fn))
        for p in pairs
    ]


def _opaque(query: Any) -> bool:
    """A ``Query`` read back from a built request: its variant and fields are not accessible."""
    return type(query) is qe.Query


def _adapt_query(query: Any, fn: _EdgeFn, *, where: str) -> Any:
    """Rebuild a user-built edge scoring query with its raw dense vectors replaced."""
    if query is None:
        return None
    if isinstance(query, qe.Mmr):
        using = query.using or None
        return qe.Mmr(_named(query.vector, using, fn), query.lambda_, query.candidates_limit, using=using)
    if not isinstance(query, qe.Query):
        return query  # Fusion, OrderBy, Formula, Sample, TextQuery: no vectors
    if _opaque(query):
        raise TypeError(
            f"{where}: this qdrant_edge.Query was read back from a built request, and qdrant-edge does not "
            "expose its vectors; pass the query as built by qe.Query.Nearest(...) (or another qe.Query "
            "constructor) directly to AdaptedEdgeShard"
        )
    using, inner = query.using, query.query
    if isinstance(query, qe.Query.Nearest):
        return qe.Query.Nearest(_named(inner, using, fn), using=using)
    if isinstance(query, (qe.Query.RecommendBestScore, qe.Query.RecommendSumScores)):
        rebuilt = qe.RecommendQuery(
            positives=[_named(v, using, fn) for v in inner.positives],
            negatives=[_named(v, using, fn) for v in inner.negatives],
        )
        if isinstance(query, qe.Query.RecommendBestScore):
            return qe.Query.RecommendBestScore(rebuilt, using=using)
        return qe.Query.RecommendSumScores(rebuilt, using=using)
    if isinstance(query, qe.Query.Discover):
        discover = qe.DiscoverQuery(
            target=_named(inner.target, using, fn), pairs=_pairs(inner.pairs, using, fn)
        )
        return qe.Query.Discover(discover, using=using)
    if isinstance(query, qe.Query.Context):
        return qe.Query.Context(qe.ContextQuery(pairs=_pairs(inner.pairs, using, fn)), using=using)
    if isinstance(query, qe.Query.FeedbackNaive):
        # Feedback items are documents judged by a feedback model: document space, untouched.
        feedback = qe.FeedbackNaiveQuery(
            target=_named(inner.target, using, fn), feedback=inner.feedback, strategy=inner.coefficients
        )
        return qe.Query.FeedbackNaive(feedback, using=using)
    raise TypeError(f"{where}: cannot adapt an edge query of type {type(query).__name__}")


def _check_built_prefetch(prefetch: Any, where: str) -> None:
    if _opaque(prefetch.query):
        raise TypeError(
            f"{where}: a built qdrant_edge.Prefetch with a vector query cannot be adapted (qdrant-edge does "
            "not expose its vectors); pass the prefetch as a mapping of qe.Prefetch arguments instead, "
            "e.g. {'limit': 50, 'query': qe.Query.Nearest(vector, using='text')}"
        )
    for i, nested in enumerate(prefetch.prefetches):
        _check_built_prefetch(nested, f"{where}.prefetches[{i}]")


def _build_prefetches(specs: Sequence[Any] | None, fn: _EdgeFn, where: str) -> list[Any] | None:
    if specs is None:
        return None
    out = []
    for i, spec in enumerate(specs):
        here = f"{where}[{i}]"
        if isinstance(spec, qe.Prefetch):
            _check_built_prefetch(spec, here)
            out.append(spec)
            continue
        if not isinstance(spec, Mapping):
            raise TypeError(f"{here}: expected a mapping of qe.Prefetch arguments, got {type(spec).__name__}")
        unknown = sorted(set(spec) - _PREFETCH_ARGS)
        if unknown:
            raise TypeError(
                f"{here}: unknown qe.Prefetch arguments {unknown}; known: {sorted(_PREFETCH_ARGS)}"
            )
        kwargs = dict(spec)
        kwargs["query"] = _adapt_query(spec.get("query"), fn, where=f"{here}.query")
        kwargs["prefetches"] = _build_prefetches(spec.get("prefetches"), fn, f"{here}.prefetches")
        out.append(qe.Prefetch(**kwargs))
    return out


def _build_request(
    fn: _EdgeFn, *, query: Any = None, prefetches: Any = None, **arguments: Any
) -> qe.QueryRequest:
    return qe.QueryRequest(
        query=_adapt_query(query, fn, where="query"),
        prefetches=_build_prefetches(prefetches, fn, "prefetches"),
        **arguments,
    )


def _table_mapping(
    adapters: QueryAdapter | Mapping[str | None, QueryAdapter] | None,
) -> dict[Any, QueryAdapter]:
    if adapters is None:
        return {}
    if isinstance(adapters, Mapping):
        for name in adapters:
            if name is not None and not isinstance(name, str):
                raise TypeError(
                    f"adapter keys must be vector names (str, or None for the unnamed vector), got {name!r}"
                )
        return {(_SHARD, name): adapter for name, adapter in adapters.items()}
    return {_SHARD: adapters}


class AdaptedEdgeShard:
    """A qdrant-edge ``EdgeShard`` whose queries go through query adapters.

    Args:
        shard: The user's ``qdrant_edge.EdgeShard``; it stays usable on its own.
        adapters: One adapter for every dense vector of the shard, or ``{vector name: adapter}``
            (``None`` or ``""`` names the unnamed vector). Vectors without an adapter are queried unchanged.
        config: The ``EdgeConfig`` the shard was created or loaded with. The shard does not expose
            its configuration; adapters are checked against ``config.vectors`` (dimension,
            distance) when they are set and on first use for each vector.

    Raises:
        DimensionMismatchError, DistanceMismatchError: An adapter does not fit its vector.

    Relations:
        :class:`~queryshift.integrations.qdrant.AdaptedQdrantClient` does the same for qdrant-client.

    Example:
        >>> import tempfile
        >>> import qdrant_edge as qe
        >>> from queryshift.adapters import LinearAdapter
        >>> config = qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=2, distance=qe.Distance.Cosine))
        >>> shard = qe.EdgeShard.create(tempfile.mkdtemp(), config)
        >>> shard.update(qe.UpdateOperation.upsert_points([qe.Point(1, [1.0, 0.0]), qe.Point(2, [0.0, 1.0])]))
        >>> adapted = AdaptedEdgeShard(shard, LinearAdapter.identity(2), config=config)
        >>> [p.id for p in adapted.query(limit=1, query=qe.Query.Nearest([0.1, 0.9]))]
        [2]
        >>> adapted.close()
    """

    def __init__(
        self,
        shard: qe.EdgeShard,
        adapters: QueryAdapter | Mapping[str | None, QueryAdapter] | None = None,
        *,
        config: qe.EdgeConfig,
    ) -> None:
        if not isinstance(config, qe.EdgeConfig):
            raise TypeError(f"config must be the shard's qdrant_edge.EdgeConfig, got {type(config).__name__}")
        self._shard = shard
        self._vectors: dict[str, Any] = dict(config.vectors)
        self._sparse = sorted(config.sparse_vectors)
        mapping = _table_mapping(adapters)
        self._check_named(AdapterTable.from_mapping(mapping))
        self._registry = AdapterRegistry(mapping)
        self._resolved = ResolvedAdapters()  # for the fast path of plain Nearest queries

    @property
    def shard(self) -> qe.EdgeShard:
        """The wrapped shard (queries through it are not adapted)."""
        return self._shard

    @property
    def adapters(self) -> Mapping[Any, QueryAdapter]:
        """Read-only view ``{vector name: adapter}``; key ``"*"`` is the all-vectors adapter."""
        out: dict[Any, QueryAdapter] = {}
        for key, adapter in self._registry.table.as_mapping().items():
            out["*" if isinstance(key, str) else key[1]] = adapter
        return MappingProxyType(out)

    def set_adapters(self, adapters: QueryAdapter | Mapping[str | None, QueryAdapter] | None) -> None:
        """Replace all adapters atomically, after checking the named ones against the shard's vectors."""
        mapping = _table_mapping(adapters)
        self._check_named(AdapterTable.from_mapping(mapping))
        self._registry.replace(mapping)

    def _check_named(self, table: AdapterTable) -> None:
        """Check adapters named for one vector now; the all-vectors adapter is checked per vector on use."""
        for (_, using), adapter in table.by_vector.items():
            self._check(table, using, adapter)

    def _check(self, table: AdapterTable, using: str | None, adapter: QueryAdapter) -> None:
        name = using or ""
        where = "edge shard, " + (f"vector {name!r}" if name else "unnamed vector")
        if name not in self._vectors:
            kind = "a sparse vector" if name in self._sparse else "not a vector"
            raise ValueError(
                f"{where} is {kind} of this shard; dense vectors: {sorted(self._vectors)} "
                "('' is the unnamed vector)"
            )
        params = self._vectors[name]
        check_adapter_fits(
            adapter,
            size=params.size,
            distance=params.distance,
            multivector=params.multivector_config is not None,
            where=where,
        )
        table.mark_verified(_SHARD, using, adapter)

    def _adapting_fn(self) -> _EdgeFn:
        """``fn(using, vector)`` bound to one snapshot of the adapters, checking each vector on first use."""
        table = self._registry.table

        def adapt(using: str | None, vector: Any) -> Any:
            adapter = table.resolve(_SHARD, using)
            if adapter is None:
                return vector
            if not table.is_verified(_SHARD, using):
                self._check(table, using, adapter)
            if is_multi_vector(vector):
                raise DimensionMismatchError(
                    f"edge shard, vector {using or ''!r} has a query adapter, but the query is a multi-vector; "
                    "adapters map single (dim,) query vectors"
                )
            return adapted_vector(adapter, vector)

        return adapt

    def _fast_nearest(self, query: Any) -> Any:
        """The adapted ``qe.Query.Nearest`` of a plain dense one, or ``None`` to take the generic walk.

        The common request is ``qe.Query.Nearest(vector)`` without prefetches: one read of its
        vector, one lookup of the vector's checked adapter (cached per adapter snapshot), and the
        same ``adapted_vector`` the generic walk sends. Multi-vectors and sparse vectors take the
        generic walk, which refuses or passes them as it always does.
        """
        using = query.using
        table = self._registry.table
        resolved = self._resolved.entries(table, None)
        adapter = resolved.get(using, UNRESOLVED)
        if adapter is UNRESOLVED:
            adapter = table.resolve(_SHARD, using)
            if adapter is not None and not table.is_verified(_SHARD, using):
                self._check(table, using, adapter)
            resolved[using] = adapter
        if adapter is None:
            return query
        vector = query.query
        if not is_dense_vector(vector):
            return None
        return qe.Query.Nearest(adapted_vector(adapter, vector), using=using)

    def request(
        self,
        *,
        limit: int,
        query: Any = None,
        prefetches: Sequence[qe.Prefetch | Mapping[str, Any]] | None = None,
        offset: int | None = None,
        with_vector: Any = None,
        with_payload: Any = None,
        filter: qe.Filter | None = None,
        score_threshold: float | None = None,
        params: qe.SearchParams | None = None,
    ) -> qe.QueryRequest:
        """Build the adapted ``qe.QueryRequest`` for these ``qe.QueryRequest`` arguments, without running it.

        ``prefetches`` are mappings of ``qe.Prefetch`` arguments (nested ``"prefetches"`` too).
        """
        if prefetches is None and isinstance(query, qe.Query.Nearest):
            nearest = self._fast_nearest(query)
            if nearest is not None:
                return qe.QueryRequest(
                    limit=limit,
                    query=nearest,
                    prefetches=None,
                    offset=offset,
                    with_vector=with_vector,
                    with_payload=with_payload,
                    filter=filter,
                    score_threshold=score_threshold,
                    params=params,
                )
        return _build_request(
            self._adapting_fn(),
            limit=limit,
            query=query,
            prefetches=prefetches,
            offset=offset,
            with_vector=with_vector,
            with_payload=with_payload,
            filter=filter,
            score_threshold=score_threshold,
            params=params,
        )

    def query(self, **arguments: Any) -> list[qe.ScoredPoint]:
        """``EdgeShard.query(qe.QueryRequest(**arguments))`` with raw query vectors adapted.

        Takes the keyword arguments of :meth:`request` (those of ``qdrant_edge.QueryRequest``;
        ``prefetches`` are mappings of ``qdrant_edge.Prefetch`` arguments). All vectors of the call
        use one adapter snapshot.
        """
        return self._shard.query(self.request(**arguments))

    def query_batch(self, requests: Sequence[Mapping[str, Any]]) -> list[list[qe.ScoredPoint]]:
        """``EdgeShard.query_batch`` over requests given as mappings of ``qe.QueryRequest`` arguments.

        The whole batch uses one adapter snapshot.
        """
        fn = self._adapting_fn()
        built = []
        for i, arguments in enumerate(requests):
            if not isinstance(arguments, Mapping):
                raise TypeError(
                    f"requests[{i}]: expected a mapping of qe.QueryRequest arguments, got {type(arguments).__name__}"
                )
            unknown = sorted(set(arguments) - _REQUEST_ARGS)
            if unknown:
                raise TypeError(
                    f"requests[{i}]: unknown qe.QueryRequest arguments {unknown}; known: {sorted(_REQUEST_ARGS)}"
                )
            built.append(_build_request(fn, **arguments))
        return self._shard.query_batch(qe.QueryBatchRequest(built))

    def search(
        self,
        *,
        query: Any,
        limit: int,
        offset: int | None = None,
        filter: qe.Filter | None = None,
        params: qe.SearchParams | None = None,
        with_vector: Any = None,
        with_payload: Any = None,
        score_threshold: float | None = None,
    ) -> list[qe.ScoredPoint]:
        """``EdgeShard.search(qe.SearchRequest(**arguments))`` with the raw query vector adapted."""
        request = qe.SearchRequest(
            query=_adapt_query(query, self._adapting_fn(), where="query"),
            limit=limit,
            offset=offset,
            filter=filter,
            params=params,
            with_vector=with_vector,
            with_payload=with_payload,
            score_threshold=score_threshold,
        )
        return self._shard.search(request)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._shard, name)

    def __repr__(self) -> str:
        return f"AdaptedEdgeShard(adapters={sorted(map(str, self.adapters))})"
