"""A residual-MLP query layer for sentence-transformers, shipped inside exported models.

This file is copied verbatim into every sentence-transformers model that
:func:`queryshift.export.to_sentence_transformer` writes for a ``residual_mlp`` adapter, and
sentence-transformers imports it from there (``trust_remote_code=True``). It therefore imports
only torch and sentence-transformers, never queryshift: the exported model must load where
queryshift is not installed.

It exists because sentence-transformers' own ``Dense`` cannot express the adapter exactly:
``Dense`` restores its activation by calling the class with no arguments, so the tanh
approximation of GELU that the adapter uses (``nn.GELU(approximate="tanh")``) comes back as
the exact-erf GELU, which differs by up to ~2e-4 per hidden unit.
"""

from __future__ import annotations

import torch
from sentence_transformers.base.modules.module import Module
from torch import nn

__all__ = ["QueryshiftResidualMLP"]


class QueryshiftResidualMLP(Module):
    """``y = x + W2 · gelu_tanh(W1 x + b1) + b2`` on ``features["sentence_embedding"]``.

    Args:
        dim: Embedding dimensionality (input and output).
        hidden_dim: Width of the hidden layer.
    """

    config_keys: list[str] = ["dim", "hidden_dim"]

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.hidden_dim = hidden_dim
        self.linear1 = nn.Linear(dim, hidden_dim)
        self.linear2 = nn.Linear(hidden_dim, dim)

    def forward(self, features: dict[str, torch.Tensor], **kwargs) -> dict[str, torch.Tensor]:
        x = features["sentence_embedding"]  # (batch, dim)
        hidden = nn.functional.gelu(self.linear1(x), approximate="tanh")  # (batch, hidden_dim)
        features["sentence_embedding"] = x + self.linear2(hidden)  # (batch, dim)
        return features

    def get_embedding_dimension(self) -> int:
        return self.dim

    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        self.save_config(output_path)
        self.save_torch_weights(output_path, safe_serialization=safe_serialization)

    @classmethod
    def load(
        cls,
        model_name_or_path: str,
        subfolder: str = "",
        token: bool | str | None = None,
        cache_folder: str | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        **kwargs,
    ) -> QueryshiftResidualMLP:
        hub_kwargs = {
            "subfolder": subfolder,
            "token": token,
            "cache_folder": cache_folder,
            "revision": revision,
            "local_files_only": local_files_only,
        }
        config = cls.load_config(model_name_or_path=model_name_or_path, **hub_kwargs)
        model = cls(dim=int(config["dim"]), hidden_dim=int(config["hidden_dim"]))
        return cls.load_torch_weights(model_name_or_path=model_name_or_path, model=model, **hub_kwargs)
