"""Validation scoring of many candidate adapters at once, vectorised over queries and candidates.

The recipe scores every (epoch, alpha) candidate on its held-out splits. Per-query Python
(``evaluate_retrieval`` builds id lists and loops over queries and metrics) cost more than the
training steps themselves, so this scorer keeps the split's relevance as sorted integer keys and
computes the same metrics, by the same definitions (:func:`queryshift.evaluation.score_rankings`),
on whole ``(n_candidates, n_queries, k)`` hit arrays. Ranking is
:func:`queryshift.evaluation.rank_documents`, with its tie-breaking, over the split's corpus in
memory; a :data:`Ranker` replaces it when the corpus lives elsewhere (a Qdrant collection
searched by :class:`~queryshift.integrations.qdrant.index_training.QdrantRanker`), so validation
memory grows with the queries, not the corpus.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from queryshift.adapters.base import normalize_rows
from queryshift.embeddings import EmbeddedDataset
from queryshift.evaluation import (
    _best_first,
    _parse_metric,
    _ranking_inputs,
    _refuse_non_finite,
    rank_documents,
)

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

__all__ = ["SplitScorer", "Ranker", "rank_top_k"]

_BASE_CACHE_BYTES = 64 * 2**20
_COUNT_RANKS_UP_TO = 8  # relevant documents per query up to which ranks are counted, not selected

Ranker = Callable[[np.ndarray, int], Sequence[Sequence[str]]]
"""``ranker(queries, k)``: the ids of the ``k`` best documents of each row of ``queries`` ``(m, dim)``, best first.

Ids outside the split's corpus count as non-relevant; fewer than ``k`` ids per row are allowed.
"""


class SplitScorer:
    """Mean retrieval metrics of stacked query matrices over one split's corpus and qrels.

    Args:
        part: The held-out queries with the corpus they search.
        metrics: Names ``{ndcg,mrr,hit,recall,precision,map}@k``.
        distance: ``"cosine"``, ``"dot"`` or ``"euclid"``, as in :func:`rank_documents`.
        ranker: Ranks the queries instead of ``rank_documents`` over ``part``'s document vectors
            (see :data:`Ranker`); ``part`` then only needs the relevant documents' ids.

    Example:
        >>> from queryshift.data import RetrievalDataset
        >>> docs = np.eye(3, dtype=np.float32)
        >>> ds = RetrievalDataset(queries={"q": ""}, documents={"a": "", "b": "", "c": ""}, qrels={"q": {"b"}})
        >>> scorer = SplitScorer(EmbeddedDataset(ds, ["q"], docs[[1]], ["a", "b", "c"], docs, "toy"), ["hit@1"])
        >>> scorer.score(np.stack([docs[[1]], docs[[2]]]))
        [{'hit@1': 1.0}, {'hit@1': 0.0}]
    """

    def __init__(
        self,
        part: EmbeddedDataset,
        metrics: Sequence[str],
        *,
        distance: str = "cosine",
        ranker: Ranker | None = None,
    ) -> None:
        self.metrics = tuple(metrics)
        self._parsed = [_parse_metric(m) for m in self.metrics]
        self._k = max(k for _, k in self._parsed)
        self._documents = part.document_vectors
        self._distance = distance
        self._ranker = ranker
        self.n_queries = len(part.query_ids)
        n_docs = len(part.document_ids)
        position = {d: i for i, d in enumerate(part.document_ids)}
        self._position = position
        relevant = [part.dataset.qrels[q] for q in part.query_ids]
        empty = [q for q, rel in zip(part.query_ids, relevant, strict=True) if not rel]
        if empty:
            raise ValueError(f"query {empty[0]!r} has no relevant documents")
        self._n_relevant = np.array([len(rel) for rel in relevant], dtype=np.float64)  # (n_queries,)
        keys = [row * n_docs + position[d] for row, rel in enumerate(relevant) for d in rel]
        self._keys = np.unique(np.asarray(keys, dtype=np.int64))  # sorted (query row, document) codes
        self._n_docs = n_docs
        rows, columns = np.divmod(self._keys, max(n_docs, 1))
        per_row = np.bincount(rows, minlength=self.n_queries)  # (n_queries,)
        self._relevant_columns = np.full((self.n_queries, int(per_row.max(initial=0))), -1, dtype=np.int64)
        self._relevant_columns[
            rows, np.arange(len(rows)) - np.repeat(np.cumsum(per_row) - per_row, per_row)
        ] = columns  # (n_queries, most relevant documents of a query), -1 padded
        self._relevant_tensor: torch.Tensor | None = None
        self._ranking: torch.Tensor | None = None  # the corpus as ranked, built on first use
        self._squares: torch.Tensor | None = None
        self._base: tuple[np.ndarray, list[torch.Tensor]] | None = None  # (queries, their score chunks)

    def score(self, vectors: np.ndarray) -> list[dict[str, float]]:
        """Mean metrics of each query matrix in ``vectors``: ``(n_candidates, n_queries, dim)``."""
        per_query = self.score_per_query(vectors)
        return [{m: float(per_query[m][c].mean()) for m in self.metrics} for c in range(vectors.shape[0])]

    def score_per_query(self, vectors: np.ndarray) -> dict[str, np.ndarray]:
        """Metric name → ``(n_candidates, n_queries)`` values of each query matrix in ``vectors``."""
        n_candidates = vectors.shape[0]
        flat = vectors.reshape(n_candidates * self.n_queries, -1)  # (n_candidates * n_queries, dim)
        if self._ranker is None:
            top = rank_documents(flat, self._documents, k=self._k, distance=self._distance)  # (m, w)
        else:
            top = self._ranked_positions(flat)  # (m, k), -1 = outside the split's corpus
        return self._metrics(top, n_candidates)

    def score_alpha_path(
        self, queries: np.ndarray, updates: np.ndarray, alphas: Sequence[float]
    ) -> dict[str, np.ndarray]:
        """:meth:`score_per_query` of ``queries + alpha · updates`` for every alpha, at the cost of two.

        Every trained module is ``x + alpha · update(x)``, so a query's scores against the corpus
        are ``s(x) + alpha · s(update)`` up to a positive factor per query, which leaves its ranking
        unchanged (cosine: the query's norm; euclid: ``-|q|²``, the same for every document). Two
        products with the corpus then rank every alpha, where stacking the alphas took one product
        each: on 17,320 documents the products are most of a validation pass.

        Args:
            queries: ``(n_queries, dim)`` base query vectors of this split.
            updates: ``(n_queries, dim)`` the module's ``update(queries)``.
            alphas: The interpolation weights to rank.

        Returns:
            Metric name → ``(len(alphas), n_queries)``, as :meth:`score_per_query` of the stack.
        """
        if self._ranker is not None:  # the ranker searches with real vectors: build them
            return self.score_per_query(np.stack([queries + alpha * updates for alpha in alphas]))
        _refuse_non_finite("adapted query", updates)
        import torch  # training-side: torch.topk selects k of a row several times faster than argpartition

        documents = self._ranking_documents()  # (n_docs, dim)
        k = min(self._k, documents.shape[0])
        by_count = self._relevant_columns.shape[1] <= _COUNT_RANKS_UP_TO
        hits = np.empty((len(alphas), self.n_queries, k), dtype=np.float64)
        base_scores = self._base_scores(queries)
        for start in range(0, self.n_queries, 1024):
            stop = min(start + 1024, self.n_queries)
            base = base_scores[start // 1024] if base_scores else self._scores(queries[start:stop])
            step = _scores_against(updates[start:stop], documents, None)  # (m, n_docs)
            if self._distance == "euclid":
                step *= 2
            for i, alpha in enumerate(alphas):
                scores = torch.add(base, step, alpha=alpha) if alpha else base  # (m, n_docs)
                hits[i, start:stop] = (
                    self._hits_by_count(scores, start, k)
                    if by_count
                    else self._hits(_top_k(scores, k), start)
                )
        return self._from_hits(hits.reshape(len(alphas) * self.n_queries, k), len(alphas))

    def _hits_by_count(self, scores: torch.Tensor, start: int, k: int) -> np.ndarray:
        """``(m, k)`` hits of rows ``start…`` from each relevant document's rank, counted, not sorted.

        A relevant document's rank is the number of documents scoring above it, plus those tied
        with it at a lower index (:func:`rank_documents`' order). With a few relevant documents
        per query that is a few comparison passes over the scores, several times cheaper than
        selecting each row's top k (13 ns an entry here, most of a validation pass).
        """
        import torch

        m = scores.shape[0]
        columns = self._relevant_columns_tensor()[start : start + m]  # (m, R), -1 = none
        relevant = scores.gather(1, columns.clamp_min(0))  # (m, R)
        hits = torch.zeros(m, k + 1, dtype=torch.float64)  # the last column takes ranks >= k
        rows = torch.arange(m)
        for r in range(columns.shape[1]):
            score = relevant[:, r : r + 1]  # (m, 1)
            rank = (scores > score).sum(dim=1)  # (m,)
            tied = (scores >= score).sum(dim=1) - rank > 1
            if bool(tied.any()):  # rare: only those rows pay for the tie-break by index
                which = tied.nonzero()[:, 0]
                lower = torch.arange(scores.shape[1]) < columns[which, r : r + 1]  # (t, n_docs)
                rank[which] += ((scores[which] == score[which]) & lower).sum(dim=1)
            rank = torch.where(columns[:, r] >= 0, rank.clamp_max(k), k)
            hits[rows, rank] = 1.0
        return hits[:, :k].numpy()

    def _relevant_columns_tensor(self) -> torch.Tensor:
        import torch

        if self._relevant_tensor is None:
            self._relevant_tensor = torch.from_numpy(self._relevant_columns)
        return self._relevant_tensor

    def _scores(self, queries: np.ndarray) -> torch.Tensor:
        """``(m, n_docs)`` scores of ``queries`` that rank as :func:`rank_documents` does."""
        return _scores_against(queries, self._ranking_documents(), self._squares)

    def _base_scores(self, queries: np.ndarray) -> list[torch.Tensor] | None:
        """The base queries' scores in chunks of 1,024 rows, kept for the next epoch where they fit.

        Every epoch ranks the same base queries: below ``_BASE_CACHE_BYTES`` their product with
        the corpus is made once instead of once per epoch (one of the two products of a pass).
        """
        if self._base is not None and self._base[0] is queries:
            return self._base[1]
        if self.n_queries * self._n_docs * 4 > _BASE_CACHE_BYTES:
            return None
        chunks = [self._scores(queries[start : start + 1024]) for start in range(0, self.n_queries, 1024)]
        self._base = (queries, chunks)
        return chunks

    def _ranking_documents(self) -> torch.Tensor:
        """The corpus as :func:`rank_documents` scores it (unit rows for cosine), made once."""
        if self._ranking is None:
            d = np.asarray(self._documents, dtype=np.float32)  # (n_docs, dim)
            if self._distance == "cosine":
                d = normalize_rows(d)
            elif self._distance not in ("dot", "euclid"):
                raise ValueError(f"distance must be cosine, dot or euclid, got {self._distance!r}")
            self._ranking, self._squares = _ranked_corpus(d, self._distance)
        return self._ranking

    def _metrics(self, top: np.ndarray, n_candidates: int) -> dict[str, np.ndarray]:
        """Per-query metric values ``(n_candidates, n_queries)`` of ranked corpus positions ``(m, w)``."""
        rows = np.tile(np.arange(self.n_queries, dtype=np.int64), n_candidates)  # (m,)
        return self._from_hits(self._hits(top, rows), n_candidates)

    def _hits(self, top: np.ndarray, rows: np.ndarray | int) -> np.ndarray:
        """``(m, w)`` 1.0 where ranked position ``top`` of query row ``rows`` (or rows ``rows…``) is relevant."""
        if isinstance(rows, int):
            rows = np.arange(rows, rows + len(top), dtype=np.int64)
        codes = rows[:, None] * self._n_docs + top  # (m, w)
        found = np.searchsorted(self._keys, codes).clip(max=max(len(self._keys) - 1, 0))
        matched = self._keys[found] == codes if len(self._keys) else np.zeros(codes.shape, bool)
        return (matched & (top >= 0)).astype(np.float64)  # (m, w)

    def _from_hits(self, hits: np.ndarray, n_candidates: int) -> dict[str, np.ndarray]:
        """Per-query metric values ``(n_candidates, n_queries)`` of hit rows ``(m, w)``, best rank first."""
        n_relevant = np.tile(self._n_relevant, n_candidates)  # (m,)
        per_query = {}
        for name, (kind, k) in zip(self.metrics, self._parsed, strict=True):
            part = hits[:, :k]  # (m, min(k, w))
            if kind == "hit":
                value = part.any(axis=1).astype(np.float64)
            elif kind == "mrr":
                first = np.argmax(part > 0, axis=1)
                value = np.where(part.any(axis=1), 1.0 / (first + 1), 0.0)
            elif kind == "recall":
                value = part.sum(axis=1) / n_relevant
            elif kind == "precision":
                value = part.sum(axis=1) / k
            elif kind == "ndcg":
                discounts = 1.0 / np.log2(np.arange(2, k + 2))  # (k,)
                ideal = np.array(
                    [discounts[:j].sum() for j in range(k + 1)]
                )  # sum of the first j, as score_rankings
                dcg = (part * discounts[: part.shape[1]]).sum(axis=1)
                value = dcg / ideal[np.minimum(n_relevant, k).astype(np.int64)]
            else:  # map
                precision_at_hit = np.cumsum(part, axis=1) / np.arange(1, part.shape[1] + 1)
                value = (precision_at_hit * part).sum(axis=1) / np.minimum(k, n_relevant)
            per_query[name] = value.reshape(n_candidates, self.n_queries)
        return per_query

    def _ranked_positions(self, flat: np.ndarray) -> np.ndarray:
        """The ranker's ids as positions in the split's corpus, ``-1`` for others and for padding."""
        ranked = self._ranker(flat, self._k)
        top = np.full((len(flat), self._k), -1, dtype=np.int64)  # (m, k)
        for row, ids in enumerate(ranked):
            for col, doc_id in enumerate(list(ids)[: self._k]):
                top[row, col] = self._position.get(doc_id, -1)
        return top


def rank_top_k(
    query_vectors: np.ndarray, document_vectors: np.ndarray, *, k: int, distance: str = "cosine"
) -> np.ndarray:
    """:func:`~queryshift.evaluation.rank_documents` by torch: the training side's ranking (hard negatives).

    numpy's ``argpartition`` took a third of mining the pseudo-queries' negatives (15,000 rows
    over 5,183 documents, before any training step); torch's top-k selects the same columns
    several times faster. Evaluation keeps the numpy ranking (no torch at inference).

    Example:
        >>> docs = np.eye(3, dtype=np.float32)
        >>> rank_top_k(docs[[2]] + 0.1, docs, k=2).tolist()
        [[2, 0]]
    """
    q, d = _ranking_inputs(query_vectors, document_vectors, distance)
    documents, squares = _ranked_corpus(d, distance)
    k = min(k, d.shape[0])
    out = np.empty((q.shape[0], k), dtype=np.int64)
    for start in range(0, q.shape[0], 1024):
        scores = _scores_against(q[start : start + 1024], documents, squares)  # (b, n_docs)
        out[start : start + len(scores)] = _top_k(scores, k)
    return out


def _ranked_corpus(documents: np.ndarray, distance: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``documents``, already as ``distance`` ranks them, as a tensor, with their squared norms for euclid."""
    import torch

    ranked = torch.from_numpy(np.ascontiguousarray(documents, dtype=np.float32))  # (n_docs, dim)
    return ranked, (ranked * ranked).sum(dim=1) if distance == "euclid" else None


def _scores_against(
    queries: np.ndarray, documents: torch.Tensor, squares: torch.Tensor | None
) -> torch.Tensor:
    """``(m, n_docs)`` scores that rank as :func:`rank_documents` does (``squares``: euclid's ``|d|²``)."""
    import torch

    scores = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)) @ documents.T
    # euclid: -|q - d|² + |q|² = 2 q·d - |d|², the same order per query
    return 2 * scores - squares if squares is not None else scores


def _top_k(scores: torch.Tensor, k: int) -> np.ndarray:
    """``(m, k)`` columns of the ``k`` largest scores per row in :func:`rank_documents`' order.

    Which of several documents tied at the k-th score is kept may differ (both keep one
    arbitrarily).
    """
    import torch

    values, columns = torch.topk(scores, k, dim=1, sorted=False)  # (m, k) each, unordered
    return _best_first(columns.numpy(), values.numpy())
