"""LlamaIndex's ``TwoLayerNN`` adapter in numpy: ``y = x + r · (W2 relu(W1 x + b1) + b2)``.

This adapter exists so that adapters trained with LlamaIndex's
``EmbeddingAdapterFinetuneEngine`` keep working after they are imported with
:func:`~queryshift.integrations.llamaindex.files.load_llamaindex_adapter`, without torch at
query time. It reproduces LlamaIndex's forward pass exactly: ReLU activation, biases on both
layers (LlamaIndex always builds them, whatever its ``bias`` flag says) and, in the residual
form, a scalar residual weight that starts at zero. queryshift itself trains
:class:`~queryshift.adapters.ResidualMLPAdapter` (GELU, no scalar weight) instead.
"""

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

__all__ = ["TwoLayerAdapter"]


@register_kinds("two_layer")
class TwoLayerAdapter(SavesToDirectory):
    """A two-layer ReLU network on query vectors, with or without LlamaIndex's scaled residual.

    * residual form (``residual_weight`` given): ``y = x + r · (W2 relu(W1 x + b1) + b2)``
      — LlamaIndex's ``TwoLayerNN(add_residual=True)``;
    * plain form (``residual_weight=None``): ``y = W2 relu(W1 x + b1) + b2``
      — ``TwoLayerNN(add_residual=False)``.

    Args:
        config: Must have ``kind="two_layer"`` and ``hidden_dim``.
        w1: ``(hidden_dim, input_dim)``, ``b1``: ``(hidden_dim,)``, ``w2``: ``(dim, hidden_dim)``, ``b2``: ``(dim,)``.
        residual_weight: ``(1,)`` scale of the MLP branch in the residual form; ``None`` for the plain form,
            the only one whose ``input_dim`` may differ from ``dim`` (LlamaIndex's ``in_features`` / ``out_features``).

    Relations:
        :class:`~queryshift.adapters.ResidualMLPAdapter` is what queryshift trains (GELU, unscaled);
        this class only reproduces imported LlamaIndex adapters.

    Example:
        >>> import numpy as np
        >>> adapter = TwoLayerAdapter.identity(dim=4, hidden_dim=8)
        >>> x = np.array([[0.6, 0.8, 0.0, 0.0]], np.float32)
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
        residual_weight: np.ndarray | None = None,
    ) -> None:
        self.w1, self.b1, self.w2, self.b2 = mlp_tensors(
            config, "two_layer", "TwoLayerAdapter", w1=w1, b1=b1, w2=w2, b2=b2
        )
        self.config = config
        if residual_weight is not None and config.in_dim != config.dim:
            raise AdapterFormatError(
                f"a residual two_layer adapter adds its input to its output, so input_dim={config.in_dim} "
                f"must equal dim={config.dim}; only the plain form (no 'residual_weight') maps across dimensions"
            )
        self.residual_weight = (
            None if residual_weight is None else checked_tensor(residual_weight, (1,), "residual_weight")
        )

    @classmethod
    def identity(
        cls, dim: int, *, hidden_dim: int, seed: int = 0, **config_fields: object
    ) -> TwoLayerAdapter:
        """The residual form with ``r = 0`` (LlamaIndex's initialisation), hence the identity."""
        config = AdapterConfig(kind="two_layer", dim=dim, hidden_dim=hidden_dim, **config_fields)
        rng = np.random.default_rng(seed)
        bound1, bound2 = 1 / np.sqrt(dim), 1 / np.sqrt(hidden_dim)
        return cls(
            config,
            w1=rng.uniform(-bound1, bound1, (hidden_dim, dim)),
            b1=rng.uniform(-bound1, bound1, hidden_dim),
            w2=rng.uniform(-bound2, bound2, (dim, hidden_dim)),
            b2=rng.uniform(-bound2, bound2, dim),
            residual_weight=np.zeros(1, np.float32),
        )

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def input_dim(self) -> int:
        return self.config.in_dim

    @property
    def residual(self) -> bool:
        """Whether this is the residual form (LlamaIndex ``add_residual=True``)."""
        return self.residual_weight is not None

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Adapt one query vector ``(input_dim,)`` or a batch ``(n, input_dim)``; float32 ``(dim,)`` / ``(n, dim)``."""
        return apply_map(vectors, self.config, self._map_rows)

    def _map_rows(self, x: np.ndarray) -> np.ndarray:
        """``(n, input_dim)`` or ``(input_dim,)`` float32 rows through the network, before re-normalisation."""
        hidden = np.maximum(x @ self.w1.T + self.b1, np.float32(0.0))  # (n, hidden_dim)
        out = hidden @ self.w2.T + self.b2  # (n, dim)
        if self.residual_weight is not None:
            out = self.residual_weight[0] * out + x  # (n, dim)
        return out

    def tensors(self) -> dict[str, np.ndarray]:
        tensors = {"w1": self.w1, "b1": self.b1, "w2": self.w2, "b2": self.b2}
        if self.residual_weight is not None:
            tensors["residual_weight"] = self.residual_weight
        return tensors

    @classmethod
    def from_tensors(cls, config: AdapterConfig, tensors: dict[str, np.ndarray]) -> TwoLayerAdapter:
        required = {"w1", "b1", "w2", "b2"}
        note = " (plus 'residual_weight' for the residual form)"
        check_tensor_names("two_layer", tensors, [required, required | {"residual_weight"}], note)
        return cls(config, **tensors)

    def __repr__(self) -> str:
        form = "residual" if self.residual else "plain"
        source = f", input_dim={self.input_dim}" if self.input_dim != self.dim else ""
        return f"TwoLayerAdapter(dim={self.dim}{source}, hidden_dim={self.config.hidden_dim}, {form})"
