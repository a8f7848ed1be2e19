"""Retrieval metrics over a whole corpus, and confidence intervals for differences.

Pure functions over arrays and qrels. Definitions follow sentence-transformers'
``InformationRetrievalEvaluator`` exactly (binary relevance, ties broken by ascending
document id), so figures can be compared with what users already measure.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from queryshift.adapters.base import normalize_rows
from queryshift.errors import DimensionMismatchError

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_METRICS",
    "PRIMARY_METRIC",
    "RetrievalResult",
    "rank_documents",
    "score_rankings",
    "evaluate_retrieval",
    "bootstrap_difference",
]

DEFAULT_METRICS = ("ndcg@10", "mrr@10", "hit@1", "hit@5", "hit@10", "recall@10", "map@100")
PRIMARY_METRIC = "ndcg@10"


@dataclass(frozen=True)
class RetrievalResult:
    """Mean metrics plus the per-query values they average (for bootstrap intervals).

    ``per_query[metric][i]`` belongs to ``query_ids[i]``.
    """

    metrics: dict[str, float]
    per_query: dict[str, np.ndarray] = field(repr=False)
    query_ids: list[str] = field(repr=False)

    def __getitem__(self, metric: str) -> float:
        return self.metrics[metric]


def rank_documents(
    query_vectors: np.ndarray,
    document_vectors: np.ndarray,
    *,
    k: int,
    distance: str = "cosine",
    chunk_size: int = 1024,
) -> np.ndarray:
    """Indices of the top-``k`` documents per query, best first: ``(n_queries, k)``.

    Ties are broken by ascending document index; callers that pass documents sorted by id get
    sentence-transformers' tie-breaking. ``distance`` is ``"cosine"`` (vectors normalised here),
    ``"dot"`` or ``"euclid"`` (smaller is better). NaN or inf in either array is a ``ValueError``
    naming the rows.
    """
    q, d = _ranking_inputs(query_vectors, document_vectors, distance)
    k = min(k, d.shape[0])
    d_sq = (d * d).sum(axis=1) if distance == "euclid" else None  # (n_documents,)
    out = np.empty((q.shape[0], k), dtype=np.int64)
    for start in range(0, q.shape[0], chunk_size):
        block = q[start : start + chunk_size]  # (b, dim)
        scores = block @ d.T  # (b, n_documents)
        if d_sq is not None:
            scores = 2 * scores - d_sq  # -||q-d||² up to a per-query constant
        if k < scores.shape[1]:
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # (b, k), unordered
        else:
            top = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
        out[start : start + block.shape[0]] = _best_first(top, np.take_along_axis(scores, top, axis=1))
    return out


def _ranking_inputs(
    query_vectors: np.ndarray, document_vectors: np.ndarray, distance: str
) -> tuple[np.ndarray, np.ndarray]:
    """Both sides as float32 ``(n, dim)`` arrays as ``distance`` ranks them (unit rows for cosine), checked."""
    q = np.asarray(query_vectors, dtype=np.float32)  # (n_queries, dim)
    d = np.asarray(document_vectors, dtype=np.float32)  # (n_documents, dim)
    if q.ndim != 2 or d.ndim != 2 or q.shape[1] != d.shape[1]:
        raise DimensionMismatchError(
            f"query vectors {q.shape} and document vectors {d.shape} must be (n, dim) with equal dim"
        )
    for name, vectors in (("query_vectors", q), ("document_vectors", d)):
        _refuse_non_finite(name, vectors)
    if distance == "cosine":
        return normalize_rows(q), normalize_rows(d)
    if distance not in ("dot", "euclid"):
        raise ValueError(f"distance must be cosine, dot or euclid, got {distance!r}")
    return q, d


def _refuse_non_finite(name: str, vectors: np.ndarray) -> None:
    """A ``ValueError`` naming the rows of ``vectors`` that hold NaN or inf: they would rank nothing."""
    if not np.isfinite(vectors).all():
        bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
        raise ValueError(
            f"{name} rows {bad[:10].tolist()} ({bad.size} in all) hold NaN or inf; such a vector "
            "ranks nothing and would count as a miss"
        )


def _best_first(columns: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``columns`` ``(m, k)`` reordered by their ``scores`` descending, ties by ascending column."""
    order = np.lexsort((columns, -scores), axis=1)
    return np.take_along_axis(columns, order, axis=1)


def score_rankings(
    rankings: Sequence[Sequence[str]],
    relevant: Sequence[set[str]],
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> dict[str, np.ndarray]:
    """Per-query metric values for ranked document-id lists.

    Args:
        rankings: For each query, document ids best first (at least as long as the largest k).
        relevant: For each query, its set of relevant document ids.
        metrics: Names ``{ndcg,mrr,hit,recall,precision,map}@k``.

    Example:
        >>> out = score_rankings([["a", "b"]], [{"b"}], metrics=["mrr@10", "hit@1", "ndcg@2"])
        >>> float(out["mrr@10"][0]), float(out["hit@1"][0]), round(float(out["ndcg@2"][0]), 4)
        (0.5, 0.0, 0.6309)
    """
    parsed = [_parse_metric(m) for m in metrics]
    out = {m: np.zeros(len(rankings), dtype=np.float64) for m in metrics}
    for i, (ranked, rel) in enumerate(zip(rankings, relevant, strict=True)):
        if not rel:
            raise ValueError(f"query #{i} has no relevant documents")
        hits = np.array([doc in rel for doc in ranked], dtype=np.float64)
        for name, (kind, k) in zip(metrics, parsed, strict=True):
            top = hits[:k]
            if kind == "hit":
                value = float(top.any())
            elif kind == "mrr":
                first = np.flatnonzero(top)
                value = 1.0 / (first[0] + 1) if first.size else 0.0
            elif kind == "recall":
                value = top.sum() / len(rel)
            elif kind == "precision":
                value = top.sum() / k
            elif kind == "ndcg":
                discounts = 1.0 / np.log2(np.arange(2, k + 2))
                dcg = float((top * discounts[: top.size]).sum())
                idcg = float(discounts[: min(len(rel), k)].sum())
                value = dcg / idcg
            else:  # map
                precision_at_hit = np.cumsum(top) / np.arange(1, top.size + 1)
                value = float((precision_at_hit * top).sum() / min(k, len(rel)))
            out[name][i] = value
    return out


def evaluate_retrieval(
    query_vectors: np.ndarray,
    query_ids: Sequence[str],
    document_vectors: np.ndarray,
    document_ids: Sequence[str],
    qrels: dict[str, set[str]],
    *,
    distance: str = "cosine",
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> RetrievalResult:
    """Search the whole corpus for each query and score the rankings.

    Args:
        query_vectors: ``(n_queries, dim)``, row i for ``query_ids[i]``.
        document_vectors: ``(n_documents, dim)``, row j for ``document_ids[j]``.
        qrels: query id → relevant document ids.

    Example:
        >>> import numpy as np
        >>> docs = np.eye(3, dtype=np.float32)
        >>> res = evaluate_retrieval(docs[[1]], ["q"], docs, ["a", "b", "c"], {"q": {"b"}}, metrics=["hit@1"])
        >>> res.metrics
        {'hit@1': 1.0}
    """
    if len(query_ids) != len(query_vectors) or len(document_ids) != len(document_vectors):
        raise ValueError("ids and vectors must have the same length")
    max_k = max(_parse_metric(m)[1] for m in metrics)
    top = rank_documents(query_vectors, document_vectors, k=max_k, distance=distance)  # (n_queries, k)
    doc_ids = np.asarray(document_ids, dtype=object)
    rankings = [list(doc_ids[row]) for row in top]
    per_query = score_rankings(rankings, [qrels[q] for q in query_ids], metrics=metrics)
    means = {m: float(v.mean()) for m, v in per_query.items()}
    return RetrievalResult(metrics=means, per_query=per_query, query_ids=list(query_ids))


def bootstrap_difference(
    baseline: np.ndarray,
    candidate: np.ndarray,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of ``candidate - baseline`` over paired queries with a percentile bootstrap interval.

    Returns:
        ``(difference, low, high)``. An interval that excludes 0 means the difference is
        unlikely to be resampling noise of this query set.

    Example:
        >>> import numpy as np
        >>> diff, low, high = bootstrap_difference(np.zeros(50), np.ones(50))
        >>> diff, low, high
        (1.0, 1.0, 1.0)
    """
    a = np.asarray(baseline, dtype=np.float64)
    b = np.asarray(candidate, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(
            f"baseline and candidate must be equal-length 1-d arrays, got {a.shape} and {b.shape}"
        )
    diffs = b - a  # (n_queries,)
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, diffs.size, size=(n_resamples, diffs.size))
    means = diffs[samples].mean(axis=1)  # (n_resamples,)
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(diffs.mean()), float(low), float(high)


def _parse_metric(name: str) -> tuple[str, int]:
    kind, _, k = name.partition("@")
    if kind not in ("ndcg", "mrr", "hit", "recall", "precision", "map") or not k.isdigit() or int(k) <= 0:
        raise ValueError(
            f"unknown metric {name!r}; expected e.g. ndcg@10, mrr@10, hit@5, recall@10, precision@5, map@100"
        )
    return kind, int(k)
