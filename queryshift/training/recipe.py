"""The training recipe: candidates trained on part of the data, chosen on held-out queries.

Why two validation splits: an adapter can gain on queries about documents it saw as
positives while losing on queries about new documents (it learns a prior for the seen
ones). A query-split validation only sees the first effect and a document-split validation
only the second. With ``validation="both"`` a candidate is scored by its smallest gain over
identity across the two splits, and the largest such gain wins (each split's gain averaged with
the neighbouring epochs', see :mod:`~queryshift.training.selection`). The identity adapter is always
a candidate (gain 0), so the result is never worse than no adapter on validation.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from queryshift.adapters.base import QueryAdapter
from queryshift.embeddings import EmbeddedDataset
from queryshift.splits import ValidationPlan, plan_validation, revisit_rate
from queryshift.training.config import TrainingConfig
from queryshift.training.loop import TrainingPairs, fit, pick_device
from queryshift.training.modules import build_module, state_snapshot
from queryshift.training.refit import BackgroundRefit, thread_split
from queryshift.training.scoring import Ranker, SplitScorer, rank_top_k
from queryshift.training.selection import choose_candidate
from queryshift.training.threads import blas_yields_to_torch

logger = logging.getLogger(__name__)

__all__ = ["TrainingResult", "Candidate", "train_adapter", "mine_hard_negatives", "cluster_documents"]

_REPORT_METRICS = ("ndcg@10", "mrr@10", "hit@5", "recall@10")


@dataclass(frozen=True)
class Candidate:
    """One (epoch, alpha) point and its validation scores; epoch 0 / alpha 0 is the identity."""

    epoch: int
    alpha: float
    scores: dict[str, float]


@dataclass
class TrainingResult:
    """What :func:`train_adapter` returns: the adapter and the evidence for choosing it."""

    adapter: QueryAdapter
    chosen: Candidate
    validation: dict[str, dict[str, dict[str, float]]]
    """split name → {"base": metrics, "adapted": metrics} for the chosen candidate."""
    revisit_rate: float
    """Share of training queries whose relevant document another training query also hits."""
    candidates: list[Candidate] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    device: str = "cpu"
    pseudo_queries: int = 0
    """Unlabelled pseudo-queries added to training (0: labels only)."""
    validation_plan: ValidationPlan | None = None
    """The first draw's validation splits: which the data did not allow, and why."""
    evidence: dict[str, float] = field(default_factory=dict)
    """The best candidate's worst-split gain, pooled gain and its lower bound (see :mod:`~queryshift.training.selection`)."""

    @property
    def validation_note(self) -> str | None:
        """One line on the validation splits the data did not allow, ``None`` when all were formed."""
        return self.validation_plan.describe() if self.validation_plan else None

    @property
    def is_identity(self) -> bool:
        return self.chosen.alpha == 0.0

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary stored in the adapter's ``training`` field."""
        return {
            "chosen_epoch": self.chosen.epoch,
            "chosen_alpha": self.chosen.alpha,
            "identity_chosen": self.is_identity,
            "validation": self.validation,
            "training_revisit_rate": round(self.revisit_rate, 4),
            "pseudo_queries": self.pseudo_queries,
            "train_seconds": round(self.seconds, 3),
            "device": self.device,
            "validation_note": self.validation_note,
            "validation_dropped": dict(self.validation_plan.dropped) if self.validation_plan else {},
            "selection": {k: round(v, 5) for k, v in self.evidence.items()},
        }


def mine_hard_negatives(data: EmbeddedDataset, count: int, *, distance: str = "cosine") -> list[list[int]]:
    """For each query, the ``count`` best-ranked non-relevant documents under the base model."""
    if count == 0:
        return [[] for _ in data.query_ids]
    position = {d: i for i, d in enumerate(data.document_ids)}
    top = rank_top_k(data.query_vectors, data.document_vectors, k=count + 20, distance=distance)
    out = []
    for qid, row in zip(data.query_ids, top, strict=True):
        relevant = {position[d] for d in data.dataset.qrels[qid]}
        out.append([int(i) for i in row if int(i) not in relevant][:count])
    return out


def train_adapter(
    data: EmbeddedDataset,
    config: TrainingConfig | None = None,
    *,
    base_model: str | None = None,
    pseudo: EmbeddedDataset | Sequence[EmbeddedDataset] | None = None,
    show_progress_bar: bool = False,
    ranker: Ranker | None = None,
) -> TrainingResult:
    """Train a query adapter on ``data`` and return it with its validation evidence.

    Args:
        data: Training queries with the corpus, already embedded (see :func:`~queryshift.embeddings.embed_dataset`).
        config: The recipe; defaults to :class:`TrainingConfig()`.
        base_model: Recorded in the adapter so a mismatch with the collection's model is caught later.
        pseudo: Unlabelled pairs from the index the adapter will search (see
            :mod:`~queryshift.training.pseudo_queries`), added to every training run; validation
            stays on the labelled queries. Several sets (each over its own corpus, documents of
            the same id shared) mine their hard negatives each in its own corpus.
        show_progress_bar: tqdm bar over epochs.
        ranker: Ranks the validation queries (base and every candidate's adapted vectors) in
            place of ``data``'s in-memory corpus, e.g. a
            :class:`~queryshift.integrations.qdrant.index_training.QdrantRanker` searching the
            collection; ``data`` then needs only the candidate documents (see
            :data:`~queryshift.training.scoring.Ranker`).

    Returns:
        A :class:`TrainingResult`; ``result.adapter`` is the identity when nothing beat it on validation.

    Example:
        >>> import numpy as np
        >>> from queryshift.data import RetrievalDataset
        >>> rng = np.random.default_rng(0)
        >>> docs = rng.normal(size=(20, 8)).astype(np.float32)
        >>> ids = [f"d{i:02d}" for i in range(20)]
        >>> ds = RetrievalDataset(queries={f"q{i:02d}": "" for i in range(40)}, documents={d: "" for d in ids},
        ...                       qrels={f"q{i:02d}": {ids[i % 20]} for i in range(40)})
        >>> queries = docs[[i % 20 for i in range(40)]] + rng.normal(scale=0.5, size=(40, 8)).astype(np.float32)
        >>> data = EmbeddedDataset(ds, sorted(ds.queries), queries, ids, docs, "toy")
        >>> result = train_adapter(data, TrainingConfig(epochs=3, hard_negatives=2))
        >>> result.adapter.apply(queries[:2]).shape
        (2, 8)
    """
    config = config or TrainingConfig()
    with blas_yields_to_torch(pick_device(config.device).type):
        return _train_adapter(data, config, base_model, pseudo, show_progress_bar, ranker)


def _train_adapter(
    data: EmbeddedDataset,
    config: TrainingConfig,
    base_model: str | None,
    pseudo: EmbeddedDataset | Sequence[EmbeddedDataset] | None,
    show_progress_bar: bool,
    ranker: Ranker | None,
) -> TrainingResult:
    """:func:`train_adapter`'s steps: selection run(s), the choice, the refit."""
    started = time.perf_counter()
    metrics = tuple(dict.fromkeys((config.metric, *_REPORT_METRICS)))
    # The pseudo pairs (and their mined negatives) are the same for every selection run and the refit.
    extra = _extra_pairs(pseudo, config)
    runs: list[_SelectionRun] = []
    split = thread_split(config, pick_device(config.device))
    refit = None
    if split is not None:  # the refit trains beside the selection, on its share of the threads
        refit = BackgroundRefit(
            _fresh_module(config, data.dim),
            _all_pairs(data, config, extra),
            config,
            threads=split[1],
        )
        refit.start()
    threads = torch.get_num_threads()
    try:
        if split is not None:
            torch.set_num_threads(split[0])
        if config.validation != "none":
            for repeat in range(config.validation_repeats):
                run_config = dataclasses.replace(config, seed=config.seed + repeat)
                runs.append(
                    _selection_run(
                        data,
                        run_config,
                        extra,
                        metrics,
                        keep_states=not config.refit and repeat == 0,
                        show_progress_bar=show_progress_bar,
                        ranker=ranker,
                    )
                )
    except BaseException:
        if refit is not None:
            refit.cancel()
        raise
    finally:
        torch.set_num_threads(threads)
    note = runs[0].plan.describe() if runs else None
    if note:
        logger.warning("%s", note)
    validated = [run for run in runs if run.base]
    candidates, gains = _pool(validated, config)
    losses: list[float] = runs[0].losses if runs else []
    if validated:
        key, evidence = choose_candidate(gains, z=config.gain_z, epoch_smoothing=config.epoch_smoothing)
        chosen = next(c for c in candidates if (c.epoch, c.alpha) == key) if key else candidates[0]
    elif runs:  # validation asked for, but the data allows no split: keep the identity
        chosen, evidence = Candidate(0, 0.0, {}), {}
    else:
        chosen, evidence = Candidate(config.epochs, config.alphas[-1], {}), {}

    refit_state: dict[str, Any] = {}
    if refit is not None:
        refit_state, refit_losses = refit.result(chosen.epoch if chosen.alpha else 0)
        losses = refit_losses or losses

    export = {"base_model": base_model, "distance": config.distance, "normalize": config.distance != "dot"}
    if chosen.alpha == 0.0:
        from queryshift.adapters.linear import LinearAdapter

        adapter: QueryAdapter = LinearAdapter.identity(data.dim, **export)
    elif refit_state:
        module = _fresh_module(config, data.dim)
        module.load_state_dict(refit_state)
        adapter = module.to_adapter(alpha=chosen.alpha, **export)
    elif config.refit or not validated:
        module = _fresh_module(config, data.dim)
        losses = fit(
            module,
            _all_pairs(data, config, extra),
            config,
            epochs=chosen.epoch,
            show_progress_bar=show_progress_bar,
        )
        adapter = module.to_adapter(alpha=chosen.alpha, **export)
    else:
        module = _fresh_module(config, data.dim)
        module.load_state_dict(runs[0].states[chosen.epoch])
        adapter = module.to_adapter(alpha=chosen.alpha, **export)

    validation = _report(validated, (chosen.epoch, chosen.alpha) if chosen.alpha else (0, 0.0))
    seconds = time.perf_counter() - started
    logger.info("chose epoch=%d alpha=%.2f in %.1fs", chosen.epoch, chosen.alpha, seconds)
    return TrainingResult(
        adapter=adapter,
        chosen=chosen,
        validation=validation,
        revisit_rate=revisit_rate(data.dataset),
        candidates=candidates,
        losses=losses,
        seconds=seconds,
        device=str(pick_device(config.device)),
        pseudo_queries=len(extra.pairs.queries) if extra is not None else 0,
        validation_plan=runs[0].plan if runs else None,
        evidence=evidence,
    )


@dataclass
class _SelectionRun:
    """One draw of the validation splits and the candidates trained beside them."""

    plan: ValidationPlan
    base: dict[str, dict[str, float]] = field(default_factory=dict)
    """split → the identity's mean metrics."""
    base_per_query: dict[str, np.ndarray] = field(default_factory=dict)
    """split → the identity's per-query values of ``config.metric``."""
    scores: dict[tuple[int, float], dict[str, dict[str, float]]] = field(default_factory=dict)
    per_query: dict[tuple[int, float], dict[str, np.ndarray]] = field(default_factory=dict)
    states: dict[int, dict[str, Any]] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)


def _selection_run(
    data: EmbeddedDataset,
    config: TrainingConfig,
    extra: _Extra | None,
    metrics: tuple[str, ...],
    *,
    keep_states: bool,
    show_progress_bar: bool,
    ranker: Ranker | None,
) -> _SelectionRun:
    """Draw the validation splits with ``config.seed``, train on the rest, score every candidate."""
    plan = _validation_plan(data, config)
    run = _SelectionRun(plan)
    if not plan.splits:
        return run
    val_sets = {name: data.subset(ids) for name, ids in plan.splits.items()}
    scorers = {
        name: SplitScorer(part, metrics, distance=config.distance, ranker=ranker)
        for name, part in val_sets.items()
    }
    for name, part in val_sets.items():
        values = scorers[name].score_per_query(part.query_vectors[None])
        run.base[name] = {m: float(v[0].mean()) for m, v in values.items()}
        run.base_per_query[name] = values[config.metric][0]

    def on_epoch(epoch: int, module) -> None:
        import torch

        device = next(module.parameters()).device
        for name, part in val_sets.items():
            q = torch.as_tensor(part.query_vectors, device=device)  # (n_val, dim)
            update = module.update(q).cpu().numpy()  # (n_val, dim): every alpha ranks from it
            values = scorers[name].score_alpha_path(part.query_vectors, update, config.alphas)
            for i, alpha in enumerate(config.alphas):
                run.scores.setdefault((epoch, alpha), {})[name] = {
                    m: float(v[i].mean()) for m, v in values.items()
                }
                run.per_query.setdefault((epoch, alpha), {})[name] = values[config.metric][i]
        if keep_states:
            run.states[epoch] = state_snapshot(module)

    module = _fresh_module(config, data.dim)
    run.losses = fit(
        module,
        _all_pairs(data.subset(plan.train), config, extra),
        config,
        on_epoch=on_epoch,
        show_progress_bar=show_progress_bar,
    )
    return run


def _pool(
    runs: list[_SelectionRun], config: TrainingConfig
) -> tuple[list[Candidate], dict[tuple[int, float], dict[str, np.ndarray]]]:
    """Candidates with their mean ``config.metric`` per split pooled over ``runs`` (identity first),
    and each candidate's per-query gains over the identity, per split, concatenated over runs."""
    splits = list(dict.fromkeys(name for run in runs for name in run.base))
    keys = [(0, 0.0)] + [(e, a) for e in range(1, config.epochs + 1) for a in config.alphas]
    candidates, gains = [], {}
    for key in keys:
        per_split, scores = {}, {}
        for name in splits:
            rows = [run for run in runs if name in run.base]
            adapted = [run.per_query[key][name] if key[1] else run.base_per_query[name] for run in rows]
            per_split[name] = np.concatenate(
                [a - run.base_per_query[name] for a, run in zip(adapted, rows, strict=True)]
            )
            scores[name] = float(np.concatenate(adapted).mean())
        candidates.append(Candidate(key[0], key[1], scores))
        if key[1]:
            gains[key] = per_split
    return candidates, gains


def _report(runs: list[_SelectionRun], key: tuple[int, float]) -> dict[str, dict[str, Any]]:
    """split → base and adapted mean metrics of the candidate ``key``, pooled over ``runs``."""
    report = {}
    for name in dict.fromkeys(n for run in runs for n in run.base):
        rows = [run for run in runs if name in run.base]
        sizes = np.array([len(run.plan.splits[name]) for run in rows], dtype=np.float64)

        def pooled(tables: list[dict[str, float]], sizes=sizes) -> dict[str, float]:
            return {m: float(np.dot([t[m] for t in tables], sizes) / sizes.sum()) for m in tables[0]}

        base = pooled([run.base[name] for run in rows])
        adapted = pooled([run.scores[key][name] for run in rows]) if key[1] else base
        # "queries": held out per draw (the first); the figures are pooled over every draw.
        report[name] = {"base": base, "adapted": adapted, "queries": int(sizes[0]), "draws": len(rows)}
    return report


def _fresh_module(config: TrainingConfig, dim: int):
    """An identity torch adapter of the configured kind."""
    return build_module(
        config.adapter,
        dim,
        rank=config.rank,
        hidden_dim=config.hidden_dim,
        bias=config.bias,
        seed=config.seed,
    )


def _validation_plan(data: EmbeddedDataset, config: TrainingConfig) -> ValidationPlan:
    """The validation splits the data allows (see :func:`~queryshift.splits.plan_validation`).

    The document split holds out topic clusters; where every cluster shares relevant documents
    with queries on the other side (few queries with many relevant documents each), it tries
    fewer, larger clusters before it is dropped.
    """
    kinds = {"both": ("document", "query"), "document": ("document",), "query": ("query",)}[config.validation]
    clusters = _cluster_count(data)
    counts = [clusters]
    while counts[-1] > 2:
        counts.append(max(2, counts[-1] // 4))
    groupings = (cluster_documents(data, seed=config.seed, clusters=k) for k in counts)
    return plan_validation(
        data.dataset, kinds=kinds, fraction=config.validation_fraction, seed=config.seed, groupings=groupings
    )


def _cluster_count(data: EmbeddedDataset, docs_per_cluster: int = 20) -> int:
    positives = len({d for docs in data.dataset.qrels.values() for d in docs})
    return max(2, min(positives // docs_per_cluster, 64))


def cluster_documents(
    data: EmbeddedDataset,
    *,
    seed: int = 0,
    docs_per_cluster: int = 20,
    iterations: int = 20,
    clusters: int | None = None,
) -> dict[str, int]:
    """Group the positive documents into topic clusters (spherical k-means on their vectors).

    The document-split validation holds out whole clusters: chunks of one paper or one topic
    are near-duplicates, and holding out one while training on its neighbours would hide the
    loss an adapter causes on genuinely new documents.
    """
    position = {d: i for i, d in enumerate(data.document_ids)}
    positives = sorted({d for docs in data.dataset.qrels.values() for d in docs})
    x = data.document_vectors[[position[d] for d in positives]].astype(np.float64)  # (n_pos, dim)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    k = clusters or _cluster_count(data, docs_per_cluster)
    if len(positives) <= k:
        return {d: i for i, d in enumerate(positives)}
    rng = np.random.default_rng(seed)
    centers = x[rng.choice(len(x), size=k, replace=False)]  # (k, dim)
    for _ in range(iterations):
        assign = np.argmax(x @ centers.T, axis=1)  # (n_pos,)
        for c in range(k):
            members = x[assign == c]
            if len(members):
                centers[c] = members.sum(axis=0) / max(np.linalg.norm(members.sum(axis=0)), 1e-12)
    return {d: int(c) for d, c in zip(positives, assign, strict=True)}


def _pairs(data: EmbeddedDataset, config: TrainingConfig) -> TrainingPairs:
    position = {d: i for i, d in enumerate(data.document_ids)}
    positives = [sorted(position[d] for d in data.dataset.qrels[q]) for q in data.query_ids]
    mined = mine_hard_negatives(data, config.hard_negatives, distance=config.distance)
    known = [[position[d] for d in data.dataset.negatives.get(q, [])] for q in data.query_ids]
    negatives = [sorted(set(a) | set(b)) for a, b in zip(mined, known, strict=True)]
    return TrainingPairs(data.query_vectors, data.document_vectors, positives, negatives)


@dataclass(frozen=True)
class _Extra:
    """Unlabelled pairs added to every training run; ``pairs.documents[i]`` is ``document_ids[i]``."""

    document_ids: list[str]
    pairs: TrainingPairs


def _extra_pairs(
    pseudo: EmbeddedDataset | Sequence[EmbeddedDataset] | None, config: TrainingConfig
) -> _Extra | None:
    """The pairs of each set, negatives mined in the set's own corpus, over one corpus keyed by document id.

    Mining per set matters when the corpora differ in kind: a pseudo-query whose negatives were
    mined among query-shaped targets of another set would be pushed away from its own neighbours.
    """
    sets = [pseudo] if isinstance(pseudo, EmbeddedDataset) else list(pseudo or ())
    sets = [part for part in sets if part.query_ids]
    if len(sets) <= 1:
        return _Extra(list(sets[0].document_ids), _pairs(sets[0], config)) if sets else None
    position: dict[str, int] = {}
    documents: list[np.ndarray] = []
    queries, positives, negatives = [], [], []
    for part in sets:
        pairs = _pairs(part, config)
        remap = []
        for j, doc_id in enumerate(part.document_ids):
            if doc_id not in position:
                position[doc_id] = len(documents)
                documents.append(pairs.documents[j])
            remap.append(position[doc_id])
        queries.append(pairs.queries)
        positives += [[remap[i] for i in row] for row in pairs.positives]
        negatives += [[remap[i] for i in row] for row in pairs.negatives]
    return _Extra(
        list(position), TrainingPairs(np.concatenate(queries), np.stack(documents), positives, negatives)
    )


def _all_pairs(data: EmbeddedDataset, config: TrainingConfig, extra: _Extra | None) -> TrainingPairs:
    """The labelled pairs, plus ``extra`` (:func:`_extra_pairs`) over one corpus shared by both (documents keyed by id).

    Every pseudo pair trains every candidate, those of the validation splits' documents too: they
    are in the index when the adapter ships. (Leaving them out while choosing, to mimic documents
    added after training, made the choice so cautious that Lyft → Uber fell to 0.647 on average
    over five seeds, from 0.666.)
    """
    labelled = _pairs(data, config)
    if extra is None:
        return labelled
    position = {d: i for i, d in enumerate(data.document_ids)}
    added: list[int] = []
    remap = []
    for j, doc_id in enumerate(extra.document_ids):
        if doc_id not in position:
            position[doc_id] = len(data.document_ids) + len(added)
            added.append(j)
        remap.append(position[doc_id])
    pairs = extra.pairs
    documents = np.concatenate([labelled.documents, pairs.documents[added]]) if added else labelled.documents
    return TrainingPairs(
        np.concatenate([labelled.queries, pairs.queries]),
        documents,
        labelled.positives + [[remap[i] for i in row] for row in pairs.positives],
        labelled.negatives + [[remap[i] for i in row] for row in pairs.negatives],
    )
