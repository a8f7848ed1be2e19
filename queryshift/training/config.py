"""What to train: every knob of the adapter training recipe, validated on construction."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["MIGRATION_RECIPE", "TrainingConfig", "check_seed"]

AdapterKind = Literal["linear", "low_rank", "residual_mlp"]
Negatives = Literal["in_batch", "corpus"]
Validation = Literal["both", "query", "document", "none"]
LearningRateSchedule = Literal["constant", "cosine"]


MIGRATION_RECIPE: dict[str, int | float | str | None] = {
    "pseudo_queries": 3,
    "pseudo_max_queries": None,
    "epochs": 20,
    "learning_rate": 1e-3,
    "lr_schedule": "constant",
}
"""What ``queryshift migrate`` trains with unless told otherwise: up to 3 sentences of each
document, no total cap, 20 epochs at a constant 1e-3, as the cross-model maps were measured
(README, "Changing the query model without re-indexing"). ``TrainingConfig()``'s 8 per document
and its cosine from 5e-4 over 30 epochs were measured on same-model adapters only."""


@dataclass(frozen=True)
class TrainingConfig:
    """Settings of :func:`~queryshift.training.train_adapter`; CLI flags map one-to-one onto fields.

    The defaults are the recipe measured in the README: a linear adapter trained with
    in-batch plus mined hard negatives on the labelled pairs and on pseudo-queries (sentences of
    the indexed documents, see :mod:`~queryshift.training.pseudo_queries`), candidates
    (epoch × interpolation with identity) chosen by their smallest gain over identity across a
    query-split and a document-split validation, each split's gain smoothed over the neighbouring
    epochs (``epoch_smoothing``) so that one epoch's lucky score does not win. The learning rate
    falls from 5e-4 along half a cosine to a tenth of it over the 30 epochs (``lr_schedule``).

    Example:
        >>> TrainingConfig(adapter="low_rank", rank=16).rank
        16
    """

    adapter: AdapterKind = field(default="linear", metadata={"help": "linear, low_rank or residual_mlp"})
    rank: int = field(default=32, metadata={"help": "rank of the low_rank update"})
    hidden_dim: int = field(default=512, metadata={"help": "hidden width of residual_mlp"})
    bias: bool = field(
        default=False, metadata={"help": "learn a bias (a document prior; risky on new documents)"}
    )
    epochs: int = field(default=30, metadata={"help": "passes over the training queries"})
    batch_size: int = field(default=64, metadata={"help": "queries per optimisation step"})
    learning_rate: float = field(default=5e-4, metadata={"help": "AdamW (peak) learning rate"})
    lr_schedule: LearningRateSchedule = field(
        default="cosine",
        metadata={
            "help": "constant, or cosine: half a cosine over the run's epochs x steps down to "
            "lr_min_ratio x learning_rate"
        },
    )
    lr_min_ratio: float = field(
        default=0.1,
        metadata={"help": "the cosine schedule's last learning rate, as a fraction of learning_rate"},
    )
    lr_warmup_ratio: float = field(
        default=0.0,
        metadata={
            "help": "fraction of the run's steps over which the learning rate first rises linearly "
            "to learning_rate (0: none)"
        },
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW decay of the update toward identity"})
    temperature: float = field(default=0.05, metadata={"help": "softmax temperature of the contrastive loss"})
    negatives: Negatives = field(
        default="in_batch", metadata={"help": "in_batch, or corpus (every document)"}
    )
    hard_negatives: int = field(
        default=8, metadata={"help": "negatives per query mined from the base ranking"}
    )
    validation: Validation = field(
        default="both", metadata={"help": "held-out split(s) used to choose the adapter"}
    )
    validation_fraction: float = field(
        default=0.2, metadata={"help": "fraction of training queries held out per split"}
    )
    validation_repeats: int = field(
        default=1,
        metadata={
            "help": "validation splits drawn (seeds seed, seed+1, ...), every candidate scored on all of them"
        },
    )
    gain_z: float = field(
        default=0.0,
        metadata={"help": "the chosen gain minus gain_z standard errors must stay above 0 (0: no such test)"},
    )
    epoch_smoothing: float = field(
        default=0.5,
        metadata={
            "help": "weight of the epochs just before and after (same alpha), relative to a candidate's own, "
            "in the validation gain that ranks candidates (0: its own only)"
        },
    )
    alphas: tuple[float, ...] = field(
        default=(0.25, 0.5, 0.75, 1.0),
        metadata={"help": "interpolation weights with identity tried on validation"},
    )
    pseudo_queries: int = field(
        default=8,
        metadata={"help": "sentences sampled per indexed document as unlabelled queries (0: labels only)"},
    )
    pseudo_max_words: int | None = field(
        default=48,
        metadata={"help": "words a pseudo-query keeps at most (a longer sentence keeps its first ones)"},
    )
    pseudo_max_documents: int = field(
        default=5000, metadata={"help": "documents sampled for pseudo-queries at most"}
    )
    pseudo_max_queries: int | None = field(
        default=15000,
        metadata={
            "help": "pseudo-queries in all at most, in whole rounds of one sentence per document (none: no cap)"
        },
    )
    refit: bool = field(
        default=True, metadata={"help": "retrain the chosen candidate on all training queries"}
    )
    metric: str = field(default="ndcg@10", metadata={"help": "validation metric that picks the candidate"})
    distance: Literal["cosine", "dot", "euclid"] = field(
        default="cosine", metadata={"help": "collection distance"}
    )
    seed: int = field(default=0, metadata={"help": "seed for splits, initialisation and batch order"})
    device: str | None = field(
        default=None, metadata={"help": "torch device; None picks cuda when available"}
    )

    def __post_init__(self) -> None:
        if self.adapter not in ("linear", "low_rank", "residual_mlp"):
            raise ValueError(f"adapter must be linear, low_rank or residual_mlp, got {self.adapter!r}")
        for name in (
            "rank",
            "hidden_dim",
            "epochs",
            "batch_size",
            "pseudo_max_documents",
            "validation_repeats",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("pseudo_max_queries", "pseudo_max_words"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        if not isinstance(self.pseudo_queries, int) or self.pseudo_queries < 0:
            raise ValueError(f"pseudo_queries must be an integer >= 0, got {self.pseudo_queries!r}")
        if self.hard_negatives < 0:
            raise ValueError(f"hard_negatives must be >= 0, got {self.hard_negatives}")
        for name in ("learning_rate", "temperature"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.gain_z >= 0:
            raise ValueError(f"gain_z must be >= 0, got {self.gain_z}")
        if not 0 <= self.epoch_smoothing <= 1:
            raise ValueError(f"epoch_smoothing must be in [0, 1], got {self.epoch_smoothing}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        ratio = self.lr_min_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= ratio <= 1.0:
            raise ValueError(
                f"lr_min_ratio must be a number in [0, 1] (a fraction of learning_rate), got {ratio!r}"
            )
        warmup = self.lr_warmup_ratio
        if isinstance(warmup, bool) or not isinstance(warmup, (int, float)) or not 0.0 <= warmup < 1.0:
            raise ValueError(
                f"lr_warmup_ratio must be a number in [0, 1) (a fraction of the steps), got {warmup!r}"
            )
        if self.lr_schedule == "constant" and ratio != _field_default("lr_min_ratio"):
            warnings.warn(
                f"lr_min_ratio={ratio} has no effect with lr_schedule='constant' (set lr_schedule='cosine')",
                stacklevel=3,
            )
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.negatives not in ("in_batch", "corpus"):
            raise ValueError(f"negatives must be 'in_batch' or 'corpus', got {self.negatives!r}")
        if self.validation not in ("both", "query", "document", "none"):
            raise ValueError(f"validation must be both, query, document or none, got {self.validation!r}")
        if not 0.0 < self.validation_fraction < 0.5:
            raise ValueError(f"validation_fraction must be in (0, 0.5), got {self.validation_fraction}")
        if not self.alphas or any(not 0.0 < a <= 1.0 for a in self.alphas):
            raise ValueError(f"alphas must be non-empty with values in (0, 1], got {self.alphas}")
        if self.distance not in ("cosine", "dot", "euclid"):
            raise ValueError(f"distance must be cosine, dot or euclid, got {self.distance!r}")
        check_seed(self.seed)
        from queryshift.embeddings import check_device

        check_device(self.device)
        from queryshift.evaluation import _parse_metric

        _parse_metric(self.metric)


def _field_default(name: str) -> object:
    return next(f.default for f in dataclasses.fields(TrainingConfig) if f.name == name)


def check_seed(seed: object) -> None:
    """Refuse a seed numpy, torch and the Hugging Face trainer cannot all take: an int in [0, 2**32 - 1].

    Example:
        >>> check_seed(-5)
        Traceback (most recent call last):
        ...
        ValueError: seed must be an integer in [0, 4294967295] (numpy and torch seeds), got -5
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, {2**32 - 1}] (numpy and torch seeds), got {seed!r}")
