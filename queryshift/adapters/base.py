"""The interface every query adapter implements, the input checks they share, and the registry of kinds.

An adapter is a function from query vectors to query vectors. It is applied at search
time, once per query, so it is plain numpy: nothing on this path imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np

from queryshift.adapters.config import AdapterConfig
from queryshift.errors import AdapterFormatError, DimensionMismatchError

__all__ = [
    "QueryAdapter",
    "adapter_class",
    "apply_map",
    "check_queries",
    "check_tensor_names",
    "check_vectors",
    "checked_tensor",
    "finish_vectors",
    "mlp_tensors",
    "normalize_rows",
    "register_kinds",
]

_A = TypeVar("_A")
_KINDS: dict[str, type] = {}
_FLOAT32 = np.dtype(np.float32)


@runtime_checkable
class QueryAdapter(Protocol):
    """What the integrations need from an adapter.

    Implemented by :class:`~queryshift.adapters.LinearAdapter` (which covers the low-rank form)
    and :class:`~queryshift.adapters.ResidualMLPAdapter`.
    """

    config: AdapterConfig

    @property
    def dim(self) -> int:
        """Dimensionality of the adapted vectors (the index's)."""
        ...

    @property
    def input_dim(self) -> int:
        """Dimensionality of the query vectors it takes (``dim`` unless it is a cross-model adapter)."""
        ...

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Map one query vector ``(input_dim,)`` or a batch ``(n, input_dim)`` to ``(dim,)`` / ``(n, dim)``."""
        ...

    def tensors(self) -> dict[str, np.ndarray]:
        """The weights by name, as written to ``adapter.safetensors``."""
        ...

    def save(self, path: str | Path) -> Path: ...


def apply_map(
    vectors: object, config: AdapterConfig, map_rows: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """``apply`` of every adapter: check ``vectors``, ``map_rows`` them, re-normalise, restore the shape.

    ``map_rows`` maps float32 ``(n, in_dim)`` rows, or one ``(in_dim,)`` row, to float32 rows of
    ``dim``. One query that is already a float32 contiguous ``(in_dim,)`` array takes a fast path:
    no conversion, and one dot product in place of :func:`check_vectors`' scans, since its squared
    norm is finite only when every entry is finite and positive only when one is not zero. Any
    other input, or one that fails that test (NaN, inf, zeros, or squares that overflow or
    underflow float32), takes :func:`check_queries`' full path, which decides what to refuse and why.
    """
    if (
        type(vectors) is np.ndarray
        and vectors.dtype is _FLOAT32
        and vectors.shape == (config.in_dim,)
        and vectors.flags.c_contiguous
        and 0.0 < float(vectors @ vectors) < math.inf
    ):
        out = map_rows(vectors)  # (dim,)
        square = float(out @ out)
        if 1e-30 < square < 1e30:  # float32-safe, as normalize_rows' fast path
            return out / np.float32(math.sqrt(square)) if config.normalize else out
        return finish_vectors(out[None], normalize=config.normalize, single=True)
    x, single = check_queries(vectors, config)  # (n, in_dim)
    return finish_vectors(map_rows(x), normalize=config.normalize, single=single)


def check_queries(vectors: object, config: AdapterConfig) -> tuple[np.ndarray, bool]:
    """:func:`check_vectors` for the query vectors an adapter with ``config`` takes (``config.in_dim``).

    A cross-model adapter's message names both models, and says so when the vectors have the
    index's dimensionality (queries embedded by the index's model instead of the query model).

    Example:
        >>> config = AdapterConfig(dim=12, input_dim=8, base_model="new", index_model="old")
        >>> check_queries(np.ones((2, 12)), config)
        Traceback (most recent call last):
        ...
        queryshift.errors.DimensionMismatchError: adapter maps query vectors of dim=8 (from 'new') into the dim=12 space of the index (embedded by 'old'), got query vectors with dim=12; these have the index's dimensionality: embed the queries with 'new', not with the index's model
    """
    if not config.cross_model:
        return check_vectors(vectors, config.dim, base_model=config.base_model, distance=config.distance)
    try:
        return check_vectors(vectors, config.in_dim, distance=config.distance)
    except DimensionMismatchError:
        got = np.shape(vectors)[-1] if np.ndim(vectors) in (1, 2) else None
        if got is None or got == config.in_dim:
            raise
        source = f" (from {config.base_model!r})" if config.base_model else ""
        index = f" (embedded by {config.index_model!r})" if config.index_model else ""
        hint = ""
        if got == config.dim:
            hint = f"; these have the index's dimensionality: embed the queries with {config.base_model or 'the query model'!r}, not with the index's model"
        raise DimensionMismatchError(
            f"adapter maps query vectors of dim={config.in_dim}{source} into the dim={config.dim} space of "
            f"the index{index}, got query vectors with dim={got}{hint}"
        ) from None


def check_vectors(
    vectors: object, dim: int, *, base_model: str | None = None, distance: str | None = None
) -> tuple[np.ndarray, bool]:
    """Return ``(batch, was_single)`` with ``batch`` a float32 ``(n, dim)`` array.

    Raises a :class:`DimensionMismatchError` naming the model the adapter was trained for,
    because a mismatch nearly always means queries were embedded by another model. Refuses,
    with a ``ValueError`` naming the rows, what no adapter can map meaningfully: NaN or inf
    anywhere, and (when ``distance="cosine"``) an all-zero query, which has no direction.
    Non-numeric input (bool, complex, text, objects) is a ``TypeError``, never cast.
    """
    array = np.asarray(vectors)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"query vectors must be real numbers, got an array of dtype {array.dtype}")
    array = array.astype(np.float32, copy=False)
    single = array.ndim == 1
    if single:
        array = array[None, :]  # (1, dim)
    if array.ndim != 2:
        raise DimensionMismatchError(
            f"query vectors must have shape (dim,) or (n, dim), got shape {array.shape}"
        )
    if array.shape[1] != dim:
        trained = f"; the adapter was trained for {base_model!r}" if base_model else ""
        raise DimensionMismatchError(
            f"adapter expects dim={dim}, got query vectors with dim={array.shape[1]}{trained}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"query vector {_rows(~np.isfinite(array).all(axis=1))} NaN or inf")
    if distance == "cosine" and not array.any(axis=1).all():
        raise ValueError(
            f"query vector {_rows(~array.any(axis=1))} all zeros: a zero vector has no direction, "
            "so its cosine similarity to every document is undefined"
        )
    return array, single


def finish_vectors(out: np.ndarray, *, normalize: bool, single: bool) -> np.ndarray:
    """Re-normalise (if asked, with :func:`normalize_rows`) and restore the caller's shape."""
    out = out.astype(np.float32, copy=False)
    if normalize:
        out = normalize_rows(out)
    elif not np.isfinite(out).all():
        raise ValueError(f"adapted vector {_rows(~np.isfinite(out).all(axis=1))} overflowed float32")
    return out[0] if single else out


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Unit-length rows of a float32 ``(n, dim)`` array; all-zero rows stay zero.

    Norms are taken in float32 (the fast path), and again in float64 when one leaves [1e-15, 1e15],
    where float32 squares may have overflowed or underflowed: rows scaled by 1e30 or 1e-30 still
    come out unit (numpy may warn about the overflow of the first pass; the result is right).

    Example:
        >>> print(normalize_rows(np.array([[3e-30, 4e-30], [0, 0]], np.float32)))
        [[0.6 0.8]
         [0.  0. ]]
    """
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)  # (n, 1)
    if norms.size and 1e-15 < norms.min() and norms.max() < 1e15:  # False for NaN too
        return vectors / norms
    wide = vectors.astype(np.float64)  # (n, dim)
    norms = np.linalg.norm(wide, axis=1, keepdims=True)  # (n, 1)
    if not np.isfinite(norms).all():
        raise ValueError(
            f"vector {_rows(~np.isfinite(norms[:, 0]))} NaN or inf (or overflowed float32); "
            "scale the query vectors down"
        )
    return (wide / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def _rows(bad: np.ndarray) -> str:
    """``"row 3 holds"`` / ``"rows [3, 7] hold"`` for an error message (first 10 rows)."""
    index = np.flatnonzero(bad)
    if index.size == 1:
        return f"row {int(index[0])} holds"
    more = ", ..." if index.size > 10 else ""
    return f"rows {[int(i) for i in index[:10]]}{more} ({index.size} in all) hold"


def register_kinds(*kinds: str) -> Callable[[type[_A]], type[_A]]:
    """Class decorator: :func:`~queryshift.adapters.load_adapter` builds ``kinds`` with this class.

    The registry lets :mod:`queryshift.adapters.io` load every kind without importing the adapter
    classes, which import it to save themselves (no import circle). Importing
    :mod:`queryshift.adapters` registers the built-in kinds.
    """

    def register(cls: type[_A]) -> type[_A]:
        for kind in kinds:
            _KINDS[kind] = cls
        return cls

    return register


def adapter_class(kind: str) -> type:
    """The class registered for ``kind`` (see :func:`register_kinds`).

    Example:
        >>> adapter_class("low_rank").__name__
        'LinearAdapter'
    """
    if kind not in _KINDS:
        raise AdapterFormatError(f"unknown adapter kind {kind!r}; known kinds: {sorted(_KINDS)}")
    return _KINDS[kind]


def checked_tensor(array: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    """``array`` as contiguous float32 of exactly ``shape`` with finite values, or an AdapterFormatError."""
    out = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
    if out.shape != shape:
        raise AdapterFormatError(f"tensor '{name}' must have shape {shape}, got {out.shape}")
    if not np.all(np.isfinite(out)):
        raise AdapterFormatError(f"tensor '{name}' contains non-finite values")
    return out


def check_tensor_names(kind: str, found: Iterable[str], allowed: Iterable[set[str]], note: str = "") -> None:
    """Raise an AdapterFormatError unless the tensor names ``found`` are one of the ``allowed`` sets.

    The message names the first allowed set (plus ``note``) and what was found.
    """
    found, allowed = set(found), list(allowed)
    if found not in allowed:
        raise AdapterFormatError(
            f"{kind} adapter needs tensors {sorted(allowed[0])}{note}, found {sorted(found)}"
        )


def mlp_tensors(
    config: AdapterConfig, kind: str, owner: str, *, w1: object, b1: object, w2: object, b2: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The checked ``(w1, b1, w2, b2)`` of a one-hidden-layer adapter of ``kind`` (class ``owner``).

    Shapes: ``w1`` ``(hidden_dim, in_dim)``, ``b1`` ``(hidden_dim,)``, ``w2`` ``(dim, hidden_dim)``,
    ``b2`` ``(dim,)`` (``in_dim`` is ``config.in_dim``: ``dim`` unless cross-model); shared by :class:`~queryshift.adapters.ResidualMLPAdapter` and
    :class:`~queryshift.adapters.TwoLayerAdapter`.
    """
    if config.kind != kind:
        raise AdapterFormatError(f"{owner} needs kind {kind!r}, got {config.kind!r}")
    d, h = config.dim, config.hidden_dim
    return (
        checked_tensor(w1, (h, config.in_dim), "w1"),
        checked_tensor(b1, (h,), "b1"),
        checked_tensor(w2, (d, h), "w2"),
        checked_tensor(b2, (d,), "b2"),
    )
