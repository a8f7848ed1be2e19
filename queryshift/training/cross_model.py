"""Cross-model adapters: carry a new model's query vectors into the space an old model wrote the index in.

Why it needs no labels: every indexed document is a training pair already. Its text, embedded
with the new model, should land on the vector the old model stored for it. A closed-form map
fitted on those pairs (ridge least squares, or scaled orthogonal Procrustes, whichever
retrieves the documents of held-out pseudo-queries better, see :func:`fit_closed_form_map`)
is the starting point, the analogue of the identity for
a same-model adapter. The contrastive recipe of :func:`~queryshift.training.train_adapter` then
trains on top of it, on pseudo-queries (sentences of each document → its stored vector) and on
labelled questions when there are some, with the same held-out selection: the closed-form map
is always a candidate, so the result is never worse than it on validation.

How the two stages become one adapter: ``train_adapter`` runs unchanged on the query vectors
*after* the closed-form map (``x' = x Bᵀ + c``, old space), then the trained same-dimension
adapter ``A`` is folded into ``B`` exactly: ``A(x Bᵀ + c)`` is a linear map for the linear kind,
a thin rank-r map for the low-rank kind (trained on the rank-r truncation of ``B``), and a
residual MLP whose skip connection is ``B`` for the MLP kind.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from queryshift.adapters.base import QueryAdapter
from queryshift.adapters.config import AdapterConfig
from queryshift.adapters.linear import LinearAdapter
from queryshift.adapters.residual_mlp import ResidualMLPAdapter
from queryshift.data import RetrievalDataset
from queryshift.embeddings import EmbeddedDataset
from queryshift.errors import DimensionMismatchError
from queryshift.evaluation import rank_documents
from queryshift.training.config import TrainingConfig
from queryshift.training.recipe import TrainingResult, train_adapter

logger = logging.getLogger(__name__)

__all__ = ["ClosedFormMap", "CrossModelResult", "fit_closed_form_map", "train_cross_model_adapter"]

_RIDGES = (1e-3, 1e-2, 1e-1, 1.0)  # times the mean variance of an input coordinate
Method = Literal["least_squares", "procrustes"]


@dataclass(frozen=True)
class ClosedFormMap:
    """``y = x Wᵀ + c`` fitted in closed form from new-model vectors to old-model (stored) vectors.

    Attributes:
        weight: ``(out_dim, in_dim)``.
        bias: ``(out_dim,)``.
        method: ``"least_squares"`` (ridge) or ``"procrustes"`` (scaled, semi-orthogonal).
        ridge: The ridge weight of the least-squares fit (relative to the inputs' mean variance).
        heldout: Each candidate's MRR@10 on the held-out rows, among all stored vectors (how the
            method was chosen).
        chosen_on: What the held-out rows were: ``"pseudo-queries"`` (new-model vectors of
            queries about held-out documents, finding those documents' stored vectors) or
            ``"documents"`` (held-out documents' new-model vectors finding their own stored ones).
    """

    weight: np.ndarray
    bias: np.ndarray
    method: Method
    ridge: float | None
    heldout: dict[str, float] = field(default_factory=dict)
    chosen_on: str = "documents"

    def raw(self, vectors: np.ndarray) -> np.ndarray:
        """``(n, in_dim)`` → ``(n, out_dim)``, not normalised (what the second stage trains on)."""
        return (np.asarray(vectors, np.float32) @ self.weight.T + self.bias).astype(np.float32)

    def truncated(self, rank: int) -> tuple[np.ndarray, np.ndarray]:
        """The best rank-``rank`` factors ``(P (out, r), Q (in, r))`` of ``weight`` (``W ≈ P Qᵀ``)."""
        u, s, vt = np.linalg.svd(self.weight.astype(np.float64), full_matrices=False)
        return (u[:, :rank] * s[:rank]).astype(np.float32), vt[:rank].T.astype(np.float32)

    def summary(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "ridge": self.ridge,
            "heldout_mrr@10": self.heldout,
            "chosen_on": self.chosen_on,
        }


def _fit(x: np.ndarray, y: np.ndarray, method: Method, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    x, y = x.astype(np.float64), y.astype(np.float64)
    mx, my = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - mx, y - my  # (n, in), (n, out)
    if method == "procrustes":
        u, s, vt = np.linalg.svd(yc.T @ xc, full_matrices=False)  # (out, k), (k,), (k, in)
        scale = s.sum() / max(float((xc**2).sum()), 1e-12)
        weight = scale * (u @ vt)  # (out, in), semi-orthogonal up to the scale
    else:
        lam = ridge * float((xc**2).sum()) / xc.shape[1]  # relative to the mean coordinate variance x n
        gram = xc.T @ xc + lam * np.eye(xc.shape[1])  # (in, in)
        weight = np.linalg.solve(gram, xc.T @ yc).T  # (out, in)
    return weight.astype(np.float32), (my - mx @ weight.T).astype(np.float32)


def _mrr(mapped: np.ndarray, targets: np.ndarray, rows: np.ndarray) -> float:
    """MRR@10 of finding ``targets[rows[i]]`` for ``mapped[i]`` among all ``targets`` (cosine)."""
    top = rank_documents(mapped, targets, k=10, distance="cosine")  # (n, 10)
    hits = top == rows[:, None]
    ranks = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, np.inf)
    return float(np.mean(1.0 / ranks))


def fit_closed_form_map(
    sources: np.ndarray,
    targets: np.ndarray,
    *,
    queries: np.ndarray | None = None,
    query_rows: np.ndarray | None = None,
    heldout_fraction: float = 0.2,
    seed: int = 0,
) -> ClosedFormMap:
    """The closed-form map from ``sources`` (new model) to ``targets`` (stored vectors), method chosen on held-out rows.

    Candidates: ridge least squares at several ridge weights, and scaled orthogonal Procrustes.
    Each is fitted on ``1 - heldout_fraction`` of the documents and scored on the others; the
    best is refitted on every document. With ``queries`` (new-model vectors of pseudo-queries,
    each about the document ``query_rows`` names) the score is how well the held-out documents'
    *queries* find their documents' stored vectors among all targets, which is the map's job.
    Without them it is how well a held-out document's own new-model vector finds its stored
    one. The two can disagree: on covidqa (MiniLM index, mpnet queries) the documents preferred
    a lightly regularised least-squares fit that put the test questions at 83.6 % of the old
    model's nDCG@10, the pseudo-queries preferred Procrustes at 92.8 % (README, "Cross-model
    adapters").

    Args:
        sources: ``(n, in_dim)`` vectors of the documents' text by the new model.
        targets: ``(n, out_dim)`` vectors the old model stored for the same documents.
        queries: ``(n_queries, in_dim)`` new-model vectors of queries about the documents
            (pseudo-queries: sentences of them), or ``None``.
        query_rows: ``(n_queries,)`` the row of ``sources`` / ``targets`` each query is about.
            Used only if at least 10 queries fall on held-out documents; else the documents choose.
        heldout_fraction: Share of documents held out to choose the method.
        seed: Seed of the held-out draw.

    Raises:
        ValueError: Fewer than 10 pairs, ``sources`` and ``targets`` do not pair up, or
            ``queries`` and ``query_rows`` do not.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(60, 4)).astype(np.float32)
        >>> fitted = fit_closed_form_map(x, x @ rng.normal(size=(4, 6)).astype(np.float32))
        >>> fitted.weight.shape, fitted.method
        ((6, 4), 'least_squares')
    """
    sources, targets = np.asarray(sources, np.float32), np.asarray(targets, np.float32)
    if sources.ndim != 2 or targets.ndim != 2 or len(sources) != len(targets):
        raise ValueError(
            f"sources {sources.shape} and targets {targets.shape} must be (n, in_dim) and (n, out_dim) rows of the same documents"
        )
    if len(sources) < 10:
        raise ValueError(
            f"a cross-model map needs at least 10 documents with both vectors, got {len(sources)}"
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(sources))
    n_held = max(1, int(round(heldout_fraction * len(sources))))
    held, fit_rows = order[:n_held], order[n_held:]
    probe, probe_rows, chosen_on = sources[held], held, "documents"  # (n_held, in_dim), (n_held,)
    if queries is not None:
        queries, query_rows = np.asarray(queries, np.float32), np.asarray(query_rows, np.int64)
        if queries.ndim != 2 or queries.shape[1] != sources.shape[1] or query_rows.shape != (len(queries),):
            raise ValueError(
                f"queries {queries.shape} and query_rows {query_rows.shape} must be (n_queries, {sources.shape[1]}) "
                "new-model vectors and the (n_queries,) rows of the documents they are about"
            )
        on_held = np.isin(query_rows, held)
        if on_held.sum() >= 10:
            probe, probe_rows, chosen_on = queries[on_held], query_rows[on_held], "pseudo-queries"
    candidates: list[tuple[Method, float | None]] = [("least_squares", r) for r in _RIDGES]
    candidates.append(("procrustes", None))
    scores: dict[str, float] = {}
    best: tuple[float, Method, float | None] = (-1.0, *candidates[0])
    for method, ridge in candidates:
        weight, bias = _fit(sources[fit_rows], targets[fit_rows], method, ridge or 0.0)
        score = _mrr(probe @ weight.T + bias, targets, probe_rows)
        scores[method if ridge is None else f"{method}(ridge={ridge:g})"] = round(score, 4)
        if score > best[0] + 1e-12:  # ties go to the earlier (more regularised) candidate
            best = (score, method, ridge)
    _, method, ridge = best
    weight, bias = _fit(sources, targets, method, ridge or 0.0)
    logger.info(
        "closed-form map: %s (ridge=%s) chosen on %d held-out %s: %s",
        method,
        ridge,
        len(probe),
        chosen_on,
        scores,
    )
    return ClosedFormMap(weight, bias, method, ridge, scores, chosen_on)


@dataclass
class CrossModelResult:
    """What :func:`train_cross_model_adapter` returns.

    Attributes:
        adapter: The cross-model adapter (``input_dim`` = the new model's, ``dim`` = the index's).
        closed_form: The closed-form map it started from (its ``summary()`` says how it was chosen).
        training: The second stage's :class:`~queryshift.training.TrainingResult`; in its
            ``validation``, ``"base"`` is the **closed-form map**, not the old model's own queries.
        seconds: Wall time of both stages.
    """

    adapter: QueryAdapter
    closed_form: ClosedFormMap
    training: TrainingResult
    seconds: float

    @property
    def kept_closed_form(self) -> bool:
        """Whether no trained candidate beat the closed-form map on validation."""
        return self.training.is_identity

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary stored in the adapter's ``training`` field."""
        summary = self.training.summary()
        summary.update(
            {
                "cross_model": {
                    "closed_form": self.closed_form.summary(),
                    "validation_base_is": "the closed-form (least-squares / Procrustes) map",
                    "kept_closed_form": self.kept_closed_form,
                },
                "train_seconds": round(self.seconds, 3),
            }
        )
        return summary


def _mapped(data: EmbeddedDataset | None, fitted: ClosedFormMap) -> EmbeddedDataset | None:
    """``data`` with its (new-model) query vectors carried through ``fitted`` into the old space."""
    if data is None:
        return None
    return dataclasses.replace(data, query_vectors=fitted.raw(data.query_vectors))


def _queries_by_row(
    pseudo: EmbeddedDataset | None, document_ids: Sequence[str] | None, n_documents: int
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``pseudo``'s query vectors whose document is one of the fitted rows, and those rows."""
    if pseudo is None or document_ids is None:
        return None, None
    if len(document_ids) != n_documents:
        raise ValueError(
            f"document_ids names {len(document_ids)} documents; stored_vectors has {n_documents} rows"
        )
    row = {d: i for i, d in enumerate(document_ids)}
    picks, rows = [], []
    for i, q in enumerate(pseudo.query_ids):
        fitted = sorted(pseudo.dataset.qrels[q] & row.keys())  # a pseudo-query has one document
        if fitted:
            picks.append(i)
            rows.append(row[fitted[0]])
    if not picks:
        return None, None
    return pseudo.query_vectors[picks], np.asarray(rows, np.int64)  # (n_kept, in_dim), (n_kept,)


def _target_pairs(pseudo: EmbeddedDataset | None, targets: np.ndarray, dim: int) -> EmbeddedDataset:
    """Each pseudo-query paired with its own old-model vector, the others' as the corpus."""
    targets = np.asarray(targets, np.float32)
    if pseudo is None or targets.shape != (len(pseudo.query_ids), dim):
        raise ValueError(
            f"pseudo_targets {targets.shape} must be ({len(pseudo.query_ids) if pseudo else 'n_pseudo'}, {dim}): "
            "the old model's vectors of the pseudo-queries, row for row (pass pseudo too)"
        )
    ids = [f"target:{q}" for q in pseudo.query_ids]
    aligned = RetrievalDataset(
        queries={f"to-target:{q}": pseudo.dataset.queries[q] for q in pseudo.query_ids},
        documents={t: pseudo.dataset.queries[q] for q, t in zip(pseudo.query_ids, ids, strict=True)},
        qrels={f"to-target:{q}": {t} for q, t in zip(pseudo.query_ids, ids, strict=True)},
        name=f"{pseudo.dataset.name}-targets",
    )
    return EmbeddedDataset(
        aligned, list(aligned.queries), pseudo.query_vectors, ids, targets, pseudo.model_id
    )


def _check_dims(name: str, data: EmbeddedDataset | None, in_dim: int, out_dim: int) -> None:
    if data is None:
        return
    if data.query_vectors.shape[1] != in_dim or data.document_vectors.shape[1] != out_dim:
        raise DimensionMismatchError(
            f"{name}: query vectors must come from the new model (dim={in_dim}) and document vectors from the "
            f"index (dim={out_dim}); got dims {data.query_vectors.shape[1]} and {data.document_vectors.shape[1]}"
        )


def _fold(
    trained: QueryAdapter,
    fitted: ClosedFormMap,
    factors: tuple[np.ndarray, np.ndarray] | None,
    config: AdapterConfig,
) -> QueryAdapter:
    """The single cross-model adapter equal to ``trained(x Bᵀ + c)`` (``B`` truncated to ``factors`` if given)."""
    b, c = fitted.weight.astype(np.float64), fitted.bias.astype(np.float64)
    if isinstance(trained, ResidualMLPAdapter):
        w1 = trained.w1.astype(np.float64)
        return ResidualMLPAdapter(
            dataclasses.replace(config, kind="residual_mlp", hidden_dim=trained.config.hidden_dim),
            w1=(w1 @ b).astype(np.float32),
            b1=(w1 @ c + trained.b1).astype(np.float32),
            w2=trained.w2,
            b2=(c + trained.b2).astype(np.float32),
            projection=fitted.weight,
        )
    if not isinstance(trained, LinearAdapter):
        raise TypeError(f"cannot fold a {type(trained).__name__} into a cross-model map")
    if factors is not None and trained.config.kind == "low_rank":  # (I + U Vᵀ) P Qᵀ = (P + U (Vᵀ P)) Qᵀ
        p, q = (f.astype(np.float64) for f in factors)
        u, v = trained.u.astype(np.float64), trained.v.astype(np.float64)
        bias = c + u @ (v.T @ c) + trained.bias  # (I + U Vᵀ) c + b
        return LinearAdapter(
            dataclasses.replace(config, kind="low_rank", rank=p.shape[1]),
            u=(p + u @ (v.T @ p)).astype(np.float32),
            v=q.astype(np.float32),
            bias=bias.astype(np.float32),
        )
    if factors is not None:  # the identity was kept: the rank-r map itself
        p, q = factors
        return LinearAdapter(
            dataclasses.replace(config, kind="low_rank", rank=p.shape[1]), u=p, v=q, bias=fitted.bias
        )
    w = trained.matrix().astype(np.float64)  # (out, out)
    return LinearAdapter(
        dataclasses.replace(config, kind="linear"),
        weight=(w @ b).astype(np.float32),
        bias=(w @ c + trained.bias).astype(np.float32),
    )


def train_cross_model_adapter(
    stored_vectors: np.ndarray,
    new_document_vectors: np.ndarray,
    config: TrainingConfig | None = None,
    *,
    pseudo: EmbeddedDataset | None = None,
    labelled: EmbeddedDataset | None = None,
    document_ids: Sequence[str] | None = None,
    pseudo_targets: np.ndarray | None = None,
    base_model: str | None = None,
    index_model: str | None = None,
    show_progress_bar: bool = False,
) -> CrossModelResult:
    """Train an adapter from a new model's query vectors into an index an old model embedded.

    Args:
        stored_vectors: ``(n_documents, dim)``: the vectors the old model stored for documents.
        new_document_vectors: ``(n_documents, input_dim)``: the same documents' text embedded by
            the new model, row for row.
        config: The second stage's recipe (:class:`~queryshift.training.TrainingConfig`);
            ``config.adapter`` picks the kind (``low_rank`` trains on the rank-``config.rank``
            truncation of the closed-form map, and stays a thin map).
        pseudo: Pseudo-queries embedded by the new model, paired with the stored vectors (see
            :func:`~queryshift.training.pseudo_queries.sample_pseudo_queries`). Without ``labelled``
            they are the training *and* validation queries.
        labelled: Labelled questions embedded by the new model, with stored (old-space) document
            vectors; when given, validation is on them and ``pseudo`` only adds training pairs.
        document_ids: The ids of the rows of ``stored_vectors`` / ``new_document_vectors``. With
            ``pseudo``, they let the pseudo-queries of held-out documents choose the closed-form
            map (see :func:`fit_closed_form_map`); without them the held-out documents choose.
        pseudo_targets: ``(n_pseudo, dim)``: the **old** model's query vectors of the pseudo-queries'
            text, row for row with ``pseudo.query_vectors``; only when the old model is at hand
            (a cheaper query encoder over an index the old model still serves, not a retired
            one). Each pseudo-query then also trains to land on its own old-model vector, among
            the other pseudo-queries' (negatives mined there), which teaches the map where the old
            model puts *queries*, not only documents. Measured in the README ("Cross-model
            adapters"): covidqa MiniLM index, mpnet queries.
        base_model: The new (query) model, recorded as the adapter's ``base_model``.
        index_model: The old model that embedded the index, recorded as ``index_model``.
        show_progress_bar: tqdm bar over epochs.

    Returns:
        A :class:`CrossModelResult`. Its ``training.validation`` compares the adapter with the
        closed-form map on the held-out queries.

    Raises:
        ValueError: Neither ``pseudo`` nor ``labelled`` queries to train and validate on.
        DimensionMismatchError: Query vectors not of the new model's dim, or documents not of the index's.

    Example:
        >>> from queryshift.data import RetrievalDataset
        >>> rng = np.random.default_rng(0)
        >>> old = rng.normal(size=(30, 6)).astype(np.float32)
        >>> new = np.tanh(old @ rng.normal(size=(6, 4))).astype(np.float32)
        >>> ids, qids = [f"d{i:02d}" for i in range(30)], [f"q{i:02d}" for i in range(60)]
        >>> ds = RetrievalDataset(queries=dict.fromkeys(qids, ""), documents=dict.fromkeys(ids, ""),
        ...                       qrels={q: {ids[i % 30]} for i, q in enumerate(qids)})
        >>> queries = new[[i % 30 for i in range(60)]] + rng.normal(scale=0.1, size=(60, 4)).astype(np.float32)
        >>> pseudo = EmbeddedDataset(ds, qids, queries, ids, old, "new")
        >>> result = train_cross_model_adapter(old, new, TrainingConfig(epochs=2), pseudo=pseudo)
        >>> result.adapter.input_dim, result.adapter.dim
        (4, 6)
    """
    config = config or TrainingConfig()
    started = time.perf_counter()
    new_document_vectors = np.asarray(new_document_vectors, np.float32)
    stored_vectors = np.asarray(stored_vectors, np.float32)
    if (
        new_document_vectors.ndim != 2
        or stored_vectors.ndim != 2
        or len(new_document_vectors) != len(stored_vectors)
    ):
        raise ValueError(
            f"new_document_vectors {new_document_vectors.shape} and stored_vectors {stored_vectors.shape} "
            "must be (n, input_dim) and (n, dim) rows of the same documents"
        )
    in_dim, out_dim = new_document_vectors.shape[1], stored_vectors.shape[1]
    _check_dims("pseudo", pseudo, in_dim, out_dim)
    _check_dims("labelled", labelled, in_dim, out_dim)
    if (pseudo is None or not pseudo.query_ids) and labelled is None:
        raise ValueError(
            "a cross-model adapter trains on pseudo-queries (the documents need text) or labelled questions; got neither"
        )
    queries, query_rows = _queries_by_row(pseudo, document_ids, len(stored_vectors))
    fitted = fit_closed_form_map(
        new_document_vectors, stored_vectors, queries=queries, query_rows=query_rows, seed=config.seed
    )
    factors = None
    if config.adapter == "low_rank":
        rank = min(config.rank, in_dim, out_dim)
        factors = fitted.truncated(rank)
        fitted_for_training = dataclasses.replace(fitted, weight=factors[0] @ factors[1].T)
    else:
        fitted_for_training = fitted
    data = _mapped(labelled if labelled is not None else pseudo, fitted_for_training)
    # Without labels the pseudo set is `data` itself; the extra sets only add training pairs.
    extra = [_mapped(pseudo, fitted_for_training)] if labelled is not None and pseudo is not None else []
    if pseudo_targets is not None:
        extra.append(_mapped(_target_pairs(pseudo, pseudo_targets, out_dim), fitted_for_training))
    training = train_adapter(
        data,
        config,
        base_model=base_model,
        pseudo=extra or None,
        show_progress_bar=show_progress_bar,
    )
    export = AdapterConfig(
        kind="linear",
        dim=out_dim,
        input_dim=in_dim,
        base_model=base_model,
        index_model=index_model,
        distance=config.distance,
        normalize=config.distance != "dot",
    )
    adapter = _fold(training.adapter, fitted_for_training, factors, export)
    seconds = time.perf_counter() - started
    logger.info("cross-model adapter %r trained in %.1fs", adapter, seconds)
    return CrossModelResult(adapter=adapter, closed_form=fitted, training=training, seconds=seconds)
