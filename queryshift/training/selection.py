"""Choosing the adapter among candidates without being fooled by validation noise.

Why: with 81 candidates (epochs x alphas, plus the identity) scored on a few hundred held-out
queries, the best validation score is an optimistic estimate of the winner's gain (the winner's
curse); on a small split (a query split of 6 queries) it is mostly noise. Two defences, measured in
the README ("How the default recipe chooses an adapter"):

* the validation splits are drawn ``repeats`` times (different seeds) and each candidate is scored
  on all of them pooled, so the choice rests on more queries and on several splits of the data;
* the winner must also gain *significantly*: the lower end of an interval of its pooled per-query
  gain (mean - z * standard error, paired by query) must be above zero, else the identity is kept.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np

__all__ = ["choose_candidate"]


def choose_candidate(
    gains: Mapping[Hashable, Mapping[str, np.ndarray]], *, z: float = 0.0
) -> tuple[Hashable | None, dict[str, float]]:
    """The candidate with the largest worst-split mean gain, if that gain is significant.

    Args:
        gains: candidate key -> split name -> per-query gain over the identity ``(n_queries,)``
            (pooled over repeats); every candidate is scored on the same queries.
        z: The interval's half-width in standard errors (0: the pooled mean gain must be positive;
            1: about one-sided 84 %).

    Returns:
        ``(key, evidence)``; ``key`` is ``None`` when the identity is kept. ``evidence`` holds the
        chosen (or best rejected) candidate's ``worst_split_gain``, ``pooled_gain`` and ``lower_bound``.

    Example:
        >>> noise = {"a": {"document": np.array([0.3, -0.3, 0.2, -0.1])}}
        >>> choose_candidate(noise, z=1.0)[0] is None
        True
        >>> clear = {"a": {"document": np.full(50, 0.02) + np.linspace(-0.01, 0.01, 50)}}
        >>> choose_candidate(clear, z=1.0)[0]
        'a'
    """
    best, best_gain = None, 0.0
    # Ties go to the earlier candidate (fewer epochs, smaller alpha).
    for key, per_split in gains.items():
        gain = min(float(g.mean()) for g in per_split.values())
        if gain > best_gain + 1e-9:
            best, best_gain = key, gain
    if best is None:
        return None, {"worst_split_gain": 0.0}
    pooled = np.concatenate([np.asarray(g, dtype=np.float64) for g in gains[best].values()])
    se = float(pooled.std(ddof=1) / np.sqrt(pooled.size)) if pooled.size > 1 else float("inf")
    evidence = {
        "worst_split_gain": best_gain,
        "pooled_gain": float(pooled.mean()),
        "lower_bound": float(pooled.mean() - z * se),
    }
    return (best if evidence["lower_bound"] > 0 else None), evidence
