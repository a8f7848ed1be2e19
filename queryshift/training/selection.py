"""Choosing the adapter among candidates without being fooled by validation noise.

Why: with 121 candidates (30 epochs x 4 alphas, plus the identity) scored on a few hundred held-out
queries, the best validation score is an optimistic estimate of the winner's gain (the winner's
curse); on a small split (a query split of 6 queries) it is mostly noise. Two defences, measured in
the README ("How the default recipe chooses an adapter"):

* the validation splits are drawn ``repeats`` times (different seeds) and each candidate is scored
  on all of them pooled, so the choice rests on more queries and on several splits of the data;
* the winner must also gain *significantly*: the lower end of an interval of its pooled per-query
  gain (mean - z * standard error, paired by query) must be above zero, else the identity is kept;
* candidates are ranked by a gain smoothed over neighbouring epochs (default): the adapters of
  epochs ``e - 1``, ``e`` and ``e + 1`` at one alpha lie on one training path and gain nearly alike,
  while their validation noise differs, so a lone spike (one epoch scoring well by chance, the
  winner's curse) no longer wins over a candidate whose neighbours agree. The one shipped is still
  the centre candidate, and its own worst-split gain must be positive.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np

__all__ = ["choose_candidate"]


def choose_candidate(
    gains: Mapping[Hashable, Mapping[str, np.ndarray]],
    *,
    z: float = 0.0,
    epoch_smoothing: float = 0.0,
) -> tuple[Hashable | None, dict[str, float]]:
    """The candidate with the largest (smoothed) worst-split mean gain, if that gain is significant.

    Args:
        gains: candidate key -> split name -> per-query gain over the identity ``(n_queries,)``
            (pooled over repeats); every candidate is scored on the same queries.
        z: The interval's half-width in standard errors (0: the pooled mean gain must be positive;
            1: about one-sided 84 %).
        epoch_smoothing: Weight of the epochs just before and after (same alpha), relative to the
            candidate's own, in the split means that rank the candidates; keys must then be
            ``(epoch, alpha)``. 0: each candidate on its own; 0.5: weights 1/4, 1/2, 1/4
            (renormalised at the first and last epoch).

    Returns:
        ``(key, evidence)``; ``key`` is ``None`` when the identity is kept. ``evidence`` holds the
        chosen (or best rejected) candidate's ``worst_split_gain`` (its own), ``ranking_gain``
        (smoothed), ``pooled_gain`` and ``lower_bound``.

    Example:
        >>> noise = {"a": {"document": np.array([0.3, -0.3, 0.2, -0.1])}}
        >>> choose_candidate(noise, z=1.0)[0] is None
        True
        >>> clear = {"a": {"document": np.full(50, 0.02) + np.linspace(-0.01, 0.01, 50)}}
        >>> choose_candidate(clear, z=1.0)[0]
        'a'
        >>> # Epoch 2 at alpha 1 spikes on its own; alpha 0.5's epochs agree with each other.
        >>> path = {(e, a): {"query": np.full(3, g)} for (e, a), g in
        ...         {(1, 1.0): 0.0, (2, 1.0): 0.03, (3, 1.0): 0.0, (1, 0.5): 0.02, (2, 0.5): 0.02, (3, 0.5): 0.02}.items()}
        >>> choose_candidate(path)[0], choose_candidate(path, epoch_smoothing=0.5)[0]
        ((2, 1.0), (1, 0.5))
    """
    means = {key: {s: float(np.mean(g)) for s, g in per_split.items()} for key, per_split in gains.items()}
    ranking = _smoothed(means, epoch_smoothing) if epoch_smoothing > 0 else means
    best, best_rank = None, 0.0
    # Ties go to the earlier candidate (fewer epochs, smaller alpha).
    for key in gains:
        own, rank = min(means[key].values()), min(ranking[key].values())
        if own > 1e-9 and rank > best_rank + 1e-9:
            best, best_rank = key, rank
    if best is None:
        return None, {"worst_split_gain": 0.0}
    pooled = np.concatenate([np.asarray(g, dtype=np.float64) for g in gains[best].values()])
    se = float(pooled.std(ddof=1) / np.sqrt(pooled.size)) if pooled.size > 1 else float("inf")
    evidence = {
        "worst_split_gain": min(means[best].values()),
        "ranking_gain": best_rank,
        "pooled_gain": float(pooled.mean()),
        "lower_bound": float(pooled.mean() - z * se),
    }
    return (best if evidence["lower_bound"] > 0 else None), evidence


def _smoothed(means: dict[Hashable, dict[str, float]], weight: float) -> dict[Hashable, dict[str, float]]:
    """Each ``(epoch, alpha)`` candidate's split means averaged with epochs ``epoch ± 1`` at its alpha.

    Weights ``weight, 1, weight``; a neighbour that is not a candidate (before the first epoch,
    after the last) drops out and the rest are renormalised.
    """
    out = {}
    for key, own in means.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ValueError(f"epoch_smoothing needs (epoch, alpha) candidate keys, got {key!r}")
        epoch, alpha = key
        rows = [(1.0, own)] + [
            (weight, means[n]) for n in ((epoch - 1, alpha), (epoch + 1, alpha)) if n in means
        ]
        total = sum(w for w, _ in rows)
        out[key] = {s: sum(w * row[s] for w, row in rows) / total for s in own}
    return out
