"""The jobs a user runs end to end (train, compare), shared by the CLI and Python callers.

Each function takes plain objects (data sets, encoders, configs) so the CLI stays a thin
layer of flag parsing on top. :func:`run_training` is the whole ``queryshift train`` job
(load, hold out, embed, pseudo-queries, train, save, report) as one call.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from queryshift.adapters.base import QueryAdapter
from queryshift.adapters.io import load_adapter, save_adapter
from queryshift.atomic import check_output_directory
from queryshift.data import RetrievalDataset, corpus_for, load_dataset, read_json
from queryshift.embeddings import (
    DEFAULT_MODEL,
    EmbeddedDataset,
    Encoder,
    SentenceTransformerEncoder,
    embed_dataset,
    load_vectors,
)
from queryshift.errors import DataFormatError
from queryshift.evaluation import bootstrap_difference, evaluate_retrieval
from queryshift.splits import Split, seen_document_rate, split_dataset

logger = logging.getLogger(__name__)

__all__ = [
    "Comparison",
    "compare_adapter",
    "describe_regime",
    "describe_validation",
    "train_and_save",
    "run_training",
    "TrainingRun",
    "read_heldout",
    "heldout_subset",
    "training_queries_in",
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


def describe_validation(
    validation: dict[str, dict[str, Any]],
    *,
    train_queries: int,
    config: dict[str, Any],
    identity: bool = False,
    dropped: dict[str, str] | None = None,
    fallbacks: list[str] | None = None,
) -> str:
    """One account of which training queries were held out to choose the adapter, and why.

    Args:
        validation: ``TrainingResult.validation`` (split name → figures, with ``"queries"`` per draw
            and ``"draws"``).
        train_queries: Labelled training queries (held-out test queries, if any, not counted).
        config: The training config as a dict (``validation``, ``refit``).
        identity: Whether the identity was chosen (then nothing was retrained, and nothing is said of it).
        dropped: Split name → why the data did not allow it (``TrainingResult.validation_plan``).
        fallbacks: How a split was formed when the first way failed.

    Example:
        >>> print(describe_validation({"document": {"queries": 36}}, train_queries=40,
        ...                           config={"validation": "both", "refit": True}))
        Validation: 36 of the 40 training queries were held out to choose the adapter: 36 in the document split (about documents that training did not see as positives); no query split, because none of the 4 queries left shares its relevant document with another. The chosen candidate was then retrained on all 40.
    """
    dropped = dropped or {}
    if not validation:
        if dropped:
            reasons = "; ".join(f"no {name} split, because {why}" for name, why in dropped.items())
            return f"Validation: no split could be held out of the {train_queries} training queries ({reasons}): the identity is kept."
        return f"No validation (validation='none'): trained on all {train_queries} training queries as configured."
    held = sum(int(figures["queries"]) for figures in validation.values())
    parts = []
    if "document" in validation:
        parts.append(
            f"{validation['document']['queries']} in the document split (about documents that training did not "
            "see as positives)"
        )
    elif "document" in dropped:
        parts.append(f"no document split, because {dropped['document']}")
    if "query" in validation:
        parts.append(
            f"{validation['query']['queries']} in the query split (about documents that training also saw)"
        )
    elif "query" in dropped:
        parts.append(f"no query split, because {dropped['query']}")
    elif config.get("validation") == "both":
        left = train_queries - held
        parts.append(
            f"no query split, because none of the {left} queries left shares its relevant document with another"
        )
    parts += fallbacks or []
    account = (
        f"Validation: {held} of the {train_queries} training queries were held out to choose the adapter: "
        + "; ".join(parts)
        + "."
    )
    draws = max(int(figures.get("draws", 1)) for figures in validation.values())
    if draws > 1:
        account += f" The splits were drawn {draws} times; every candidate was scored on all {draws} draws."
    if identity:
        return account  # the report goes on to say that the identity was kept
    if config.get("refit", True):
        return account + f" The chosen candidate was then retrained on all {train_queries}."
    return account + f" The chosen candidate is the one trained on the {train_queries - held} left."


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
    ranker: Any = None,
):
    """Train with :func:`queryshift.training.train_adapter`, record provenance, save atomically.

    Returns ``(adapter, result)``; ``adapter`` is the loaded-back saved adapter, so what the caller
    uses is byte for byte what is on disk. ``ranker``: the recipe's validation ranker (index-side).
    """
    from queryshift.training import train_adapter

    result = train_adapter(
        train,
        config,
        base_model=base_model,
        pseudo=pseudo,
        show_progress_bar=show_progress_bar,
        ranker=ranker,
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
        max_words=config.pseudo_max_words,
        max_documents=config.pseudo_max_documents,
        max_queries=config.pseudo_max_queries,
        seed=config.seed,
    )


def read_heldout(adapter_dir: str | Path) -> list[str] | None:
    """Held-out query ids saved by :func:`train_and_save`, or ``None``.

    Raises:
        DataFormatError: The file is not UTF-8 JSON, or not a list of distinct query-id strings.
    """
    path = Path(adapter_dir) / HELDOUT_NAME
    if not path.is_file():
        return None
    ids = read_json(path)
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise DataFormatError(
            f"expected a JSON list of query-id strings, got {type(ids).__name__}"
            + ("" if not isinstance(ids, list) else " with non-string items"),
            path=path,
        )
    if len(set(ids)) != len(ids):
        raise DataFormatError("a query id is listed twice", path=path)
    return ids


def training_queries_in(
    adapter: QueryAdapter, dataset: RetrievalDataset, heldout: list[str] | None = None
) -> int:
    """How many of ``dataset``'s queries ``adapter`` was trained on, as its training summary tells.

    The summary records the training data's fingerprint (texts and qrels). ``dataset`` is the
    training data itself when the fingerprints match; with the adapter's held-out ids, ``dataset``
    minus those is checked too (``evaluate --queries all`` on the data of ``train --holdout``).
    Scores on training queries overstate what new queries will see. ``0`` when the summary has
    no fingerprint or nothing matches (other data, or an adapter trained elsewhere).
    """
    fingerprint = (adapter.config.training or {}).get("data_fingerprint")
    if not fingerprint:
        return 0
    if dataset.fingerprint() == fingerprint:
        return dataset.num_queries
    held = set(heldout or ())
    trained = [q for q in dataset.queries if q not in held]
    if held and trained and len(trained) < dataset.num_queries:
        if dataset.subset(trained).fingerprint() == fingerprint:
            return len(trained)
    return 0


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


@dataclass(frozen=True)
class TrainingRun:
    """What :func:`run_training` did: the saved adapter, the training result, the held-out split.

    Attributes:
        adapter: The adapter as saved in ``output`` (loaded back).
        result: The :class:`~queryshift.training.TrainingResult`.
        split: The ``holdout`` split, ``None`` with ``holdout="none"``.
        seen: Share of held-out queries whose documents training saw (``None`` without a split).
        output: The adapter directory.
        data: The data the adapter was trained on (for the ``evaluate`` hint), ``None`` for Qdrant.
    """

    adapter: QueryAdapter
    result: Any
    split: Split | None
    seen: float | None
    output: Path
    data: Path | None = None

    def report(self) -> list[str]:
        """The lines ``queryshift train`` prints after training: validation, choice, regime, where saved."""
        result, split = self.result, self.split
        lines = [f"Trained {self.adapter!r} in {result.seconds:.1f}s on {result.device}"]
        summary = self.adapter.config.training or {}
        plan = result.validation_plan
        lines.append(
            describe_validation(
                result.validation,
                train_queries=int(summary.get("train_queries", 0)),
                config=summary.get("config") or {},
                identity=result.is_identity,
                dropped=plan.dropped if plan else None,
                fallbacks=plan.fallbacks if plan else None,
            )
        )
        for name, figures in result.validation.items():
            base, adapted = figures["base"], figures["adapted"]
            shown = "  ".join(
                f"{m} {base[m]:.4f} -> {adapted[m]:.4f}" for m in ("ndcg@10", "mrr@10", "hit@5")
            )
            lines.append(f"validation ({name} split, {figures['queries']} queries): {shown}")
        evidence = result.evidence
        if result.is_identity and not result.validation:
            pass  # the account above says why nothing could be validated
        elif result.is_identity and evidence.get("worst_split_gain", 0.0) > 0:
            lines.append(
                f"The best candidate gained {evidence['worst_split_gain']:+.4f} on validation, within "
                f"noise (lower bound {evidence['lower_bound']:+.4f}): the saved adapter is the identity (no change)."
            )
        elif result.is_identity:
            lines.append(
                "No candidate beat the identity on validation: the saved adapter is the identity (no change)."
            )
        else:
            lines.append(f"Chosen: epoch {result.chosen.epoch}, interpolation alpha {result.chosen.alpha}")
        if self.seen is not None:
            lines.append(describe_regime(self.seen, heldout=True))
        else:
            lines.append(describe_regime(result.revisit_rate, heldout=False))
        if split:
            lines.append(
                f"Held out {len(split.test)} queries ({split.regime} split); "
                f"run `queryshift evaluate {self.data or 'DATA'} --adapter {self.output}`."
            )
        lines.append(f"Saved to {self.output}")
        return lines


def run_training(
    output: str | Path,
    data: str | Path | None = None,
    *,
    config: Any = None,
    model: str = DEFAULT_MODEL,
    encoder: Encoder | None = None,
    data_format: str = "auto",
    corpus: str | Path | None = None,
    split_name: str = "train",
    holdout: str = "none",
    test_fraction: float = 0.5,
    query_vectors: str | Path | None = None,
    document_vectors: str | Path | None = None,
    index_data: str | Path | None = None,
    qdrant: Any = None,
    collection: str | None = None,
    pairs: str | Path | None = None,
    using: str | None = None,
    text_field: str | None = None,
    max_documents: int | None = None,
    in_memory: bool = False,
    exact: bool = False,
    close_qdrant: bool = False,
    echo: Callable[[str], None] = logger.info,
    show_progress_bar: bool = False,
) -> TrainingRun:
    """Train a query adapter on ``data`` (or on a Qdrant collection's stored vectors) and save it.

    The steps of ``queryshift train``: load the data, hold out test queries (``holdout``: ``"none"``,
    ``"query"`` or ``"document"``; held-out queries are never embedded), embed the rest, sample
    pseudo-queries from the documents (and from ``index_data``'s, the corpus the adapter will
    search when it is not ``data``'s), train, save with the held-out ids.

    Args:
        output: Adapter directory to write.
        data: Labelled data (any :func:`~queryshift.data.load_dataset` format); or give ``qdrant``,
            ``collection`` and ``pairs`` instead: document vectors then come from the collection
            (``using``: its named vector) and only query texts are embedded. Training is then
            index-side (:mod:`~queryshift.integrations.qdrant.index_training`): only the labelled
            points, the negatives found by searching the collection and a sample for
            pseudo-queries are fetched, and validation searches the collection (``exact``: exact
            search); ``in_memory=True`` scrolls the corpus (``max_documents`` points) instead.
        config: A :class:`~queryshift.training.TrainingConfig` (default: the defaults). With
            ``collection`` its ``distance`` is taken from the collection.
        model: Embedding model name or path, recorded as the adapter's base model.
        corpus: For JSONL pairs whose positives are document ids (``data``, and ``index_data`` when
            it is a pair file too): the ``corpus.jsonl`` the ids come from.
        encoder: Encoder of ``model`` (default: a :class:`~queryshift.embeddings.SentenceTransformerEncoder`).
        query_vectors, document_vectors: Precomputed vectors (``.npy`` + ``.ids.txt``); with
            ``query_vectors`` no pseudo-queries are made (their model is not here).
        text_field, max_documents: Payload key holding each point's text; how many points to scroll
            (``in_memory``).
        close_qdrant: Close ``qdrant`` when done with it (in memory: once the vectors are read,
            which frees a local store's lock before training).
        echo: Called with each progress line (the CLI passes ``click.echo``).

    Returns:
        A :class:`TrainingRun`; ``run.report()`` gives the summary lines the CLI prints.

    Raises:
        OutputPathError: ``output`` holds files queryshift did not write, is or contains an input or
            the current directory, or cannot be written; raised before anything is loaded or embedded.

    Example:
        Train on a LlamaIndex-format file, holding out half of the queries, and print the report::

            run = run_training("my-adapter", "train_dataset.json", holdout="query")
            print("\\n".join(run.report()))
    """
    from queryshift.training.config import TrainingConfig

    inputs = (data, pairs, index_data, query_vectors, document_vectors)
    check_output_directory(output, protect=[p for p in inputs if p is not None])  # refuse before any work
    config = TrainingConfig() if config is None else config
    ranker = None
    if collection is not None:
        try:
            limit = max_documents if in_memory else 0  # index-side: the relevant points only
            config, encoder, embedded = _embedded_from_qdrant(
                qdrant,
                collection,
                pairs,
                config,
                model,
                encoder,
                using,
                text_field,
                limit,
                close_qdrant and in_memory,
            )
            split, seen = _hold_out(embedded.dataset, holdout, test_fraction, config.seed)
            if split:
                embedded = embedded.subset(split.train)
            how = "" if in_memory else " (labelled, mined by searching it, sampled); validation searches it"
            if not in_memory:
                embedded, ranker = _index_side(qdrant, collection, embedded, config, using, text_field, exact)
            echo(
                f"Training on {len(embedded.query_ids)} queries over {len(embedded.document_ids)} points of {collection!r}{how}"
            )
        except BaseException:
            if close_qdrant:
                qdrant.close()  # frees a local store's lock before the error reaches the caller
            raise
        index = None
    else:
        if data is None:
            raise ValueError("run_training needs data, or qdrant with collection and pairs")
        dataset = load_dataset(data, format=data_format, split=split_name, corpus=corpus)
        split, seen = _hold_out(dataset, holdout, test_fraction, config.seed)
        train_set = split.apply(dataset)[0] if split else dataset  # held-out queries are never embedded
        echo(
            f"Training on {train_set.num_queries} queries over {train_set.num_documents} documents ({dataset.name})"
        )
        encoder = encoder or SentenceTransformerEncoder(model, device=config.device)
        embedded = embed_dataset(
            train_set,
            encoder,
            query_vectors=load_vectors(query_vectors) if query_vectors else None,
            document_vectors=load_vectors(document_vectors) if document_vectors else None,
        )
        if query_vectors is not None and config.pseudo_queries:
            # The sentences would have to be embedded by the model behind query_vectors, not available here.
            echo("No pseudo-queries: query vectors come from --query-vectors, whose model is not here.")
            config = dataclasses.replace(config, pseudo_queries=0)
        index = None
        if index_data is not None and config.pseudo_queries:
            index_set = load_dataset(
                index_data,
                format=data_format,
                split=split_name,
                corpus=corpus_for(index_data, corpus, format=data_format),
            )
            index = embed_dataset(index_set, encoder)
    # Pseudo-queries come from the text of all of `embedded`'s documents (the corpus the adapter will
    # search), held-out queries' documents included: their text is in the index; the held-out
    # questions never are.
    try:
        pseudo = pseudo_queries_for(encoder, [embedded] if index is None else [embedded, index], config)
        if config.pseudo_queries and pseudo is None:
            echo("No pseudo-queries: the documents carry no text (with --collection, pass --text-field).")
        elif pseudo is not None:
            echo(
                f"Adding {len(pseudo.query_ids)} pseudo-queries: sentences of the documents, paired with their document"
            )
        adapter, result = train_and_save(
            embedded,
            config,
            output,
            base_model=model,
            heldout=split.test if split else None,
            split_regime=split.regime if split else "none",
            pseudo=pseudo,
            show_progress_bar=show_progress_bar,
            ranker=ranker,
        )
    finally:
        if ranker is not None and close_qdrant:
            qdrant.close()
    return TrainingRun(adapter, result, split, seen, Path(output), None if data is None else Path(data))


def _hold_out(dataset: RetrievalDataset, holdout: str, test_fraction: float, seed: int):
    """The ``holdout`` split and the share of its test queries whose documents training saw.

    ``(None, None)`` with ``holdout="none"``.
    """
    if holdout == "none":
        return None, None
    split = split_dataset(dataset, regime=holdout, test_fraction=test_fraction, seed=seed)
    return split, seen_document_rate(*split.apply(dataset))


def _index_side(client, collection, embedded, config, using, text_field, exact):
    """``(training data, validation ranker)``: mined negatives and a pseudo-query sample added to ``embedded``."""
    from queryshift.integrations.qdrant.index_training import index_side_training_data

    return index_side_training_data(
        client,
        collection,
        embedded,
        hard_negatives=config.hard_negatives,
        pseudo_documents=config.pseudo_max_documents if config.pseudo_queries else 0,
        text_field=text_field,
        using=using,
        exact=exact,
    )


def _embedded_from_qdrant(
    client, collection, pairs, config, model, encoder, using, text_field, max_documents, close
):
    """``(config with the collection's distance, encoder, training data)`` read from a Qdrant collection."""
    from queryshift.integrations.qdrant.training_data import (
        collection_distance,
        load_training_data_from_qdrant,
    )

    if client is None or pairs is None:
        raise ValueError("training on a collection needs qdrant (a QdrantClient) and pairs (a JSONL file)")
    try:
        config = dataclasses.replace(config, distance=collection_distance(client, collection, using=using))
        encoder = encoder or SentenceTransformerEncoder(model, device=config.device)
        embedded = load_training_data_from_qdrant(
            client,
            collection,
            pairs,
            encoder=encoder,
            using=using,
            text_field=text_field,
            max_documents=max_documents,
        )
    finally:
        if close:
            client.close()  # the vectors are in memory now; free a local store's lock before training
    return config, encoder, embedded
