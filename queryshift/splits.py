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
from collections.abc import Iterable
from dataclasses import dataclass, field
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
    "ValidationPlan",
    "plan_validation",
    "MIN_VALIDATION_QUERIES",
]

MIN_VALIDATION_QUERIES = 3
"""Fewest queries a validation split (and the training side left beside it) may hold."""

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
    Where queries have several relevant documents and that grouping falls short (e.g. 50 queries
    with 40 judged documents each, whose first documents all differ), a held-out query need only
    share *one* relevant document with a training query; the split with more held-out queries wins.

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
    wanted = int(round(test_fraction * dataset.num_queries))
    n_test = min(len(candidates), wanted)
    if n_test < wanted and any(len(docs) > 1 for docs in dataset.qrels.values()):
        anchored = _anchored_holdout(dataset, wanted, rng)
        if len(anchored) > n_test:
            test = sorted(anchored)
            held = set(anchored)
            return Split(
                train=[q for q in sorted(dataset.queries) if q not in held],
                test=test,
                regime="query",
                seed=seed,
            )
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
    # A group that alone would take the test side past twice the target is passed over (on a
    # small data set one topic cluster can hold most queries); the smallest serves if all are.
    limit = max(2 * target, target + MIN_VALIDATION_QUERIES)
    sizes = {g: sum(per_doc[d] for d in members[g]) for g in order}
    for group in order:
        if count >= target:
            break
        if count + sizes[group] > limit:
            continue
        test_docs.update(members[group])
        count += sizes[group]
    if not test_docs and order:
        test_docs.update(members[min(order, key=lambda g: sizes[g])])
    train, test, dropped = _sides(dataset, test_docs)
    if not train or not test:
        # Queries with many relevant documents: counting qrels overshoots the target before one
        # query lies wholly on the test side. Count whole queries instead, stopping before
        # training loses its last one.
        test_docs = _grow_by_queries(dataset, [members[g] for g in order], target)
        train, test, dropped = _sides(dataset, test_docs)
    if dropped:
        logger.info("document split dropped %d queries whose positives fall on both sides", dropped)
    if not train or not test:
        raise DataFormatError(
            f"document split left an empty side (train={len(train)}, test={len(test)}): every group of "
            "documents shares relevant documents with queries of the other side",
            path=dataset.name,
        )
    return Split(train=train, test=test, regime="document", seed=seed)


def _sides(dataset: RetrievalDataset, test_docs: set[str]) -> tuple[list[str], list[str], int]:
    """(queries wholly outside ``test_docs``, queries wholly inside, count of the others)."""
    train, test, dropped = [], [], 0
    for qid in sorted(dataset.queries):
        rel = dataset.qrels[qid]
        if rel <= test_docs:
            test.append(qid)
        elif rel.isdisjoint(test_docs):
            train.append(qid)
        else:
            dropped += 1
    return train, test, dropped


def _grow_by_queries(dataset: RetrievalDataset, groups: list[list[str]], target: float) -> set[str]:
    """Test documents from the first groups of ``groups``: the shortest prefix holding ``target``
    whole queries while a query stays wholly outside, else the prefix balancing both sides best."""
    queries_of: dict[str, list[str]] = {}
    for qid, docs in dataset.qrels.items():
        for d in docs:
            queries_of.setdefault(d, []).append(qid)
    inside = dict.fromkeys(dataset.queries, 0)  # relevant documents of each query on the test side
    n_test, n_train = 0, dataset.num_queries
    best, best_prefix = 0, 0
    for prefix, docs in enumerate(groups, start=1):
        for d in docs:
            for qid in queries_of.get(d, []):
                n_train -= inside[qid] == 0
                inside[qid] += 1
                n_test += inside[qid] == len(dataset.qrels[qid])
        if n_train == 0:
            break
        if n_test >= target:
            best_prefix = prefix
            break
        if min(n_test, n_train) > best:
            best, best_prefix = min(n_test, n_train), prefix
    return {d for docs in groups[:best_prefix] for d in docs}


def _anchored_holdout(dataset: RetrievalDataset, wanted: int, rng: np.random.Generator) -> list[str]:
    """Up to ``wanted`` queries, each sharing a relevant document (its anchor) with a training query.

    A query may leave training only if it is not the last training query of an anchor, and if
    one of its own documents keeps another training query, which becomes its anchor.
    """
    training: dict[str, int] = {}  # document -> training queries that hit it
    for docs in dataset.qrels.values():
        for d in docs:
            training[d] = training.get(d, 0) + 1
    anchored: set[str] = set()
    held: list[str] = []
    order = sorted(dataset.queries)
    rng.shuffle(order)
    for qid in order:
        if len(held) >= wanted:
            break
        rel = sorted(dataset.qrels[qid])
        if any(d in anchored and training[d] == 1 for d in rel):
            continue
        anchor = max(rel, key=lambda d: training[d])
        if training[anchor] < 2:
            continue
        for d in rel:
            training[d] -= 1
        anchored.add(anchor)
        held.append(qid)
    return held


@dataclass(frozen=True)
class ValidationPlan:
    """Validation queries carved out of the training queries, and what the data did not allow.

    Args:
        splits: split name (``"document"``, ``"query"``) → held-out query ids.
        train: the query ids left to train the candidates on.
        dropped: split name → why it could not be formed.
        fallbacks: how a split was formed when the first way failed, and why.
    """

    splits: dict[str, list[str]]
    train: list[str]
    dropped: dict[str, str] = field(default_factory=dict)
    fallbacks: list[str] = field(default_factory=list)

    def describe(self) -> str | None:
        """One line for the user when a split was dropped or formed by a fallback, else ``None``."""
        parts = [f"{name} split dropped ({why})" for name, why in self.dropped.items()] + self.fallbacks
        if not parts:
            return None
        if self.splits:
            parts.append(f"choosing on the {' and '.join(self.splits)} split{'s' * (len(self.splits) > 1)}")
        else:
            parts.append("no split left, so the identity is kept")
        return "validation: " + "; ".join(parts)


def plan_validation(
    dataset: RetrievalDataset,
    *,
    kinds: tuple[str, ...] = ("document", "query"),
    fraction: float = 0.2,
    seed: int = 0,
    groupings: Iterable[dict[str, int] | None] = (None,),
    min_queries: int = MIN_VALIDATION_QUERIES,
) -> ValidationPlan:
    """Hold out a document split and a query split of ``fraction`` of the queries each, as the data allows.

    The document split tries each grouping of documents in turn (finest first: e.g. topic clusters,
    then fewer, larger ones) and takes the first that leaves ``min_queries`` queries on both sides;
    the query split is then cut from what remains. A split the data does not allow (every document
    has one question; every query shares documents with all others; too few queries) is dropped and
    the reason recorded, never raised: training on any valid data set succeeds, and with no split
    left the caller keeps the identity.

    Args:
        dataset: The training queries.
        kinds: The splits wanted, in the order they are cut.
        fraction: Share of all queries each split should hold.
        groupings: Document id → group id mappings for the document split, tried in order (``None``:
            single documents); an iterator is consumed only as far as needed.
        min_queries: Fewest queries a split and the training side beside it may hold.

    Example:
        >>> ds = RetrievalDataset(queries={f"q{i}": "" for i in range(4)}, documents={"d": ""},
        ...                       qrels={f"q{i}": {"d"} for i in range(4)})
        >>> plan = plan_validation(ds)
        >>> sorted(plan.dropped), len(plan.splits["query"]) if "query" in plan.splits else 0
        (['document', 'query'], 0)
    """
    splits: dict[str, list[str]] = {}
    dropped: dict[str, str] = {}
    fallbacks: list[str] = []
    remaining = dataset
    if "document" in kinds:
        failures = []
        for groups in groupings:
            label = f"{len(set(groups.values()))} topic clusters" if groups else "single documents"
            try:
                split = split_by_document(remaining, test_fraction=fraction, seed=seed, groups=groups)
            except DataFormatError:
                failures.append(f"{label} left an empty side")
                continue
            if min(len(split.test), len(split.train)) < min_queries:
                failures.append(
                    f"{label} left {len(split.train)} training and {len(split.test)} held-out queries"
                )
                continue
            splits["document"] = split.test
            remaining = remaining.subset(split.train)
            if failures:
                fallbacks.append(f"document split from {label} ({'; '.join(failures)})")
            break
        else:
            dropped["document"] = f"fewer than {min_queries} queries on a side: {'; '.join(failures)}"
    if "query" in kinds:
        wanted = min(fraction * dataset.num_queries / max(remaining.num_queries, 1), 0.49)
        try:
            split = split_by_query(remaining, test_fraction=wanted, seed=seed)
        except DataFormatError:
            dropped["query"] = (
                f"none of the {remaining.num_queries} queries left shares its relevant document with another"
            )
        else:
            if min(len(split.test), len(split.train)) < min_queries:
                dropped["query"] = (
                    f"only {len(split.test)} of the {remaining.num_queries} queries left share their relevant "
                    f"document with another (at least {min_queries} needed)"
                )
            else:
                splits["query"] = split.test
                remaining = remaining.subset(split.train)
    return ValidationPlan(splits, sorted(remaining.queries), dropped, fallbacks)


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
