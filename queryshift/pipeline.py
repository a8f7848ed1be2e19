"""The jobs a user runs end to end (train, compare), shared by the CLI and Python callers.

Each function takes plain objects (data sets, encoders, configs) so the CLI stays a thin
layer of flag parsing on top.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from queryshift.adapters.base import QueryAdapter
from queryshift.adapters.io import load_adapter, save_adapter
from queryshift.data import RetrievalDataset
from queryshift.embeddings import EmbeddedDataset, Encoder
from queryshift.evaluation import bootstrap_difference, evaluate_retrieval

logger = logging.getLogger(__name__)

__all__ = [
    "Comparison",
    "compare_adapter",
    "describe_regime",
    "train_and_save",
    "read_heldout",
    "heldout_subset",
    "HELDOUT_NAME",
]

HELDOUT_NAME = "heldout_queries.json"
COMPARE_METRICS = ("ndcg@10", "mrr@10", "hit@5", "recall@10")


@dataclass(frozen=True)
class Comparison:
    """Base vs adapted metrics on one query set, with bootstrap intervals of the differences."""

    base: dict[str, float]
    adapted: dict[str, float]
    intervals: dict[str, tuple[float, float, float]]
    num_queries: int
    num_documents: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "adapted": self.adapted,
            "difference_ci95": {
                m: {"diff": d, "low": lo, "high": hi} for m, (d, lo, hi) in self.intervals.items()
            },
            "num_queries": self.num_queries,
            "num_documents": self.num_documents,
        }

    def render(self) -> str:
        """A fixed-width table: one row per metric."""
        lines = [f"{'metric':<11}{'base':>8}{'adapted':>9}{'diff':>9}   95% CI of diff"]
        for metric in self.base:
            diff, low, high = self.intervals[metric]
            lines.append(
                f"{metric:<11}{self.base[metric]:>8.4f}{self.adapted[metric]:>9.4f}{diff:>+9.4f}   [{low:+.4f}, {high:+.4f}]"
            )
        lines.append(f"({self.num_queries} queries over {self.num_documents} documents)")
        return "\n".join(lines)


def compare_adapter(
    adapter: QueryAdapter, data: EmbeddedDataset, *, metrics: tuple[str, ...] = COMPARE_METRICS, seed: int = 0
) -> Comparison:
    """Evaluate ``data`` with and without ``adapter`` (documents untouched in both)."""
    distance = adapter.config.distance
    kwargs = {"distance": distance, "metrics": metrics}
    base = evaluate_retrieval(
        data.query_vectors,
        data.query_ids,
        data.document_vectors,
        data.document_ids,
        data.dataset.qrels,
        **kwargs,
    )
    adapted_vectors = adapter.apply(data.query_vectors)  # (n_queries, dim)
    adapted = evaluate_retrieval(
        adapted_vectors,
        data.query_ids,
        data.document_vectors,
        data.document_ids,
        data.dataset.qrels,
        **kwargs,
    )
    intervals = {m: bootstrap_difference(base.per_query[m], adapted.per_query[m], seed=seed) for m in metrics}
    return Comparison(base.metrics, adapted.metrics, intervals, len(data.query_ids), len(data.document_ids))


def describe_regime(rate: float, *, heldout: bool = True) -> str:
    """Explain what the share of queries about already-seen documents means for the user.

    Args:
        rate: With ``heldout=True``, the share of held-out queries whose relevant document was a
            training positive; otherwise the share of training queries that share a relevant
            document with another training query (what future traffic would show if it looks
            like the training data).
    """
    pct = 100 * rate
    if heldout:
        measured = f"{pct:.0f}% of held-out queries have a relevant document that training saw as a positive"
    else:
        measured = f"{pct:.0f}% of training questions share their relevant document with another question"
    if rate >= 0.5:
        meaning = "queries revisit known documents. This is where query adapters gain most"
    elif rate > 0.1:
        meaning = (
            "mixed. Expect moderate gains; the trainer only keeps candidates that gain on both kinds of query"
        )
    else:
        meaning = (
            "queries are about new documents. An adapter can only gain by rewriting queries in general; "
            "the trainer keeps identity unless that helps"
        )
    return f"Regime: {meaning} ({measured})."


def train_and_save(
    train: EmbeddedDataset,
    config: Any,
    output_dir: str | Path,
    *,
    base_model: str | None,
    heldout: list[str] | None = None,
    split_regime: str = "none",
    pseudo: EmbeddedDataset | None = None,
    show_progress_bar: bool = False,
):
    """Train with :func:`queryshift.training.train_adapter`, record provenance, save atomically.

    Returns ``(adapter, result)``; ``adapter`` is the loaded-back saved adapter, so what the caller
    uses is byte for byte what is on disk.
    """
    from queryshift.training import train_adapter

    result = train_adapter(
        train, config, base_model=base_model, pseudo=pseudo, show_progress_bar=show_progress_bar
    )
    summary = result.summary()
    summary.update(
        {
            "data_fingerprint": train.dataset.fingerprint(),
            "data_name": train.dataset.name,
            "train_queries": len(train.query_ids),
            "split_regime": split_regime,
            "heldout_queries": len(heldout or []),
            "config": _config_dict(config),
        }
    )
    adapter = result.adapter
    config_with_summary = dataclasses.replace(adapter.config, training=summary)
    adapter.config = config_with_summary
    extra = {HELDOUT_NAME: json.dumps(sorted(heldout)) + "\n"} if heldout else None
    save_adapter(adapter, output_dir, extra_files=extra)
    return load_adapter(output_dir), result


def pseudo_queries_for(
    encoder: Encoder, corpora: Sequence[EmbeddedDataset], config: Any
) -> EmbeddedDataset | None:
    """The pseudo-queries ``config`` asks for, sampled from ``corpora`` (labelled data first, then the index).

    ``None`` with ``config.pseudo_queries == 0`` or when the documents carry no text.
    """
    if not config.pseudo_queries:
        return None
    from queryshift.training.pseudo_queries import embed_pseudo_queries

    return embed_pseudo_queries(
        encoder,
        corpora,
        per_document=config.pseudo_queries,
        max_documents=config.pseudo_max_documents,
        seed=config.seed,
    )


def read_heldout(adapter_dir: str | Path) -> list[str] | None:
    """Held-out query ids saved by :func:`train_and_save`, or ``None``."""
    path = Path(adapter_dir) / HELDOUT_NAME
    if not path.is_file():
        return None
    return list(json.loads(path.read_text(encoding="utf-8")))


def heldout_subset(dataset: RetrievalDataset, ids: list[str], adapter_dir: Path) -> RetrievalDataset:
    """The held-out queries of ``dataset``; errors if the ids are not all there (wrong data set)."""
    missing = [q for q in ids if q not in dataset.queries]
    if missing:
        raise ValueError(
            f"{adapter_dir / HELDOUT_NAME} lists {len(missing)} query ids not in {dataset.name} "
            f"(e.g. {missing[:3]}): evaluate on the data set the adapter was trained on, or pass --queries all"
        )
    return dataset.subset(ids)


def _config_dict(config: Any) -> dict[str, Any]:
    out = dataclasses.asdict(config)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in out.items()}
