"""Training query adapters with torch (``pip install queryshift`` brings torch).

The trained torch modules export numpy adapters (``to_adapter()``), so serving never needs torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from queryshift.errors import MissingDependencyError

if TYPE_CHECKING:  # what the names below resolve to, for type checkers and editors
    from queryshift.training.config import TrainingConfig
    from queryshift.training.cross_model import (
        CrossModelResult,
        fit_closed_form_map,
        train_cross_model_adapter,
    )
    from queryshift.training.loop import TrainingPairs, fit
    from queryshift.training.losses import multi_positive_contrastive_loss
    from queryshift.training.modules import TorchLinear, TorchLowRank, TorchResidualMLP, build_module
    from queryshift.training.recipe import Candidate, TrainingResult, mine_hard_negatives, train_adapter

# Each public name and the module that holds it. They load on first access (PEP 562), so reading
# TrainingConfig (the CLI builds its flags from it) never imports torch: `queryshift --help` stays fast.
_WHERE = {
    "TrainingConfig": "config",
    "CrossModelResult": "cross_model",
    "fit_closed_form_map": "cross_model",
    "train_cross_model_adapter": "cross_model",
    "multi_positive_contrastive_loss": "losses",
    "TrainingPairs": "loop",
    "fit": "loop",
    "TorchLinear": "modules",
    "TorchLowRank": "modules",
    "TorchResidualMLP": "modules",
    "build_module": "modules",
    "Candidate": "recipe",
    "TrainingResult": "recipe",
    "mine_hard_negatives": "recipe",
    "train_adapter": "recipe",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _WHERE[name] != "config":
        try:
            import torch  # noqa: F401
        except ImportError as exc:  # pragma: no cover - exercised only without torch
            raise MissingDependencyError(
                "queryshift.training needs torch: `pip install torch` (CPU builds: see https://pytorch.org)"
            ) from exc
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


__all__ = [
    # config.py
    "TrainingConfig",
    # cross_model.py
    "CrossModelResult",
    "fit_closed_form_map",
    "train_cross_model_adapter",
    # losses.py
    "multi_positive_contrastive_loss",
    # loop.py
    "TrainingPairs",
    "fit",
    # modules.py
    "TorchLinear",
    "TorchLowRank",
    "TorchResidualMLP",
    "build_module",
    # recipe.py
    "Candidate",
    "TrainingResult",
    "mine_hard_negatives",
    "train_adapter",
]
