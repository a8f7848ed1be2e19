"""Residual MLP query adapter: ``y = x + W2 · gelu(W1 x + b1) + b2``."""

from __future__ import annotations

import numpy as np

from queryshift.adapters.base import (
    check_tensor_names,
    check_vectors,
    finish_vectors,
    mlp_tensors,
    register_kinds,
)
from queryshift.adapters.config import AdapterConfig
from queryshift.adapters.io import SavesToDirectory

__all__ = ["ResidualMLPAdapter", "gelu"]

_SQRT_2_OVER_PI = np.float32(np.sqrt(2.0 / np.pi))


def gelu(x: np.ndarray) -> np.ndarray:
    """tanh-approximated GELU, the same as ``torch.nn.GELU(approximate="tanh")``."""
    return 0.5 * x * (1.0 + np.tanh(_SQRT_2_OVER_PI * (x + np.float32(0.044715) * x**3)))


@register_kinds("residual_mlp")
class ResidualMLPAdapter(SavesToDirectory):
    """A residual two-layer MLP: bends queries non-linearly while starting as the identity.

    The output layer is zero-initialised by the trainer, so a fresh adapter changes nothing
    (the same trick as LoRA's ``lora_B`` and LlamaIndex's ``TwoLayerNN`` residual weight).

    Args:
        config: Must have ``kind="residual_mlp"`` and ``hidden_dim``.
        w1: ``(hidden_dim, dim)``, ``b1``: ``(hidden_dim,)``, ``w2``: ``(dim, hidden_dim)``, ``b2``: ``(dim,)``.

    Relations:
        :class:`~queryshift.adapters.LinearAdapter` is the linear sibling; on a few hundred
        pairs it usually generalises better.

    Example:
        >>> import numpy as np
        >>> adapter = ResidualMLPAdapter.identity(dim=4, hidden_dim=8)
        >>> x = np.array([[1.0, 0.0, 0.0, 0.0]], np.float32)
        >>> bool(np.allclose(adapter.apply(x), x))
        True
    """

    def __init__(
        self, config: AdapterConfig, *, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray
    ) -> None:
        self.w1, self.b1, self.w2, self.b2 = mlp_tensors(
            config, "residual_mlp", "ResidualMLPAdapter", w1=w1, b1=b1, w2=w2, b2=b2
        )
        self.config = config

    @classmethod
    def identity(
        cls, dim: int, *, hidden_dim: int, seed: int = 0, **config_fields: object
    ) -> ResidualMLPAdapter:
        """A fresh adapter: random first layer, zero output layer, hence the identity."""
        config = AdapterConfig(kind="residual_mlp", dim=dim, hidden_dim=hidden_dim, **config_fields)
        rng = np.random.default_rng(seed)
        w1 = rng.normal(0, 1 / np.sqrt(dim), (hidden_dim, dim)).astype(np.float32)
        return cls(
            config,
            w1=w1,
            b1=np.zeros(hidden_dim, np.float32),
            w2=np.zeros((dim, hidden_dim), np.float32),
            b2=np.zeros(dim, np.float32),
        )

    @property
    def dim(self) -> int:
        return self.config.dim

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Adapt one query vector ``(dim,)`` or a batch ``(n, dim)``; returns float32 of the same shape."""
        x, single = check_vectors(
            vectors, self.dim, base_model=self.config.base_model, distance=self.config.distance
        )  # (n, dim)
        hidden = gelu(x @ self.w1.T + self.b1)  # (n, hidden_dim)
        out = x + hidden @ self.w2.T + self.b2  # (n, dim)
        return finish_vectors(out, normalize=self.config.normalize, single=single)

    def tensors(self) -> dict[str, np.ndarray]:
        return {"w1": self.w1, "b1": self.b1, "w2": self.w2, "b2": self.b2}

    @classmethod
    def from_tensors(cls, config: AdapterConfig, tensors: dict[str, np.ndarray]) -> ResidualMLPAdapter:
        check_tensor_names("residual_mlp", tensors, [{"w1", "b1", "w2", "b2"}])
        return cls(config, **tensors)

    def __repr__(self) -> str:
        return f"ResidualMLPAdapter(dim={self.dim}, hidden_dim={self.config.hidden_dim})"
