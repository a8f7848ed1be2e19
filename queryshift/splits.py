"""Train/test splits whose regime matches how the adapter will be used.

* ``"query"``: hold out questions, but every document keeps at least one training
  question. Future queries revisit documents training saw (FAQ-like traffic).
* ``"document"``: a group split: held-out queries' relevant documents are never a training
  positive. Future queries ask about documents training never saw (a growing corpus).

The regime is recorded in every saved adapter, because an adapter's gains under one
regime say little about the other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np

from queryshift.data import RetrievalDataset
from queryshift.errors import DataFormatError

logger = logging.getLogger(__name__)

__all__ = [
    "SplitRegime",
    "Split",
    "split_dataset",
    "split_by_query",
    "split_by_document",
    "seen_document_rate",
]

SplitRegime = Literal["query", "document"]


@dataclass(frozen=True)
class Split:
    """Query ids of each side, and the regime that produced them."""

    train: list[str]
    test: list[str]
    regime: str
    seed: int

    def apply(self, dataset: RetrievalDataset) -> tuple[RetrievalDataset, RetrievalDataset]:
        return (
            dataset.subset(self.train, name=f"{dataset.name}[train:{self.regime}]"),
            dataset.subset(self.test, name=f"{dataset.name}[test:{self.regime}]"),
        )


def split_dataset(
    dataset: RetrievalDataset, *, regime: SplitRegime, test_fraction: float = 0.5, seed: int = 0
) -> Split:
    """Dispatch to :func:`split_by_query` or :func:`split_by_document`."""
    if regime == "query":
        return split_by_query(dataset, test_fraction=test_fraction, seed=seed)
    if regime == "document":
        return split_by_document(dataset, test_fraction=test_fraction, seed=seed)
    raise ValueError(f"regime must be 'query' or 'document', got {regime!r}")


def split_by_query(dataset: RetrievalDataset, *, test_fraction: float = 0.5, seed: int = 0) -> Split:
    """Hold out up to ``test_fraction`` of the queries while every document keeps one training query.

    Queries are grouped by their first relevant document; one query per group always stays in
    training, so the held-out side can be smaller than asked when documents have few questions.

    Example:
        >>> ds = RetrievalDataset(queries={"a": "x", "b": "y", "c": "z"}, documents={"d": "t"},
        ...                       qrels={"a": {"d"}, "b": {"d"}, "c": {"d"}})
        >>> s = split_by_query(ds, test_fraction=0.5)
        >>> len(s.train), len(s.test)  # one query per document always stays in training
        (1, 2)
    """
    _check_fraction(test_fraction)
    rng = np.random.default_rng(seed)
    groups: dict[str, list[str]] = {}
    for qid in sorted(dataset.queries):
        groups.setdefault(min(dataset.qrels[qid]), []).append(qid)
    keep, candidates = [], []
    for doc in sorted(groups):
        members = list(groups[doc])
        rng.shuffle(members)
        keep.append(members[0])
        candidates.extend(members[1:])
    rng.shuffle(candidates)
    n_test = min(len(candidates), int(round(test_fraction * dataset.num_queries)))
    if n_test == 0:
        raise DataFormatError(
            "a query split needs documents with two or more questions; every document has one. "
            "Use regime='document' instead",
            path=dataset.name,
        )
    test = sorted(candidates[:n_test])
    train = sorted(keep + candidates[n_test:])
    return Split(train=train, test=test, regime="query", seed=seed)


def split_by_document(
    dataset: RetrievalDataset,
    *,
    test_fraction: float = 0.5,
    seed: int = 0,
    groups: dict[str, int] | None = None,
) -> Split:
    """Group split: no held-out query's relevant document is a training positive.

    Documents (or whole ``groups`` of documents, e.g. the chunks of one paper or one topic
    cluster) are shuffled and moved to the test side until about ``test_fraction`` of the
    queries are held out. Queries whose relevant documents fall on both sides are dropped,
    so the guarantee holds for queries with several positives too.

    Args:
        groups: document id → group id. Grouping neighbours keeps near-duplicates of held-out
            documents out of training, so the split measures truly new documents.
    """
    _check_fraction(test_fraction)
    rng = np.random.default_rng(seed)
    positives = sorted({d for docs in dataset.qrels.values() for d in docs})
    members: dict[object, list[str]] = {}
    for d in positives:
        members.setdefault(groups.get(d, d) if groups else d, []).append(d)
    order = sorted(members, key=str)
    rng.shuffle(order)
    per_doc: dict[str, int] = {}
    for docs in dataset.qrels.values():
        for d in docs:
            per_doc[d] = per_doc.get(d, 0) + 1
    target = test_fraction * dataset.num_queries
    test_docs: set[str] = set()
    count = 0
    for group in order:
        if count >= target:
            break
        test_docs.update(members[group])
        count += sum(per_doc[d] for d in members[group])
    train, test, dropped = [], [], 0
    for qid in sorted(dataset.queries):
        rel = dataset.qrels[qid]
        if rel <= test_docs:
            test.append(qid)
        elif rel.isdisjoint(test_docs):
            train.append(qid)
        else:
            dropped += 1
    if dropped:
        logger.info("document split dropped %d queries whose positives fall on both sides", dropped)
    if not train or not test:
        raise DataFormatError(
            f"document split left an empty side (train={len(train)}, test={len(test)})", path=dataset.name
        )
    return Split(train=train, test=test, regime="document", seed=seed)


def seen_document_rate(train: RetrievalDataset, test: RetrievalDataset) -> float:
    """Fraction of ``test`` queries with a relevant document that is a positive in ``train``.

    High (≳0.5): queries revisit known documents, where adapters gain most. Near 0: queries
    are about new documents, where an adapter must not learn a prior for known ones.
    """
    seen = {d for docs in train.qrels.values() for d in docs}
    hits = sum(1 for q in test.queries if test.qrels[q] & seen)
    return hits / max(1, test.num_queries)


def revisit_rate(dataset: RetrievalDataset) -> float:
    """Fraction of queries sharing a relevant document with another query of the same data set.

    Without held-out traffic this is the best hint of the regime: if future queries resemble
    these, this is how often they will ask about a document some training question already hit.

    Example:
        >>> ds = RetrievalDataset(queries={"a": "", "b": "", "c": ""}, documents={"x": "", "y": ""},
        ...                       qrels={"a": {"x"}, "b": {"x"}, "c": {"y"}})
        >>> round(revisit_rate(ds), 3)
        0.667
    """
    counts: dict[str, int] = {}
    for docs in dataset.qrels.values():
        for d in docs:
            counts[d] = counts.get(d, 0) + 1
    shared = sum(1 for q in dataset.queries if any(counts[d] > 1 for d in dataset.qrels[q]))
    return shared / dataset.num_queries


def _check_fraction(test_fraction: float) -> None:
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
