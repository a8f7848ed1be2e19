"""Which adapter serves which (collection, named vector), how it is swapped, and whether it fits.

Shared by the qdrant-client wrapper (:mod:`queryshift.integrations.qdrant`) and the
embedded-engine wrapper (:mod:`queryshift.integrations.qdrant.edge`). Nothing here imports
qdrant-client or qdrant-edge.

Keys of an adapter mapping:

* ``"docs"``: every dense vector of collection ``docs`` that has no more specific entry;
* ``("docs", "text")``: only the named vector ``text`` of ``docs``;
* ``("docs", None)`` (or ``("docs", "")``): only the unnamed default vector of ``docs``.

Concurrency: an :class:`AdapterTable` is immutable. An :class:`AdapterRegistry` publishes a
new table under a lock, and a query reads the current table once and uses that snapshot for
all of its vectors, so a query runs entirely with the old or entirely with the new adapters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from queryshift.adapters.base import QueryAdapter
from queryshift.errors import DimensionMismatchError, DistanceMismatchError

logger = logging.getLogger(__name__)

__all__ = [
    "AdapterKey",
    "AdapterTable",
    "AdapterRegistry",
    "AliasMap",
    "ResolvedAdapters",
    "UNRESOLVED",
    "adapted_vector",
    "check_adapter_fits",
    "distance_name",
]

AdapterKey = str | tuple[str, str | None]
"""``"collection"`` (all its dense vectors) or ``("collection", using)`` (one vector)."""

_DISTANCES = {"cosine": "cosine", "dot": "dot", "euclid": "euclid"}


def _normalize_using(using: str | None) -> str | None:
    """``""`` is how Qdrant names the unnamed vector; treat it like ``None``."""
    return using or None


def _check_adapter(adapter: object, key: object) -> QueryAdapter:
    if not callable(getattr(adapter, "apply", None)) or not hasattr(adapter, "config"):
        raise TypeError(
            f"adapters[{key!r}] must be a query adapter with .apply() and .config (e.g. a LinearAdapter "
            f"or the result of load_adapter), got {type(adapter).__name__}"
        )
    return adapter  # type: ignore[return-value]


@dataclass(frozen=True)
class AdapterTable:
    """An immutable snapshot of the adapter configuration.

    Args:
        by_vector: ``(collection, using)`` → adapter, ``using=None`` for the unnamed vector.
        by_collection: collection → adapter for its vectors without a ``by_vector`` entry.
        verified: ``(collection, using)`` → the adapter that passed :func:`check_adapter_fits`
            against that vector of that (real, not alias) collection. A cache local to this
            snapshot: a new snapshot starts with the entries whose adapter did not change, so a
            swap re-checks exactly what changed.

    Example:
        >>> from queryshift.adapters import LinearAdapter
        >>> a = LinearAdapter.identity(dim=4)
        >>> table = AdapterTable.from_mapping({"docs": a})
        >>> table.resolve("docs", "text") is a, table.resolve("other", None)
        (True, None)
    """

    by_vector: Mapping[tuple[str, str | None], QueryAdapter] = field(default_factory=dict)
    by_collection: Mapping[str, QueryAdapter] = field(default_factory=dict)
    verified: dict[tuple[str, str | None], QueryAdapter] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        collections = frozenset(self.by_collection) | {c for c, _ in self.by_vector}
        object.__setattr__(self, "_collections", collections)

    @classmethod
    def from_mapping(cls, adapters: Mapping[AdapterKey, QueryAdapter] | None) -> AdapterTable:
        """Validate keys and values of a user mapping (see the module docstring for keys)."""
        by_vector: dict[tuple[str, str | None], QueryAdapter] = {}
        by_collection: dict[str, QueryAdapter] = {}
        for key, adapter in (adapters or {}).items():
            if isinstance(key, str):
                by_collection[key] = _check_adapter(adapter, key)
            elif (
                isinstance(key, tuple)
                and len(key) == 2
                and isinstance(key[0], str)
                and (key[1] is None or isinstance(key[1], str))
            ):
                by_vector[(key[0], _normalize_using(key[1]))] = _check_adapter(adapter, key)
            else:
                raise TypeError(
                    f"adapter keys must be a collection name or a (collection, vector name) tuple, got {key!r}"
                )
        return cls(MappingProxyType(by_vector), MappingProxyType(by_collection))

    def resolve(self, collection_name: str, using: str | None) -> QueryAdapter | None:
        """The adapter for queries on ``using`` of ``collection_name``, or ``None`` (not adapted)."""
        adapter = self.by_vector.get((collection_name, _normalize_using(using)))
        if adapter is None:
            adapter = self.by_collection.get(collection_name)
        return adapter

    def covers(self, collection_name: str) -> bool:
        """Whether any query on ``collection_name`` may be adapted (the fast path skips the rest)."""
        return collection_name in self._collections  # type: ignore[attr-defined]

    def is_verified(self, collection_name: str, using: str | None, *, target: str | None = None) -> bool:
        """Whether the adapter that serves ``collection_name`` passed its check against ``target``.

        ``target`` is the collection the name stands for when it is an alias (default: itself):
        checks are kept per real collection, so an alias switched elsewhere is checked again.
        """
        adapter = self.resolve(collection_name, using)
        key = (target or collection_name, _normalize_using(using))
        return adapter is not None and self.verified.get(key) is adapter

    def mark_verified(
        self, collection_name: str, using: str | None, adapter: QueryAdapter, *, target: str | None = None
    ) -> None:
        # A plain dict write is atomic under the GIL; two threads checking the same vector at
        # once both call the server, which is harmless.
        self.verified[(target or collection_name, _normalize_using(using))] = adapter

    def as_mapping(self) -> dict[AdapterKey, QueryAdapter]:
        """The configuration in the form accepted by :meth:`from_mapping`."""
        out: dict[AdapterKey, QueryAdapter] = dict(self.by_collection)
        out.update(self.by_vector)
        return out

    def replaced(self, adapters: Mapping[AdapterKey, QueryAdapter] | None) -> AdapterTable:
        """A new table for ``adapters`` that keeps the checks of vectors whose adapter is unchanged."""
        new = AdapterTable.from_mapping(adapters)
        for (collection_name, using), adapter in list(self.verified.items()):
            if new.resolve(collection_name, using) is adapter:
                new.verified[(collection_name, using)] = adapter
        return new


class AdapterRegistry:
    """Holds the current :class:`AdapterTable`; swaps are atomic and serialised by a lock.

    Readers take ``registry.table`` once per query (an attribute read, atomic in CPython) and
    never see a half-updated configuration.

    Example:
        >>> from queryshift.adapters import LinearAdapter
        >>> registry = AdapterRegistry({"docs": LinearAdapter.identity(dim=4)})
        >>> registry.remove("docs")
        >>> registry.table.covers("docs")
        False
    """

    def __init__(self, adapters: Mapping[AdapterKey, QueryAdapter] | None = None) -> None:
        self._lock = threading.Lock()
        self._table = AdapterTable.from_mapping(adapters)

    @property
    def table(self) -> AdapterTable:
        """The current snapshot; keep the returned object for the whole query."""
        return self._table

    def update(self, change: Callable[[dict[AdapterKey, QueryAdapter]], None]) -> None:
        """Apply ``change`` to a copy of the current mapping and publish the result atomically."""
        with self._lock:
            mapping = self._table.as_mapping()
            change(mapping)
            self._table = self._table.replaced(mapping)

    def replace(self, adapters: Mapping[AdapterKey, QueryAdapter] | None) -> None:
        """Publish ``adapters`` as the whole new configuration."""
        new = dict(adapters or {})

        def change(mapping: dict[AdapterKey, QueryAdapter]) -> None:
            mapping.clear()
            mapping.update(new)

        self.update(change)

    def set(self, key: AdapterKey, adapter: QueryAdapter) -> None:
        """Add or replace one entry."""

        def change(mapping: dict[AdapterKey, QueryAdapter]) -> None:
            mapping[_normalize_key(key)] = adapter

        self.update(change)

    def remove(self, key: AdapterKey) -> None:
        """Remove one entry; a missing key raises ``KeyError`` naming the configured keys."""

        def change(mapping: dict[AdapterKey, QueryAdapter]) -> None:
            normalized = _normalize_key(key)
            if normalized not in mapping:
                raise KeyError(
                    f"no adapter configured for {key!r}; configured keys: {sorted(map(str, mapping))}"
                )
            del mapping[normalized]

        self.update(change)


class AliasMap:
    """Which collection each alias points at, as last read from the server, re-read when stale.

    Qdrant does not tell clients when an alias moves, so the wrapper re-reads the aliases every
    ``ttl`` seconds (and after any alias change made through it, or on ``refresh()``). Within that
    window a query through an alias switched by another process still goes to the new collection
    (Qdrant resolves it) but is adapted, and checked, as for the old one.

    Args:
        ttl: Seconds a read stays fresh; ``0`` re-reads before every query, ``None`` only on
            :meth:`invalidate`.

    Example:
        >>> aliases = AliasMap(ttl=None)
        >>> aliases.stale
        True
        >>> aliases.store({"docs": "docs_v2"})
        >>> aliases.target("docs"), aliases.target("docs_v2"), aliases.stale
        ('docs_v2', 'docs_v2', False)
    """

    def __init__(self, ttl: float | None = 10.0) -> None:
        if ttl is not None and ttl < 0:
            raise ValueError(f"alias_ttl must be >= 0 seconds or None, got {ttl}")
        self.ttl = ttl
        self._targets: Mapping[str, str] | None = None
        self._read_at = 0.0

    @property
    def stale(self) -> bool:
        """Whether the aliases must be read (again) before resolving a name."""
        if self._targets is None:
            return True
        return self.ttl is not None and time.monotonic() - self._read_at >= self.ttl

    def store(self, targets: Mapping[str, str]) -> None:
        """Publish a fresh read: alias name → collection name (one reference swap, thread-safe)."""
        self._targets, self._read_at = MappingProxyType(dict(targets)), time.monotonic()

    def invalidate(self) -> None:
        """Forget the last read, so the next query reads the aliases first."""
        self._targets = None

    def target(self, name: str) -> str:
        """The collection ``name`` stands for (``name`` itself when it is not a known alias)."""
        targets = self._targets
        return targets.get(name, name) if targets is not None else name

    def fresh(self) -> Mapping[str, str] | None:
        """The last read (alias → collection) while it is fresh, else ``None`` (read the aliases first).

        A new read is a new object, so callers can key caches on its identity.
        """
        targets = self._targets
        if targets is None or (self.ttl is not None and time.monotonic() - self._read_at >= self.ttl):
            return None
        return targets


UNRESOLVED = object()
"""Marker of :class:`ResolvedAdapters`: not resolved yet (``None`` means "resolved: no adapter")."""


class ResolvedAdapters:
    """Adapters already resolved *and checked* per query target, for one configuration and one alias read.

    The query fast paths look the serving adapter up here instead of walking keys, aliases and
    checks again on every query. The entries belong to one :class:`AdapterTable` snapshot and one
    alias read (compared by identity): a swap, an alias re-read, ``refresh()`` or an alias change
    through the wrapper starts an empty cache, exactly where the checks themselves are re-done.

    Example:
        >>> cache, table = ResolvedAdapters(), AdapterTable.from_mapping({})
        >>> cache.entries(table, None)[("docs", None)] = None
        >>> cache.entries(table, None), cache.entries(AdapterTable.from_mapping({}), None)
        ({('docs', None): None}, {})
    """

    def __init__(self) -> None:
        self._state: tuple[object, object, dict] = (None, None, {})

    def entries(self, table: AdapterTable, aliases: object) -> dict:
        """The mutable ``{target: adapter or None}`` cache of this ``table`` and alias read ``aliases``."""
        state = self._state
        if state[0] is not table or state[1] is not aliases:
            state = (table, aliases, {})
            self._state = state  # one reference swap: a concurrent query keeps the cache it took
        return state[2]


def adapted_vector(adapter: QueryAdapter, vector: object) -> list[float]:
    """``adapter.apply`` of one raw query vector (a list of numbers or a 1-d array) as a ``list[float]``.

    A list is what both Qdrant clients send (qdrant-client converts numpy queries with ``tolist``,
    and qdrant-edge reads a list faster than an array). A list is read with ``np.fromiter``: the same
    float32 values as ``np.asarray(vector, np.float32)`` at about half the cost.

    Example:
        >>> from queryshift.adapters import LinearAdapter
        >>> adapted_vector(LinearAdapter.identity(dim=2), [3.0, 4.0])
        [0.6000000238418579, 0.800000011920929]
    """
    if isinstance(vector, list):
        x = np.fromiter(vector, np.float32, len(vector))  # (dim,)
    else:
        x = np.asarray(vector, dtype=np.float32)  # (dim,)
    return adapter.apply(x).tolist()


def _normalize_key(key: AdapterKey) -> AdapterKey:
    if isinstance(key, tuple) and len(key) == 2:
        return (key[0], _normalize_using(key[1]))
    return key


def distance_name(distance: object) -> str:
    """Lower-case name of a Qdrant distance from qdrant-client (``Distance.COSINE``) or qdrant-edge.

    Example:
        >>> distance_name("Cosine")
        'cosine'
    """
    value = getattr(distance, "value", distance)
    text = value if isinstance(value, str) else str(distance)
    return text.rsplit(".", 1)[-1].lower()


def check_adapter_fits(
    adapter: QueryAdapter,
    *,
    size: int,
    distance: object,
    multivector: bool = False,
    where: str,
) -> None:
    """Raise unless ``adapter`` can adapt queries for a vector of ``size`` and ``distance``.

    Args:
        adapter: The adapter to check (``adapter.config.dim``, its output, / ``.distance``); the
            query vectors' own dimension (``config.in_dim``) is checked by ``adapter.apply``.
        size: Dimensionality the collection stores for this vector.
        distance: The collection's distance (qdrant-client or qdrant-edge enum, or its name).
        multivector: Whether the vector is a multi-vector (late interaction); adapters map
            single ``(dim,)`` query vectors and cannot serve it.
        where: Human-readable location used in messages, e.g. ``"collection 'docs', vector 'text'"``.

    Raises:
        DimensionMismatchError: Different dimensionality, or a multi-vector.
        DistanceMismatchError: Different distance, or Manhattan (not supported by adapters).

    Example:
        >>> from queryshift.adapters import LinearAdapter
        >>> check_adapter_fits(LinearAdapter.identity(dim=4), size=4, distance="Cosine", where="test")
    """
    config = adapter.config
    trained = f" (trained for {config.base_model!r})" if getattr(config, "base_model", None) else ""
    if multivector:
        raise DimensionMismatchError(
            f"{where} is a multi-vector (late interaction) vector; query adapters map single (dim,) "
            "query vectors, so configure the adapter for a dense single-vector field instead"
        )
    if int(size) != int(config.dim) and config.cross_model:
        index = f" of {config.index_model!r}" if config.index_model else ""
        raise DimensionMismatchError(
            f"{where} stores vectors of dim={size} but the cross-model adapter maps queries "
            f"(dim={config.in_dim}{trained}) into the dim={config.dim} space{index}; "
            "use it only on a collection embedded by the model it was trained for"
        )
    if int(size) != int(config.dim):
        raise DimensionMismatchError(
            f"{where} stores vectors of dim={size} but the adapter expects dim={config.dim}{trained}; "
            "an adapter only works with vectors from the embedding model it was trained on"
        )
    name = distance_name(distance)
    if name not in _DISTANCES:
        raise DistanceMismatchError(
            f"{where} uses distance {name!r}, which query adapters do not support "
            f"(supported: Cosine, Dot, Euclid)"
        )
    if _DISTANCES[name] != config.distance:
        raise DistanceMismatchError(
            f"{where} uses distance {name!r} but the adapter was trained for distance={config.distance!r}{trained}; "
            f"retrain it with TrainingConfig(distance={_DISTANCES[name]!r})"
        )
    logger.debug("adapter fits %s (dim=%d, distance=%s)", where, size, name)
