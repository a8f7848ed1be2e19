"""What to fine-tune: every knob of the full sentence-transformers fine-tune, validated on construction."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from queryshift.embeddings import DEFAULT_MODEL
from queryshift.training.config import check_seed

__all__ = ["FinetuneConfig"]

FinetuneLoss = Literal["mnrl", "cached_mnrl"]
ValidationSplit = Literal["query", "document"]


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings of :func:`~queryshift.training.finetune.finetune_model`; CLI flags map one-to-one onto fields.

    The defaults are the settings measured on the LlamaIndex Lyft → Uber data (all-MiniLM-L6-v2
    trained on Lyft, checkpoint chosen on held-out Lyft queries: Uber nDCG@10 0.641 → 0.682,
    95% CI of the gain [+0.028, +0.055]; see the README): a few epochs of in-batch-negatives
    contrastive training (``MultipleNegativesRankingLoss``) with batches that never hold the
    same text twice, and the checkpoint kept that scores best on held-out *training* queries.

    Relations: :class:`~queryshift.training.config.TrainingConfig` configures the query-adapter
    path, which never touches document vectors; this config rewrites the model, so every
    document must be re-embedded (see :func:`queryshift.reindex.reindex_collection`).

    Example:
        >>> FinetuneConfig(epochs=1, loss="cached_mnrl", batch_size=256, mini_batch_size=32).loss
        'cached_mnrl'
    """

    model: str = field(
        default=DEFAULT_MODEL, metadata={"help": "base sentence-transformers model name or local folder"}
    )
    epochs: int = field(default=4, metadata={"help": "passes over the training pairs"})
    batch_size: int = field(
        default=32, metadata={"help": "pairs per step; every other pair's document is a negative"}
    )
    learning_rate: float = field(default=5e-5, metadata={"help": "peak AdamW learning rate"})
    warmup_ratio: float = field(
        default=0.1, metadata={"help": "fraction of steps with linear learning-rate warmup"}
    )
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    loss: FinetuneLoss = field(
        default="mnrl",
        metadata={"help": "mnrl, or cached_mnrl (GradCache: large batches in small memory)"},
    )
    mini_batch_size: int | None = field(
        default=None,
        metadata={"help": "texts per forward pass with loss=cached_mnrl; None: 32"},
    )
    scale: float = field(default=20.0, metadata={"help": "inverse temperature of the ranking loss's softmax"})
    matryoshka_dims: tuple[int, ...] = field(
        default=(), metadata={"help": "train truncations to these dims too (MatryoshkaLoss); empty: off"}
    )
    hard_negatives: int = field(
        default=0, metadata={"help": "hard negatives per pair mined with the base model; 0: off"}
    )
    hard_negatives_margin: float = field(
        default=0.05,
        metadata={
            "help": "drop mined negatives scoring within this fraction of the positive (false negatives)"
        },
    )
    validation_split: ValidationSplit = field(
        default="document",
        metadata={"help": "how validation queries are carved from training data: query or document"},
    )
    validation_fraction: float = field(
        default=0.2, metadata={"help": "fraction of training queries held out to choose the checkpoint"}
    )
    evaluations_per_epoch: int = field(
        default=1, metadata={"help": "validation runs (and candidate checkpoints) per epoch"}
    )
    max_seq_length: int | None = field(
        default=None, metadata={"help": "truncate texts to this many tokens; None keeps the model's"}
    )
    seed: int = field(default=0, metadata={"help": "seed for the validation split, batch order and init"})

    def __post_init__(self) -> None:
        check_seed(self.seed)
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"model must be a model name or folder, got {self.model!r}")
        for name in ("epochs", "batch_size", "evaluations_per_epoch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.batch_size < 2:
            raise ValueError(
                f"batch_size must be >= 2 (in-batch negatives need other pairs in the batch), got {self.batch_size}"
            )
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.loss not in ("mnrl", "cached_mnrl"):
            raise ValueError(f"loss must be 'mnrl' or 'cached_mnrl', got {self.loss!r}")
        if self.mini_batch_size is not None:
            if self.loss != "cached_mnrl":
                raise ValueError(
                    f"mini_batch_size={self.mini_batch_size} only applies to loss='cached_mnrl'; "
                    "set loss='cached_mnrl' or leave mini_batch_size unset"
                )
            if (
                not isinstance(self.mini_batch_size, int)
                or isinstance(self.mini_batch_size, bool)
                or self.mini_batch_size <= 0
            ):
                raise ValueError(f"mini_batch_size must be a positive integer, got {self.mini_batch_size!r}")
        if not self.scale > 0:
            raise ValueError(f"scale must be positive, got {self.scale}")
        dims = tuple(self.matryoshka_dims)
        if any(not isinstance(d, int) or isinstance(d, bool) or d <= 0 for d in dims):
            raise ValueError(f"matryoshka_dims must be positive integers, got {self.matryoshka_dims!r}")
        if len(set(dims)) != len(dims):
            raise ValueError(f"matryoshka_dims must not repeat a dim, got {self.matryoshka_dims!r}")
        object.__setattr__(self, "matryoshka_dims", tuple(sorted(dims, reverse=True)))
        if not isinstance(self.hard_negatives, int) or self.hard_negatives < 0:
            raise ValueError(f"hard_negatives must be an integer >= 0, got {self.hard_negatives!r}")
        if not 0.0 <= self.hard_negatives_margin < 1.0:
            raise ValueError(f"hard_negatives_margin must be in [0, 1), got {self.hard_negatives_margin}")
        if self.validation_split not in ("query", "document"):
            raise ValueError(f"validation_split must be 'query' or 'document', got {self.validation_split!r}")
        if not 0.0 < self.validation_fraction < 0.5:
            raise ValueError(f"validation_fraction must be in (0, 0.5), got {self.validation_fraction}")
        if self.max_seq_length is not None and (
            not isinstance(self.max_seq_length, int) or self.max_seq_length <= 0
        ):
            raise ValueError(
                f"max_seq_length must be a positive integer or None, got {self.max_seq_length!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready field values (tuples as lists)."""
        out = asdict(self)
        out["matryoshka_dims"] = list(self.matryoshka_dims)
        return out
