"""The contrastive loss: softmax over candidate documents with several positives per query."""

from __future__ import annotations

import torch

__all__ = ["multi_positive_contrastive_loss"]


def multi_positive_contrastive_loss(
    queries: torch.Tensor,
    candidates: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float,
    normalize: bool = True,
) -> torch.Tensor:
    """InfoNCE where every relevant candidate counts as a positive.

    ``loss_i = logsumexp_all(s_i / τ) - logsumexp_{relevant}(s_i / τ)``: the negative log of the
    probability mass the softmax puts on query i's relevant documents. With one positive per
    query this is sentence-transformers' ``MultipleNegativesRankingLoss`` (scale = 1/τ).
    Treating a query's other relevant documents as positives, not negatives, avoids teaching
    the adapter to push away right answers.

    Args:
        queries: ``(batch, dim)`` adapted query vectors.
        candidates: ``(n_candidates, dim)`` document vectors (batch positives, hard negatives, or the corpus).
        labels: ``(batch, n_candidates)`` bool, True where the candidate is relevant to the query.
            Every row needs at least one True.
        temperature: Softmax temperature τ (0.05 ≈ MNRL's scale of 20).
        normalize: Cosine similarity (True) or raw dot product.

    Example:
        >>> q = torch.eye(2)
        >>> loss = multi_positive_contrastive_loss(q, torch.eye(2), torch.eye(2, dtype=torch.bool), temperature=0.05)
        >>> bool(loss < 1e-6)
        True
    """
    if normalize:
        queries = torch.nn.functional.normalize(queries, dim=-1)
    logits = queries @ candidates.T / temperature  # (batch, n_candidates)
    positive = logits.masked_fill(~labels, float("-inf"))
    return (torch.logsumexp(logits, dim=1) - torch.logsumexp(positive, dim=1)).mean()
