"""Change the query model without re-indexing: the ``queryshift migrate`` job and its evaluation.

:func:`run_migration` reads the index (a data file whose documents the old model embeds, or
whose stored vectors ``document_vectors`` holds; or a Qdrant collection's stored vectors and
payload text), embeds the documents' *text* with the new model, samples pseudo-queries, trains
a cross-model adapter (:func:`~queryshift.training.cross_model.train_cross_model_adapter`) and
saves it. :func:`compare_cross_model` measures one on labelled queries: the old model's own
queries (when the old model is at hand), the new model's through the adapter, and optionally a
full re-embed with the new model, each with a bootstrap interval of its difference to the first.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from queryshift.adapters.base import QueryAdapter
from queryshift.adapters.io import load_adapter, save_adapter
from queryshift.atomic import check_output_directory
from queryshift.data import RetrievalDataset, load_dataset
from queryshift.embeddings import EmbeddedDataset, Encoder, SentenceTransformerEncoder, load_vectors
from queryshift.errors import DataFormatError
from queryshift.evaluation import bootstrap_difference, evaluate_retrieval

logger = logging.getLogger(__name__)

__all__ = ["CrossModelComparison", "MigrationRun", "compare_cross_model", "run_migration"]

_METRICS = ("ndcg@10", "mrr@10", "hit@5", "recall@10")


@dataclass(frozen=True)
class MigrationRun:
    """What :func:`run_migration` did: the saved adapter and the evidence for it."""

    adapter: QueryAdapter
    result: Any  # CrossModelResult
    output: Path
    documents: int
    pseudo_queries: int
    labelled_queries: int
    data: Path | None = None

    def report(self) -> list[str]:
        """The lines ``queryshift migrate`` prints: the closed-form map, validation against it, the choice."""
        closed, training = self.result.closed_form, self.result.training
        ridge = f" (ridge {closed.ridge:g})" if closed.ridge is not None else ""
        best = max(closed.heldout.values()) if closed.heldout else float("nan")
        lines = [
            f"Trained {self.adapter!r} in {self.result.seconds:.1f}s on {training.device}: queries of "
            f"{self.adapter.config.base_model} (dim {self.adapter.input_dim}) -> index of "
            f"{self.adapter.config.index_model or 'the old model'} (dim {self.adapter.dim})",
            f"Closed-form map: {closed.method}{ridge}, fitted on {self.documents} documents' text -> stored vector "
            f"(chosen on held-out {closed.chosen_on}: found at MRR@10 {best:.4f})",
        ]
        source = "labelled " if self.labelled_queries else "pseudo-"
        for name, figures in training.validation.items():
            base, adapted = figures["base"], figures["adapted"]
            shown = "  ".join(
                f"{m} {base[m]:.4f} -> {adapted[m]:.4f}" for m in ("ndcg@10", "mrr@10", "hit@5")
            )
            lines.append(
                f"validation ({name} split, {figures['queries']} {source}queries; closed-form map -> adapter): {shown}"
            )
        if self.result.kept_closed_form:
            lines.append(
                "No trained candidate beat the closed-form map on validation: the adapter is that map."
            )
        else:
            lines.append(
                f"Chosen: epoch {training.chosen.epoch}, interpolation alpha {training.chosen.alpha}"
            )
        where = self.data or "DATA"
        lines.append(
            f"Saved to {self.output}; compare with the old model's own queries: "
            f"`queryshift evaluate {where} --adapter {self.output} [--reembed]`"
        )
        return lines


def _encoder(encoder: Encoder | None, model: str | None, device: str | None) -> Encoder | None:
    if encoder is not None or model is None:
        return encoder
    return SentenceTransformerEncoder(model, device=device)


def _stored_vectors(
    ids: list[str],
    texts: dict[str, str],
    old: Encoder | None,
    stored: dict[str, np.ndarray] | None,
    what: str,
) -> np.ndarray:
    """The old model's vectors of documents ``ids``: from ``stored`` where present, else embedded by ``old``."""
    out: list[np.ndarray | None] = [None] * len(ids)
    missing = []
    for i, doc_id in enumerate(ids):
        if stored is not None and doc_id in stored:
            out[i] = stored[doc_id]
        else:
            missing.append(i)
    if missing:
        if old is None:
            raise DataFormatError(
                f"{len(missing)} documents of {what} have no stored vector (e.g. {ids[missing[0]]!r}); "
                "give --index-model to embed them with the old model, or their vectors in --document-vectors"
            )
        vectors = old.encode_documents([texts[ids[i]] for i in missing])  # (n_missing, out_dim)
        for row, i in enumerate(missing):
            out[i] = vectors[row]
    return np.stack(out).astype(np.float32)  # (n, out_dim)


def _pseudo_queries(
    new: Encoder, texts: dict[str, str], stored: dict[str, np.ndarray], config: Any
) -> EmbeddedDataset | None:
    """Sentences of the documents embedded by the new model, each paired with its document's stored vector."""
    if not config.pseudo_queries:
        return None
    from queryshift.training.pseudo_queries import sample_pseudo_queries

    ids = sorted(stored)
    sampled = sample_pseudo_queries(
        {d: texts.get(d, "") for d in ids},
        per_document=config.pseudo_queries,
        # whole sentences: the cross-model maps were measured so (README); the word cap was
        # measured on same-model adapters only
        max_words=None,
        max_documents=config.pseudo_max_documents,
        max_queries=config.pseudo_max_queries,
        seed=config.seed,
    )
    if sampled is None:
        return None
    query_ids = sorted(sampled.queries)
    vectors = np.asarray(new.encode_queries([sampled.queries[q] for q in query_ids]), np.float32)
    documents = np.stack([stored[d] for d in ids]).astype(np.float32)  # (n_documents, dim)
    return EmbeddedDataset(sampled, query_ids, vectors, ids, documents, getattr(new, "model_id", "new"))


def _labelled(
    dataset: RetrievalDataset, new: Encoder, doc_ids: list[str], doc_vectors: np.ndarray
) -> EmbeddedDataset:
    query_ids = sorted(dataset.queries)
    queries = np.asarray(new.encode_queries([dataset.queries[q] for q in query_ids]), np.float32)
    return EmbeddedDataset(dataset, query_ids, queries, doc_ids, doc_vectors, getattr(new, "model_id", "new"))


def run_migration(
    output: str | Path,
    data: str | Path | None = None,
    *,
    model: str,
    index_model: str | None = None,
    config: Any = None,
    new_encoder: Encoder | None = None,
    old_encoder: Encoder | None = None,
    document_vectors: str | Path | None = None,
    labelled: str | Path | None = None,
    data_format: str = "auto",
    split_name: str = "train",
    qdrant: Any = None,
    collection: str | None = None,
    using: str | None = None,
    text_field: str | None = None,
    pairs: str | Path | None = None,
    max_documents: int | None = None,
    old_model_queries: bool = False,
    close_qdrant: bool = False,
    echo: Callable[[str], None] = logger.info,
    show_progress_bar: bool = False,
) -> MigrationRun:
    """Train and save an adapter that carries ``model``'s query vectors into an index ``index_model`` wrote.

    Files: ``data`` is the index (any :func:`~queryshift.data.load_dataset` format); its stored
    vectors come from ``document_vectors`` (``.npy`` + ``.ids.txt``) or are embedded by
    ``index_model``. Qdrant: ``qdrant`` + ``collection``, stored vectors read as they are (nothing
    re-embedded) and each point's text from ``text_field``; ``index_model`` is then only recorded.
    In both, the documents' text is embedded by ``model`` (the new model), and labelled questions
    (``labelled``: a data file whose documents the old model embeds where the index lacks them;
    ``pairs``: a Qdrant pair file) are optional.

    Args:
        output: Adapter directory to write (checked before any work).
        data: The index data file (files mode).
        model: The new model, which will embed the queries; recorded as ``base_model``.
        index_model: The old model that embedded the index; recorded as ``index_model``.
        config: A :class:`~queryshift.training.TrainingConfig`; with a collection its distance is the collection's.
        new_encoder, old_encoder: Encoders of ``model`` / ``index_model`` (default: sentence-transformers).
        labelled: Labelled questions added as training pairs and used for validation.
        pairs: JSONL pair file of a collection (see :mod:`~queryshift.integrations.qdrant.training_data`).
        old_model_queries: Also embed the pseudo-queries with ``index_model`` and train each to land
            on its old-model vector (``pseudo_targets`` of
            :func:`~queryshift.training.cross_model.train_cross_model_adapter`). Only while the
            old model is at hand (a cheaper query encoder over an index it still serves).
        echo: Called with each progress line (the CLI passes ``click.echo``).

    Returns:
        A :class:`MigrationRun`; ``run.report()`` gives the lines the CLI prints.

    Raises:
        OutputPathError: ``output`` cannot be written safely (before any work).
        DataFormatError: Documents without a stored vector and no old model to embed them.
        ValueError: No document text to fit the map on (a collection read without ``text_field``).
    """
    from queryshift.training.config import MIGRATION_RECIPE, TrainingConfig
    from queryshift.training.cross_model import train_cross_model_adapter

    inputs = [p for p in (data, document_vectors, labelled, pairs) if p is not None]
    check_output_directory(output, protect=inputs)
    config = TrainingConfig(**MIGRATION_RECIPE) if config is None else config
    new = _encoder(new_encoder, model, config.device)
    label_set = None
    if collection is not None:
        config, texts, stored, label_set = _from_qdrant(
            qdrant, collection, using, text_field, pairs, max_documents, new, config, close_qdrant
        )
        name = f"qdrant:{collection}"
    else:
        if data is None:
            raise ValueError("run_migration needs data (the index), or qdrant with collection")
        old = _encoder(old_encoder, index_model, config.device) if document_vectors is None else old_encoder
        given = load_vectors(document_vectors) if document_vectors is not None else {}
        index = load_dataset(data, format=data_format, split=split_name)
        ids = sorted(index.documents)
        stored = dict(zip(ids, _stored_vectors(ids, index.documents, old, given, str(data)), strict=True))
        texts, name = dict(index.documents), index.name
        if labelled is not None:
            lab = load_dataset(labelled, format=data_format, split=split_name)
            lab_ids = sorted(lab.documents)
            vectors = _stored_vectors(lab_ids, lab.documents, old, {**given, **stored}, str(labelled))
            label_set = _labelled(lab, new, lab_ids, vectors)
            stored = {**dict(zip(lab_ids, vectors, strict=True)), **stored}
            texts = {**lab.documents, **texts}
    # The map is fitted on every document with text and a stored vector (index and labelled corpora).
    fit_ids = sorted(d for d in stored if texts.get(d, "").strip())
    if len(fit_ids) < 10:
        raise ValueError(
            f"only {len(fit_ids)} documents carry text to embed with the new model; the map needs at least 10"
            + (" (pass --text-field: the payload key holding each point's text)" if collection else "")
        )
    echo(f"Embedding {len(fit_ids)} documents' text with {model} (the stored vectors are left as they are)")
    new_docs = np.asarray(new.encode_documents([texts[d] for d in fit_ids]), np.float32)  # (n, in_dim)
    fit_vectors = np.stack([stored[d] for d in fit_ids]).astype(np.float32)  # (n, dim)
    pseudo = _pseudo_queries(new, texts, stored, config)
    if pseudo is not None:
        echo(
            f"Adding {len(pseudo.query_ids)} pseudo-queries: sentences of the documents, embedded by {model}"
        )
    targets = None
    if old_model_queries:
        old_queries = _encoder(old_encoder, index_model, config.device)
        if old_queries is None or pseudo is None:
            raise ValueError(
                "--old-model-queries needs the old model (--index-model) and pseudo-queries (--pseudo-queries > 0)"
            )
        echo(f"Embedding the {len(pseudo.query_ids)} pseudo-queries with {index_model} too (their targets)")
        targets = np.asarray(
            old_queries.encode_queries([pseudo.dataset.queries[q] for q in pseudo.query_ids]), np.float32
        )
    result = train_cross_model_adapter(
        fit_vectors,
        new_docs,
        config,
        pseudo=pseudo,
        labelled=label_set,
        document_ids=fit_ids,
        pseudo_targets=targets,
        base_model=model,
        index_model=index_model,
        show_progress_bar=show_progress_bar,
    )
    summary = result.summary()
    summary.update(
        {
            "data_name": name,
            "documents_fitted": len(fit_ids),
            "labelled_queries": len(label_set.query_ids) if label_set is not None else 0,
            "config": {
                k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()
            },
        }
    )
    adapter = result.adapter
    adapter.config = dataclasses.replace(adapter.config, training=summary)
    save_adapter(adapter, output)
    return MigrationRun(
        load_adapter(output),
        result,
        Path(output),
        len(fit_ids),
        len(pseudo.query_ids) if pseudo is not None else 0,
        len(label_set.query_ids) if label_set is not None else 0,
        None if data is None else Path(data),
    )


def _from_qdrant(client, collection, using, text_field, pairs, max_documents, new, config, close):
    """``(config with the collection's distance, texts, stored vectors, labelled or None)`` from Qdrant."""
    from queryshift.integrations.qdrant.training_data import (
        collection_distance,
        load_training_data_from_qdrant,
        scroll_corpus,
    )

    if client is None:
        raise ValueError("migrating a collection needs qdrant (a QdrantClient)")
    try:
        config = dataclasses.replace(config, distance=collection_distance(client, collection, using=using))
        labelled = None
        if pairs is not None:
            in_dim = int(np.asarray(new.encode_queries(["dimension probe"])).shape[1])
            labelled = load_training_data_from_qdrant(
                client,
                collection,
                pairs,
                encoder=new,
                using=using,
                text_field=text_field,
                max_documents=max_documents,
                query_dim=in_dim,
            )
            texts = dict(labelled.dataset.documents)
            stored = dict(zip(labelled.document_ids, labelled.document_vectors, strict=True))
        else:
            texts, raw = scroll_corpus(
                client, collection, using=using, text_field=text_field, max_documents=max_documents
            )
            stored = {d: np.asarray(v, np.float32) for d, v in raw.items()}
    finally:
        if close:
            client.close()
    return config, texts, stored, labelled


@dataclass(frozen=True)
class CrossModelComparison:
    """Metrics of each way to query one index, and differences to the reference (the first row).

    Attributes:
        rows: ``{name: metrics}``, in display order; the first row is the reference.
        intervals: ``{name: {metric: (diff, low, high)}}`` to the reference (bootstrap 95 % CI).
    """

    rows: dict[str, dict[str, float]]
    intervals: dict[str, dict[str, tuple[float, float, float]]]
    num_queries: int
    num_documents: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": next(iter(self.rows)),
            "rows": self.rows,
            "difference_ci95": {
                name: {m: {"diff": d, "low": lo, "high": hi} for m, (d, lo, hi) in cis.items()}
                for name, cis in self.intervals.items()
            },
            "num_queries": self.num_queries,
            "num_documents": self.num_documents,
        }

    def render(self) -> str:
        names = list(self.rows)
        width = max(len(n) for n in names) + 2
        lines = [
            f"{'queries':<{width}}"
            + "".join(f"{m:>11}" for m in _METRICS)
            + "   Δ ndcg@10 vs first row [95% CI]"
        ]
        for name in names:
            row = f"{name:<{width}}" + "".join(f"{self.rows[name][m]:>11.4f}" for m in _METRICS)
            if name in self.intervals:
                d, lo, hi = self.intervals[name]["ndcg@10"]
                row += f"   {d:+.4f} [{lo:+.4f}, {hi:+.4f}]"
            lines.append(row)
        lines.append(f"({self.num_queries} queries over {self.num_documents} documents)")
        return "\n".join(lines)


def compare_cross_model(
    adapter: QueryAdapter,
    dataset: RetrievalDataset,
    *,
    new_encoder: Encoder,
    old_encoder: Encoder | None = None,
    document_vectors: dict[str, np.ndarray] | None = None,
    reembed: bool = False,
    seed: int = 0,
) -> CrossModelComparison:
    """Evaluate a cross-model adapter on ``dataset``'s labelled queries, the whole corpus searched.

    Rows: ``"old model"`` (the old model's own queries, when ``old_encoder`` is given), ``"new
    model -> adapter"`` (the new model's queries through ``adapter``; the documents' stored
    vectors from ``document_vectors`` or embedded by ``old_encoder``), and with ``reembed`` ``"new
    model, re-embedded"`` (documents re-embedded by the new model: what migrating the index costs).

    Raises:
        ValueError: Neither ``old_encoder`` nor ``document_vectors`` gives the documents' stored vectors.
    """
    ids = sorted(dataset.documents)
    if old_encoder is None and document_vectors is None:
        raise ValueError(
            "the index's vectors are needed: give the old model (--index-model) or --document-vectors"
        )
    stored = _stored_vectors(ids, dataset.documents, old_encoder, document_vectors, dataset.name)
    query_ids = sorted(q for q in dataset.queries if dataset.qrels.get(q))
    texts = [dataset.queries[q] for q in query_ids]
    distance = adapter.config.distance
    runs: dict[str, Any] = {}

    def score(name: str, queries: np.ndarray, docs: np.ndarray) -> None:
        runs[name] = evaluate_retrieval(
            queries, query_ids, docs, ids, dataset.qrels, distance=distance, metrics=_METRICS
        )

    if old_encoder is not None:
        score("old model", np.asarray(old_encoder.encode_queries(texts), np.float32), stored)
    new_queries = np.asarray(new_encoder.encode_queries(texts), np.float32)  # (n, in_dim)
    score("new model -> adapter", adapter.apply(new_queries), stored)
    if reembed:
        score(
            "new model, re-embedded",
            new_queries,
            np.asarray(new_encoder.encode_documents([dataset.documents[d] for d in ids]), np.float32),
        )
    names = list(runs)
    reference = runs[names[0]]
    intervals = {
        name: {
            m: bootstrap_difference(reference.per_query[m], runs[name].per_query[m], seed=seed)
            for m in _METRICS
        }
        for name in names[1:]
    }
    return CrossModelComparison(
        {name: run.metrics for name, run in runs.items()}, intervals, len(query_ids), len(ids)
    )
