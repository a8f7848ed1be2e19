"""Training query adapters with torch (``pip install queryshift`` brings torch).

The trained torch modules export numpy adapters (``to_adapter()``), so serving never needs torch.
"""

from queryshift.errors import MissingDependencyError

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise MissingDependencyError(
        "queryshift.training needs torch: `pip install torch` (CPU builds: see https://pytorch.org)"
    ) from exc

from queryshift.training.config import TrainingConfig
from queryshift.training.cross_model import CrossModelResult, fit_closed_form_map, train_cross_model_adapter
from queryshift.training.loop import TrainingPairs, fit
from queryshift.training.losses import multi_positive_contrastive_loss
from queryshift.training.modules import TorchLinear, TorchLowRank, TorchResidualMLP, build_module
from queryshift.training.recipe import Candidate, TrainingResult, mine_hard_negatives, train_adapter

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
