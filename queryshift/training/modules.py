"""Torch twins of the numpy adapters, each exporting itself with ``to_adapter()``.

Every module is parametrised as ``x + alpha · update(x)`` with the update starting at zero,
so a fresh module is the identity and ``alpha`` interpolates between identity and the
trained transform without retraining.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from queryshift.adapters.config import AdapterConfig
from queryshift.adapters.linear import LinearAdapter
from queryshift.adapters.residual_mlp import ResidualMLPAdapter

__all__ = ["TorchLinear", "TorchLowRank", "TorchResidualMLP", "build_module", "state_snapshot"]


class TorchLinear(nn.Module):
    """``y = x + alpha · (x Δᵀ + b)``; exports :class:`LinearAdapter` with ``W = I + alpha·Δ``."""

    def __init__(self, dim: int, *, bias: bool = False) -> None:
        super().__init__()
        self.dim = dim
        self.delta = nn.Parameter(torch.zeros(dim, dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        return x + alpha * self.update(x)

    def update(self, x: torch.Tensor) -> torch.Tensor:
        """``x Δᵀ + b``: what ``alpha`` scales (validation ranks every alpha from it)."""
        update = x @ self.delta.T  # (n, dim)
        return update + self.bias if self.bias is not None else update

    def to_adapter(self, *, alpha: float = 1.0, **config_fields: object) -> LinearAdapter:
        config = AdapterConfig(kind="linear", dim=self.dim, **config_fields)
        delta = self.delta.detach().cpu().double().numpy()
        weight = np.eye(self.dim) + alpha * delta
        bias = (
            alpha * self.bias.detach().cpu().double().numpy() if self.bias is not None else np.zeros(self.dim)
        )
        return LinearAdapter(config, weight=weight.astype(np.float32), bias=bias.astype(np.float32))


class TorchLowRank(nn.Module):
    """``y = x + alpha · ((x V) Uᵀ + b)`` with U zero-initialised (LoRA-style), V random."""

    def __init__(
        self, dim: int, *, rank: int, bias: bool = False, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.dim, self.rank = dim, rank
        self.u = nn.Parameter(torch.zeros(dim, rank))
        self.v = nn.Parameter(torch.randn(dim, rank, generator=generator) / dim**0.5)
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        return x + alpha * self.update(x)

    def update(self, x: torch.Tensor) -> torch.Tensor:
        """``(x V) Uᵀ + b``: what ``alpha`` scales."""
        update = (x @ self.v) @ self.u.T  # (n, dim)
        return update + self.bias if self.bias is not None else update

    def to_adapter(self, *, alpha: float = 1.0, **config_fields: object) -> LinearAdapter:
        config = AdapterConfig(kind="low_rank", dim=self.dim, rank=self.rank, **config_fields)
        u = (alpha * self.u.detach().cpu().double().numpy()).astype(np.float32)
        v = self.v.detach().cpu().numpy().astype(np.float32)
        bias = (
            alpha * self.bias.detach().cpu().double().numpy() if self.bias is not None else np.zeros(self.dim)
        )
        return LinearAdapter(config, u=u, v=v, bias=bias.astype(np.float32))


class TorchResidualMLP(nn.Module):
    """``y = x + alpha · W2 gelu(W1 x + b1) (+ b2)`` with W2 zero-initialised."""

    def __init__(
        self, dim: int, *, hidden_dim: int, bias: bool = False, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.dim, self.hidden_dim = dim, hidden_dim
        self.w1 = nn.Linear(dim, hidden_dim)
        nn.init.normal_(self.w1.weight, std=dim**-0.5, generator=generator)
        nn.init.zeros_(self.w1.bias)
        self.w2 = nn.Linear(hidden_dim, dim, bias=bias)
        nn.init.zeros_(self.w2.weight)
        if self.w2.bias is not None:
            nn.init.zeros_(self.w2.bias)
        self.act = nn.GELU(approximate="tanh")

    def forward(self, x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        return x + alpha * self.update(x)  # (n, dim)

    def update(self, x: torch.Tensor) -> torch.Tensor:
        """``W2 gelu(W1 x + b1) (+ b2)``: what ``alpha`` scales."""
        return self.w2(self.act(self.w1(x)))  # (n, dim)

    def to_adapter(self, *, alpha: float = 1.0, **config_fields: object) -> ResidualMLPAdapter:
        config = AdapterConfig(kind="residual_mlp", dim=self.dim, hidden_dim=self.hidden_dim, **config_fields)
        b2 = self.w2.bias.detach().cpu().numpy() if self.w2.bias is not None else np.zeros(self.dim)
        return ResidualMLPAdapter(
            config,
            w1=self.w1.weight.detach().cpu().numpy(),
            b1=self.w1.bias.detach().cpu().numpy(),
            w2=(alpha * self.w2.weight.detach().cpu().double().numpy()).astype(np.float32),
            b2=(alpha * np.asarray(b2, dtype=np.float64)).astype(np.float32),
        )


def build_module(
    kind: str, dim: int, *, rank: int = 32, hidden_dim: int = 512, bias: bool = False, seed: int = 0
) -> TorchLinear | TorchLowRank | TorchResidualMLP:
    """A fresh (identity) torch adapter of the given kind."""
    generator = torch.Generator().manual_seed(seed)
    if kind == "linear":
        return TorchLinear(dim, bias=bias)
    if kind == "low_rank":
        return TorchLowRank(dim, rank=rank, bias=bias, generator=generator)
    if kind == "residual_mlp":
        return TorchResidualMLP(dim, hidden_dim=hidden_dim, bias=bias, generator=generator)
    raise ValueError(f"adapter kind must be linear, low_rank or residual_mlp, got {kind!r}")


def state_snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of ``module``'s weights that later training steps leave as it is (an epoch's candidate)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
