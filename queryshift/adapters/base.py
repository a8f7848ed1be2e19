"""The interface every query adapter implements, and the input checks they share.

An adapter is a function from query vectors to query vectors. It is applied at search
time, once per query, so it is plain numpy: nothing on this path imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from queryshift.adapters.config import AdapterConfig
from queryshift.errors import DimensionMismatchError

__all__ = ["QueryAdapter", "check_vectors", "finish_vectors"]


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
