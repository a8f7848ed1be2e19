"""Adapter or full fine-tune? Measure both on your data, with their costs, and recommend one.

:func:`advise` trains a query adapter (:func:`queryshift.training.train_adapter`, documents
untouched) and a full fine-tune (:func:`queryshift.training.finetune.finetune_model`, every
document must be re-embedded) on the same training queries, scores base, adapter and
fine-tune on the same held-out queries, and puts bootstrap confidence intervals
(:func:`queryshift.evaluation.bootstrap_difference` over per-query nDCG@10) on every difference.

**The rule** (:func:`recommend`), in order; ``CI`` is the interval of a paired difference in
nDCG@10 and ``min_finetune_gain`` (default 0.01, one nDCG point) is the smallest gain worth a
re-index:

1. **fine-tune** if fine-tune beats the adapter (CI lower bound > 0), beats the base model
   (CI lower bound > 0), and its mean gain over the adapter is at least ``min_finetune_gain``;
2. else **adapter** if the adapter beats the base model (CI lower bound > 0): it is the
   cheaper option and the fine-tune is not measurably better;
3. else **fine-tune** if it beats the base model (CI lower bound > 0) by at least
   ``min_finetune_gain`` on average (the adapter brought nothing measurable);
4. else **none**: keep the base model; no option is measurably better on these queries.

Costs are reported beside the figures: adapter training time, bytes on disk and added
latency per query; fine-tune training time, model size, the number of vectors a re-index
must rewrite (``collection_size``, default the test corpus size) and the re-index time
estimated from the embedding throughput measured while the fine-tuned model embedded the
test corpus here (same machine, same batch size).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from queryshift.adapters.io import save_adapter
from queryshift.atomic import atomic_write_text
from queryshift.data import RetrievalDataset
from queryshift.embeddings import Encoder, SentenceTransformerEncoder, embed_dataset, resolve_model_name
from queryshift.evaluation import bootstrap_difference, evaluate_retrieval
from queryshift.splits import SplitRegime, seen_document_rate, split_dataset
from queryshift.training.config import TrainingConfig
from queryshift.training.finetune import finetune_model
from queryshift.training.finetune_config import FinetuneConfig

logger = logging.getLogger(__name__)

__all__ = ["Advice", "Interval", "AdapterCost", "FinetuneCost", "Recommendation", "advise", "recommend"]

Recommendation = Literal["adapter", "finetune", "none"]
METRICS = ("ndcg@10", "mrr@10", "hit@1", "hit@10", "recall@10")
PRIMARY = "ndcg@10"


class Interval(NamedTuple):
    """Mean paired difference of per-query nDCG@10 and its bootstrap interval."""

    diff: float
    low: float
    high: float

    def render(self) -> str:
        return f"{self.diff:+.4f} [{self.low:+.4f}, {self.high:+.4f}]"


@dataclass(frozen=True)
class AdapterCost:
    """What the adapter costs: training time, bytes on disk, added latency per query."""

    train_seconds: float
    size_bytes: int
    query_overhead_ms: float
    identity: bool
    """True when validation kept the identity (the adapter changes nothing)."""


@dataclass(frozen=True)
class FinetuneCost:
    """What the fine-tune costs: training time, model size, and the re-index it forces."""

    train_seconds: float
    model_bytes: int
    vectors_to_rewrite: int
    docs_per_second: float
    reindex_seconds_estimate: float


@dataclass(frozen=True)
class Advice:
    """Base, adapter and fine-tune on the same held-out queries, the costs, and a recommendation.

    ``to_dict()`` is the ``--json`` output; ``render()`` the human table.
    """

    recommendation: Recommendation
    reason: str
    regime: str
    test_queries: int
    test_documents: int
    train_queries: int
    seen_document_rate: float
    confidence: float
    min_finetune_gain: float
    base: dict[str, float]
    adapter: dict[str, float]
    finetune: dict[str, float]
    adapter_vs_base: Interval
    finetune_vs_base: Interval
    finetune_vs_adapter: Interval
    adapter_cost: AdapterCost
    finetune_cost: FinetuneCost
    artifacts: dict[str, str | None]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: metrics, intervals as ``{"diff", "low", "high"}``, costs, recommendation."""
        out = asdict(self)
        for name in ("adapter_vs_base", "finetune_vs_base", "finetune_vs_adapter"):
            out[name] = getattr(self, name)._asdict()
        out["metric"] = PRIMARY
        out["rule"] = RULE
        return out

    def render(self) -> str:
        """A fixed-width table naming both options with figures, intervals and costs."""
        pct = round(100 * self.confidence)
        a, f = self.adapter_cost, self.finetune_cost
        header = (
            f"{self.test_queries} held-out queries over {self.test_documents} documents "
            f"(split: {self.regime}; {self.train_queries} training queries; "
            f"{100 * self.seen_document_rate:.0f}% of held-out queries hit a training document)"
        )
        width = 33
        rows = [
            f"{'option':<10}{PRIMARY:>9}  {f'{PRIMARY} vs base ({pct}% CI)':<{width}}{'train':>9}  cost",
            f"{'base':<10}{self.base[PRIMARY]:>9.4f}  {'-':<{width}}{'-':>9}  -",
            f"{'adapter':<10}{self.adapter[PRIMARY]:>9.4f}  {self.adapter_vs_base.render():<{width}}"
            f"{_seconds(a.train_seconds):>9}  {_bytes(a.size_bytes)} on disk, +{a.query_overhead_ms:.3f} ms/query, "
            "no re-index" + (" (identity kept)" if a.identity else ""),
            f"{'fine-tune':<10}{self.finetune[PRIMARY]:>9.4f}  {self.finetune_vs_base.render():<{width}}"
            f"{_seconds(f.train_seconds):>9}  {_bytes(f.model_bytes)} model, re-index {f.vectors_to_rewrite:,} vectors "
            f"≈ {_seconds(f.reindex_seconds_estimate)} at {f.docs_per_second:.1f} docs/s",
        ]
        lines = [
            header,
            "",
            *rows,
            "",
            f"fine-tune vs adapter: {self.finetune_vs_adapter.render()}",
            f"Recommendation: {self.recommendation} - {self.reason}",
        ]
        return "\n".join(lines)


RULE = (
    "fine-tune if its CI vs the adapter and vs base both exclude 0 from above and it gains >= min_finetune_gain "
    "over the adapter; else adapter if its CI vs base is above 0; else fine-tune if its CI vs base is above 0 "
    "with a mean gain >= min_finetune_gain; else none (keep the base model)"
)


def recommend(
    adapter_vs_base: Interval,
    finetune_vs_base: Interval,
    finetune_vs_adapter: Interval,
    *,
    min_finetune_gain: float = 0.01,
) -> tuple[Recommendation, str]:
    """Apply the rule of this module to three paired-difference intervals; returns (choice, reason).

    Example:
        >>> recommend(Interval(0.02, 0.01, 0.03), Interval(0.03, 0.01, 0.05), Interval(0.01, -0.01, 0.03))[0]
        'adapter'
        >>> recommend(Interval(0.02, 0.01, 0.03), Interval(0.06, 0.04, 0.08), Interval(0.04, 0.02, 0.06))[0]
        'finetune'
        >>> recommend(Interval(0.0, -0.01, 0.01), Interval(0.0, -0.02, 0.02), Interval(0.0, -0.02, 0.02))[0]
        'none'
    """
    if finetune_vs_adapter.low > 0 and finetune_vs_base.low > 0:
        if finetune_vs_adapter.diff >= min_finetune_gain:
            return "finetune", (
                f"the fine-tune beats the adapter by {finetune_vs_adapter.diff:+.4f} nDCG@10 (interval above 0), "
                "worth the re-index"
            )
    if adapter_vs_base.low > 0:
        why = (
            "the fine-tune is not measurably better"
            if finetune_vs_adapter.low <= 0
            else f"the fine-tune's extra {finetune_vs_adapter.diff:+.4f} is below min_finetune_gain={min_finetune_gain}"
        )
        return "adapter", (
            f"the adapter beats base by {adapter_vs_base.diff:+.4f} nDCG@10 (interval above 0) without a re-index; {why}"
        )
    if finetune_vs_base.low > 0 and finetune_vs_base.diff >= min_finetune_gain:
        return "finetune", (
            f"the adapter brings no measurable gain, the fine-tune beats base by {finetune_vs_base.diff:+.4f} "
            "nDCG@10 (interval above 0)"
        )
    return "none", "neither option is measurably better than the base model on these queries; keep it"


def advise(
    train: RetrievalDataset,
    test: RetrievalDataset | None = None,
    *,
    regime: SplitRegime = "document",
    encoder: Encoder | None = None,
    adapter_config: TrainingConfig | None = None,
    finetune_config: FinetuneConfig | None = None,
    collection_size: int | None = None,
    test_fraction: float = 0.5,
    min_finetune_gain: float = 0.01,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    output_dir: str | Path | None = None,
    show_progress_bar: bool = False,
) -> Advice:
    """Train an adapter and a fine-tune on ``train``, score both on held-out queries, recommend one.

    Args:
        train: Your queries, corpus and qrels.
        test: Held-out queries to score on; ``None`` splits ``train`` with
            :func:`queryshift.splits.split_dataset` (``regime``, ``test_fraction``, ``seed``).
            The test side is never used to train or to choose a checkpoint.
        regime: ``"document"`` (future queries ask about new documents) or ``"query"``
            (future queries revisit known documents); see :mod:`queryshift.splits`.
        encoder: The base model's encoder, for the adapter path; ``None`` builds
            ``SentenceTransformerEncoder(finetune_config.model)`` so both paths start from one model.
        adapter_config: Adapter recipe; defaults to ``TrainingConfig()``.
        finetune_config: Fine-tune recipe; defaults to ``FinetuneConfig()``.
        collection_size: Vectors in your production collection (what a re-index rewrites);
            ``None`` uses the test corpus size.
        test_fraction: Share of queries held out when ``test`` is ``None``.
        min_finetune_gain: Smallest mean nDCG@10 gain that justifies a re-index.
        n_resamples: Bootstrap resamples per interval.
        confidence: Interval coverage (0.95: 95% intervals).
        seed: Seed of the split and the bootstrap.
        output_dir: Keep the trained artifacts here (``adapter/``, ``finetuned-model/``,
            ``advice.json``); ``None`` uses a temporary directory that is removed. Both are trained
            on the training side only.
        show_progress_bar: tqdm bars while training and embedding.

    Returns:
        An :class:`Advice`.

    Raises:
        ValueError: ``encoder`` is a :class:`~queryshift.embeddings.SentenceTransformerEncoder` for
            another model than ``finetune_config.model`` (the two paths would not share a base).

    Example:
        >>> from queryshift.data import load_dataset
        >>> advice = advise(load_dataset("train.json"), regime="document")  # doctest: +SKIP
        >>> print(advice.render())  # doctest: +SKIP
    """
    started = time.perf_counter()
    adapter_config = adapter_config or TrainingConfig()
    finetune_config = finetune_config or FinetuneConfig()
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if min_finetune_gain < 0:
        raise ValueError(f"min_finetune_gain must be >= 0, got {min_finetune_gain}")
    if collection_size is not None and collection_size <= 0:
        raise ValueError(f"collection_size must be a positive number of vectors, got {collection_size}")
    if encoder is None:
        encoder = SentenceTransformerEncoder(finetune_config.model, show_progress_bar=show_progress_bar)
    base_path = getattr(encoder, "path", None)
    if base_path is not None and base_path != resolve_model_name(finetune_config.model):
        raise ValueError(
            f"encoder uses {base_path!r} but finetune_config.model is {finetune_config.model!r}; "
            "both paths must start from the same base model"
        )

    if test is None:
        split = split_dataset(train, regime=regime, test_fraction=test_fraction, seed=seed)
        train, test = split.apply(train)
        regime_text = f"{regime} split, seed {seed}"
    else:
        overlap = set(train.queries) & set(test.queries)
        if overlap:
            raise ValueError(
                f"test shares {len(overlap)} query ids with train (e.g. {sorted(overlap)[:3]}); "
                "held-out queries must not be trained on"
            )
        regime_text = "given test set"
    logger.info("advise: %d training and %d held-out queries", train.num_queries, test.num_queries)

    work = Path(output_dir) if output_dir is not None else Path(tempfile.mkdtemp(prefix="queryshift-advise-"))
    try:
        advice = _run(
            train,
            test,
            encoder=encoder,
            adapter_config=adapter_config,
            finetune_config=finetune_config,
            collection_size=collection_size,
            min_finetune_gain=min_finetune_gain,
            n_resamples=n_resamples,
            confidence=confidence,
            seed=seed,
            work=work,
            keep=output_dir is not None,
            regime_text=regime_text,
            started=started,
            show_progress_bar=show_progress_bar,
        )
    finally:
        if output_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    if output_dir is not None:
        atomic_write_text(work / "advice.json", json.dumps(advice.to_dict(), indent=2) + "\n")
    return advice


def _run(
    train: RetrievalDataset,
    test: RetrievalDataset,
    *,
    encoder: Encoder,
    adapter_config: TrainingConfig,
    finetune_config: FinetuneConfig,
    collection_size: int | None,
    min_finetune_gain: float,
    n_resamples: int,
    confidence: float,
    seed: int,
    work: Path,
    keep: bool,
    regime_text: str,
    started: float,
    show_progress_bar: bool,
) -> Advice:
    from queryshift.pipeline import pseudo_queries_for
    from queryshift.training import train_adapter

    distance = adapter_config.distance
    train_emb = embed_dataset(train, encoder)
    test_emb = embed_dataset(test, encoder)

    def score(query_vectors: np.ndarray, document_vectors: np.ndarray):
        return evaluate_retrieval(
            query_vectors,
            test_emb.query_ids,
            document_vectors,
            test_emb.document_ids,
            test.qrels,
            distance=distance,
            metrics=METRICS,
        )

    base = score(test_emb.query_vectors, test_emb.document_vectors)

    # The adapter: trained on embedded training queries, applied to held-out query vectors only.
    tick = time.perf_counter()
    pseudo = pseudo_queries_for(encoder, [train_emb, test_emb], adapter_config)
    result = train_adapter(
        train_emb,
        adapter_config,
        base_model=encoder.model_id,
        pseudo=pseudo,
        show_progress_bar=show_progress_bar,
    )
    adapter_seconds = time.perf_counter() - tick
    adapter = result.adapter
    adapter_dir = save_adapter(adapter, work / "adapter")
    adapter_bytes = _size(adapter_dir)
    adapted_queries = adapter.apply(test_emb.query_vectors)  # (n_queries, dim)
    adapted = score(adapted_queries, test_emb.document_vectors)
    overhead_ms = _apply_latency_ms(adapter, test_emb.query_vectors)

    # The fine-tune: validation carved from the training side inside finetune_model.
    model_dir = work / "finetuned-model"
    tick = time.perf_counter()
    finetune_model(train, finetune_config, output_dir=model_dir, show_progress_bar=show_progress_bar)
    finetune_seconds = time.perf_counter() - tick
    tuned_encoder = SentenceTransformerEncoder(
        str(model_dir), cache=False, show_progress_bar=show_progress_bar
    )
    documents = [test.documents[d] for d in test_emb.document_ids]
    tick = time.perf_counter()
    tuned_documents = tuned_encoder.encode_documents(documents)  # (n_documents, dim)
    embed_seconds = time.perf_counter() - tick
    tuned_queries = tuned_encoder.encode_queries([test.queries[q] for q in test_emb.query_ids])
    tuned = score(tuned_queries, tuned_documents)
    docs_per_second = len(documents) / embed_seconds if embed_seconds > 0 else float("inf")
    vectors = collection_size if collection_size is not None else test.num_documents

    def interval(baseline, candidate) -> Interval:
        return Interval(
            *bootstrap_difference(
                baseline.per_query[PRIMARY],
                candidate.per_query[PRIMARY],
                n_resamples=n_resamples,
                confidence=confidence,
                seed=seed,
            )
        )

    adapter_vs_base = interval(base, adapted)
    finetune_vs_base = interval(base, tuned)
    finetune_vs_adapter = interval(adapted, tuned)
    choice, reason = recommend(
        adapter_vs_base, finetune_vs_base, finetune_vs_adapter, min_finetune_gain=min_finetune_gain
    )
    logger.info("recommendation: %s (%s)", choice, reason)
    return Advice(
        recommendation=choice,
        reason=reason,
        regime=regime_text,
        test_queries=test.num_queries,
        test_documents=test.num_documents,
        train_queries=train.num_queries,
        seen_document_rate=seen_document_rate(train, test),
        confidence=confidence,
        min_finetune_gain=min_finetune_gain,
        base=base.metrics,
        adapter=adapted.metrics,
        finetune=tuned.metrics,
        adapter_vs_base=adapter_vs_base,
        finetune_vs_base=finetune_vs_base,
        finetune_vs_adapter=finetune_vs_adapter,
        adapter_cost=AdapterCost(
            train_seconds=round(adapter_seconds, 3),
            size_bytes=adapter_bytes,
            query_overhead_ms=round(overhead_ms, 4),
            identity=result.is_identity,
        ),
        finetune_cost=FinetuneCost(
            train_seconds=round(finetune_seconds, 3),
            model_bytes=_size(model_dir),
            vectors_to_rewrite=int(vectors),
            docs_per_second=round(docs_per_second, 2),
            reindex_seconds_estimate=round(vectors / docs_per_second, 1),
        ),
        artifacts={
            "adapter": str(adapter_dir) if keep else None,
            "finetuned_model": str(model_dir) if keep else None,
        },
        seconds=round(time.perf_counter() - started, 3),
    )


def _size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def _apply_latency_ms(adapter: Any, query_vectors: np.ndarray, repeats: int = 200) -> float:
    """Median milliseconds of ``adapter.apply`` on one query vector (the search-time path)."""
    rows = query_vectors[np.arange(repeats) % len(query_vectors)]  # (repeats, dim)
    times = np.empty(repeats)
    for i, row in enumerate(rows):
        tick = time.perf_counter()
        adapter.apply(row)
        times[i] = time.perf_counter() - tick
    return float(np.median(times) * 1000)


def _seconds(value: float) -> str:
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def _bytes(value: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
