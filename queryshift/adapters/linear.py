"""Linear query adapters: a full matrix, or the identity plus a rank-r update (a thin map across models)."""

from __future__ import annotations

import numpy as np

from queryshift.adapters.base import (
    apply_map,
    check_tensor_names,
    checked_tensor,
    register_kinds,
)
from queryshift.adapters.config import AdapterConfig
from queryshift.adapters.io import SavesToDirectory
from queryshift.errors import AdapterFormatError

__all__ = ["LinearAdapter"]


@register_kinds("linear", "low_rank")
class LinearAdapter(SavesToDirectory):
    """``y = x Wᵀ + b`` (kind ``"linear"``) or ``y = x + (x V) Uᵀ + b`` (kind ``"low_rank"``).

    A linear map is the smallest transform that can rotate queries toward where their
    documents live; the low-rank form (W = I + U Vᵀ) keeps most of the base geometry and has
    2·d·r parameters instead of d², which regularises on small data sets.

    A cross-model adapter (``config.input_dim`` differs from ``config.dim``) maps query vectors
    of one model into the index of another: ``W`` is ``(dim, input_dim)``, and the low-rank
    kind is the thin map ``y = (x V) Uᵀ + b`` (no identity: the two spaces share no axes).

    Args:
        config: Kind, dim, input_dim, rank and provenance (see :class:`AdapterConfig`).
        weight: ``(dim, input_dim)`` matrix, for kind ``"linear"``.
        u: ``(dim, rank)`` and ``v``: ``(input_dim, rank)``, for kind ``"low_rank"``.
        bias: ``(dim,)`` added after the map; zeros when omitted.

    Relations:
        :class:`~queryshift.adapters.ResidualMLPAdapter` is the non-linear sibling.
        ``queryshift.training.TorchLinear`` trains this adapter and exports it with ``to_adapter()``.

    Example:
        >>> import numpy as np
        >>> adapter = LinearAdapter.identity(dim=4)
        >>> adapter.apply(np.ones((2, 4), np.float32)).shape
        (2, 4)
        >>> bool(np.allclose(adapter.apply(np.array([0.6, 0.8, 0.0, 0.0])), [0.6, 0.8, 0.0, 0.0]))
        True
        >>> cross = LinearAdapter(AdapterConfig(dim=3, input_dim=2), weight=np.ones((3, 2)))
        >>> cross.apply(np.ones((5, 2), np.float32)).shape
        (5, 3)
    """

    def __init__(
        self,
        config: AdapterConfig,
        *,
        weight: np.ndarray | None = None,
        u: np.ndarray | None = None,
        v: np.ndarray | None = None,
        bias: np.ndarray | None = None,
    ) -> None:
        if config.kind not in ("linear", "low_rank"):
            raise AdapterFormatError(f"LinearAdapter needs kind 'linear' or 'low_rank', got {config.kind!r}")
        d, d_in = config.dim, config.in_dim
        self.config = config
        self.bias = checked_tensor(bias if bias is not None else np.zeros(d, np.float32), (d,), "bias")
        self._has_bias = bool(self.bias.any())  # a zero bias (the usual case) is not added per query
        if config.kind == "linear":
            if weight is None:
                raise AdapterFormatError("a 'linear' adapter needs 'weight' of shape (dim, input_dim)")
            self.weight = checked_tensor(weight, (d, d_in), "weight")
            # x @ Wᵀ reads Wᵀ row by row when it is stored so: 10.5 µs against 13 µs for the
            # transposed view at 384 × 384 (`python -m benchmarks.speed`); one extra copy of W.
            self._weight_t = np.ascontiguousarray(self.weight.T)  # (input_dim, dim)
            self.u = self.v = None
        else:
            if u is None or v is None:
                raise AdapterFormatError(
                    "a 'low_rank' adapter needs 'u' of shape (dim, rank) and 'v' of shape (input_dim, rank)"
                )
            self.u = checked_tensor(u, (d, config.rank), "u")
            self.v = checked_tensor(v, (d_in, config.rank), "v")
            self.weight = None

    @classmethod
    def identity(cls, dim: int, *, rank: int | None = None, **config_fields: object) -> LinearAdapter:
        """An adapter that returns its input unchanged (up to re-normalisation)."""
        if rank is None:
            config = AdapterConfig(kind="linear", dim=dim, **config_fields)
            return cls(config, weight=np.eye(dim, dtype=np.float32))
        config = AdapterConfig(kind="low_rank", dim=dim, rank=rank, **config_fields)
        zeros = np.zeros((dim, rank), np.float32)
        return cls(config, u=zeros, v=zeros.copy())

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def input_dim(self) -> int:
        return self.config.in_dim

    def matrix(self) -> np.ndarray:
        """The effective ``(dim, input_dim)`` matrix W with ``y = x Wᵀ + b``."""
        if self.weight is not None:
            return self.weight
        if self.input_dim != self.dim:
            return self.u @ self.v.T
        return np.eye(self.dim, dtype=np.float32) + self.u @ self.v.T

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Adapt one query vector ``(input_dim,)`` or a batch ``(n, input_dim)``; float32 ``(dim,)`` / ``(n, dim)``."""
        return apply_map(vectors, self.config, self._map_rows)

    def _map_rows(self, x: np.ndarray) -> np.ndarray:
        """``(n, input_dim)`` or ``(input_dim,)`` float32 rows through the map, before re-normalisation."""
        if self.weight is not None:
            out = x @ self._weight_t  # (n, dim)
        elif self.input_dim != self.dim:
            out = (x @ self.v) @ self.u.T  # (n, dim)
        else:
            out = x + (x @ self.v) @ self.u.T  # (n, dim)
        if self._has_bias:
            out += self.bias
        return out

    def tensors(self) -> dict[str, np.ndarray]:
        if self.weight is not None:
            return {"weight": self.weight, "bias": self.bias}
        return {"u": self.u, "v": self.v, "bias": self.bias}

    @classmethod
    def from_tensors(cls, config: AdapterConfig, tensors: dict[str, np.ndarray]) -> LinearAdapter:
        expected = {"weight", "bias"} if config.kind == "linear" else {"u", "v", "bias"}
        check_tensor_names(config.kind, tensors, [expected])
        return cls(config, **tensors)

    def __repr__(self) -> str:
        extra = f", rank={self.config.rank}" if self.config.rank else ""
        source = f", input_dim={self.input_dim}" if self.input_dim != self.dim else ""
        return f"LinearAdapter(kind={self.config.kind!r}, dim={self.dim}{source}{extra})"
