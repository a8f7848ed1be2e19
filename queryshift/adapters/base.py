"""The interface every query adapter implements, the input checks they share, and the registry of kinds.

An adapter is a function from query vectors to query vectors. It is applied at search
time, once per query, so it is plain numpy: nothing on this path imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np

from queryshift.adapters.config import AdapterConfig
from queryshift.errors import AdapterFormatError, DimensionMismatchError

__all__ = [
    "QueryAdapter",
    "adapter_class",
    "check_tensor_names",
    "check_vectors",
    "checked_tensor",
    "finish_vectors",
    "mlp_tensors",
    "register_kinds",
]

_A = TypeVar("_A")
_KINDS: dict[str, type] = {}


@runtime_checkable
class QueryAdapter(Protocol):
    """What the integrations need from an adapter.

    Implemented by :class:`~queryshift.adapters.LinearAdapter` (which covers the low-rank form)
    and :class:`~queryshift.adapters.ResidualMLPAdapter`.
    """

    config: AdapterConfig

    @property
    def dim(self) -> int: ...

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Map one query vector ``(dim,)`` or a batch ``(n, dim)`` to adapted vectors of the same shape."""
        ...

    def tensors(self) -> dict[str, np.ndarray]:
        """The weights by name, as written to ``adapter.safetensors``."""
        ...

    def save(self, path: str | Path) -> Path: ...


def check_vectors(vectors: object, dim: int, *, base_model: str | None = None) -> tuple[np.ndarray, bool]:
    """Return ``(batch, was_single)`` with ``batch`` a float32 ``(n, dim)`` array.

    Raises a :class:`DimensionMismatchError` naming the model the adapter was trained for,
    because a mismatch nearly always means queries were embedded by another model.
    """
    array = np.asarray(vectors, dtype=np.float32)
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
    return array, single


def finish_vectors(out: np.ndarray, *, normalize: bool, single: bool) -> np.ndarray:
    """Re-normalise (if asked) and restore the caller's shape."""
    out = out.astype(np.float32, copy=False)
    if normalize:
        norms = np.linalg.norm(out, axis=1, keepdims=True)  # (n, 1)
        out = out / np.maximum(norms, np.float32(1e-12))
    return out[0] if single else out


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

    Shapes: ``w1`` ``(hidden_dim, dim)``, ``b1`` ``(hidden_dim,)``, ``w2`` ``(dim, hidden_dim)``,
    ``b2`` ``(dim,)``; shared by :class:`~queryshift.adapters.ResidualMLPAdapter` and
    :class:`~queryshift.adapters.TwoLayerAdapter`.
    """
    if config.kind != kind:
        raise AdapterFormatError(f"{owner} needs kind {kind!r}, got {config.kind!r}")
    d, h = config.dim, config.hidden_dim
    return (
        checked_tensor(w1, (h, d), "w1"),
        checked_tensor(b1, (h,), "b1"),
        checked_tensor(w2, (d, h), "w2"),
        checked_tensor(b2, (d,), "b2"),
    )
