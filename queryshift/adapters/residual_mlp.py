"""Residual MLP query adapter: ``y = x + W2 · gelu(W1 x + b1) + b2`` (``P x`` in place of ``x`` across models)."""

from __future__ import annotations

import numpy as np

from queryshift.adapters.base import (
    apply_map,
    check_tensor_names,
    checked_tensor,
    mlp_tensors,
    register_kinds,
)
from queryshift.adapters.config import AdapterConfig
from queryshift.adapters.io import SavesToDirectory
from queryshift.errors import AdapterFormatError

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

    With a ``projection`` P the skip connection is ``P x`` instead of ``x``: ``y = P x + W2 ·
    gelu(W1 x + b1) + b2``. A cross-model adapter (``config.input_dim`` differs from ``dim``)
    needs it, since its queries live in another space; the trainer starts P at the
    least-squares map between the two models, so a fresh adapter is that map.

    Args:
        config: Must have ``kind="residual_mlp"`` and ``hidden_dim``.
        w1: ``(hidden_dim, input_dim)``, ``b1``: ``(hidden_dim,)``, ``w2``: ``(dim, hidden_dim)``, ``b2``: ``(dim,)``.
        projection: ``(dim, input_dim)`` skip map; ``None`` for the identity (needs ``input_dim == dim``).

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
        self,
        config: AdapterConfig,
        *,
        w1: np.ndarray,
        b1: np.ndarray,
        w2: np.ndarray,
        b2: np.ndarray,
        projection: np.ndarray | None = None,
    ) -> None:
        self.w1, self.b1, self.w2, self.b2 = mlp_tensors(
            config, "residual_mlp", "ResidualMLPAdapter", w1=w1, b1=b1, w2=w2, b2=b2
        )
        self.config = config
        if projection is None and config.in_dim != config.dim:
            raise AdapterFormatError(
                f"a residual_mlp adapter from dim {config.in_dim} to {config.dim} needs 'projection' "
                f"of shape ({config.dim}, {config.in_dim})"
            )
        self.projection = (
            None
            if projection is None
            else checked_tensor(projection, (config.dim, config.in_dim), "projection")
        )

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

    @property
    def input_dim(self) -> int:
        return self.config.in_dim

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Adapt one query vector ``(input_dim,)`` or a batch ``(n, input_dim)``; float32 ``(dim,)`` / ``(n, dim)``."""
        return apply_map(vectors, self.config, self._map_rows)

    def _map_rows(self, x: np.ndarray) -> np.ndarray:
        """``(n, input_dim)`` or ``(input_dim,)`` float32 rows through the MLP, before re-normalisation."""
        hidden = gelu(x @ self.w1.T + self.b1)  # (n, hidden_dim)
        skip = x if self.projection is None else x @ self.projection.T  # (n, dim)
        return skip + hidden @ self.w2.T + self.b2  # (n, dim)

    def tensors(self) -> dict[str, np.ndarray]:
        tensors = {"w1": self.w1, "b1": self.b1, "w2": self.w2, "b2": self.b2}
        if self.projection is not None:
            tensors["projection"] = self.projection
        return tensors

    @classmethod
    def from_tensors(cls, config: AdapterConfig, tensors: dict[str, np.ndarray]) -> ResidualMLPAdapter:
        required = {"w1", "b1", "w2", "b2"}
        if config.in_dim != config.dim:
            check_tensor_names(
                "residual_mlp", tensors, [required | {"projection"}], " (input_dim differs from dim)"
            )
        else:
            check_tensor_names("residual_mlp", tensors, [required, required | {"projection"}])
        return cls(config, **tensors)

    def __repr__(self) -> str:
        source = f", input_dim={self.input_dim}" if self.input_dim != self.dim else ""
        return f"ResidualMLPAdapter(dim={self.dim}{source}, hidden_dim={self.config.hidden_dim})"
