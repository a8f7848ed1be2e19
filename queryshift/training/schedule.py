"""The learning rate of each optimisation step (``TrainingConfig.lr_schedule``).

The schedule is planned over the run's ``config.epochs`` whatever number of epochs a call of
:func:`~queryshift.training.loop.fit` actually trains: a run stopped early (the refit at the chosen
epoch, in :mod:`~queryshift.training.refit` or afterwards) takes exactly the steps, learning rates
included, that the first epochs of the full run took, so its state after ``e`` epochs is the same.
"""

from __future__ import annotations

import math

from queryshift.training.config import TrainingConfig

__all__ = ["learning_rate_at"]


def learning_rate_at(config: TrainingConfig, step: int, total_steps: int) -> float:
    """The learning rate of step ``step`` (counted from 0) of a run of ``total_steps`` steps.

    First, with ``lr_warmup_ratio > 0``, a linear warm-up: the first ``w = round(lr_warmup_ratio ×
    total_steps)`` steps take ``(step + 1) / w × learning_rate``. Then ``"constant"`` keeps
    ``config.learning_rate``; ``"cosine"`` follows half a cosine over the remaining steps from
    ``learning_rate`` down to ``lr_min_ratio × learning_rate`` at step ``total_steps`` (the last
    step, ``total_steps - 1``, is one step short of the floor, as in the Hugging Face schedules);
    steps past the end stay at the floor.

    Args:
        config: the run's settings (``learning_rate``, ``lr_schedule``, ``lr_min_ratio``,
            ``lr_warmup_ratio``).
        step: the step's index over the whole run, from 0.
        total_steps: the run's steps, ``config.epochs × steps per epoch``.

    Example:
        >>> config = TrainingConfig(learning_rate=1e-3, lr_schedule="cosine", lr_min_ratio=0.1)
        >>> [round(learning_rate_at(config, s, 4), 6) for s in range(5)]
        [0.001, 0.000868, 0.00055, 0.000232, 0.0001]
        >>> warm = TrainingConfig(learning_rate=1e-3, lr_schedule="constant", lr_warmup_ratio=0.5)
        >>> [round(learning_rate_at(warm, s, 4), 6) for s in range(4)]
        [0.0005, 0.001, 0.001, 0.001]
    """
    warmup = round(config.lr_warmup_ratio * total_steps)
    if step < warmup:
        return config.learning_rate * (step + 1) / warmup
    if config.lr_schedule == "constant":
        return config.learning_rate
    floor = config.lr_min_ratio * config.learning_rate
    progress = min(step - warmup, total_steps - warmup) / max(total_steps - warmup, 1)
    # Written as a decay from learning_rate, so its first step takes learning_rate exactly.
    return config.learning_rate - (config.learning_rate - floor) * 0.5 * (1.0 - math.cos(math.pi * progress))
