"""`train` completes on every shape of valid data, and is never below base on validation.

Tiny synthetic BEIR folders (dim=8) go through :func:`queryshift.pipeline.run_training`, the steps of
``queryshift train DIR --split-name train``, with an encoder that looks the vectors up by text.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from queryshift.pipeline import run_training
from queryshift.training import TrainingConfig


class LookupEncoder:
    """Each text's vector from a table: the synthetic data's geometry without a model."""

    model_id = "lookup"

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.table[t] for t in texts]).astype(np.float32)  # (n, dim)

    encode_documents = encode_queries


def _shape(kind: str, *, seed: int = 0, dim: int = 8) -> tuple[dict[str, set[str]], dict[str, np.ndarray]]:
    """(qrels, text -> vector) for one shape: topic-clustered documents, queries near their documents."""
    rng = np.random.default_rng(seed)
    n_docs, n_queries, topics = {"many_positives": (300, 51, 6), "one_per_document": (60, 60, 6)}.get(
        kind, (40, 20, 4)
    )
    centers = rng.normal(size=(topics, dim))
    topic = rng.integers(topics, size=n_docs)
    docs = centers[topic] + 0.7 * rng.normal(size=(n_docs, dim))  # (n_docs, dim)
    distortion = np.eye(dim) + 0.8 * rng.normal(size=(dim, dim)) / np.sqrt(dim)
    qrels, table = {}, {f"doc {j}": docs[j] for j in range(n_docs)}
    for i in range(n_queries):
        if kind == "many_positives":  # ~40 judged documents, mostly of one topic
            pool = np.flatnonzero(topic == i % topics)
            rel = {*rng.choice(pool, size=min(35, len(pool)), replace=False), *rng.choice(n_docs, size=5)}
        elif kind == "one_per_document":
            rel = {i}
        else:  # a handful of queries
            rel = {int(rng.integers(n_docs)) if i % 2 else i % n_docs}
        qrels[f"q{i}"] = {f"d{j}" for j in rel}
        table[f"query {i}"] = docs[sorted(rel)].mean(axis=0) @ distortion.T + 0.3 * rng.normal(size=dim)
    return qrels, table


def _write_beir(folder, qrels: dict[str, set[str]], n_docs: int) -> None:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": f"d{j}", "text": f"doc {j}"}) + "\n" for j in range(n_docs))
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": f"query {q[1:]}"}) + "\n" for q in qrels)
    )
    rows = [f"{q}\t{d}\t1" for q, docs in qrels.items() for d in sorted(docs)]
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")


@pytest.mark.parametrize(
    ("kind", "dropped"),
    [("many_positives", "document"), ("one_per_document", "query"), ("handful", None)],
)
def test_train_completes_on_every_shape_and_never_loses_on_validation(tmp_path, kind, dropped):
    qrels, table = _shape(kind)
    n_docs = sum(t.startswith("doc ") for t in table)
    _write_beir(tmp_path / "data", qrels, n_docs)
    lines: list[str] = []
    run = run_training(
        tmp_path / "adapter",
        tmp_path / "data",
        config=TrainingConfig(epochs=4, hard_negatives=2),
        encoder=LookupEncoder(table),
        echo=lines.append,
    )
    result = run.result
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    for figures in result.validation.values():
        assert figures["adapted"]["ndcg@10"] >= figures["base"]["ndcg@10"]
    if dropped:
        assert dropped not in result.validation and f"{dropped} split dropped (" in result.validation_note
        (account,) = [line for line in run.report() if line.startswith("Validation: ")]
        assert f"no {dropped} split, because {result.validation_plan.dropped[dropped]}" in account
    assert result.validation, "at least one validation split is formed on each of these shapes"


def test_train_without_any_possible_split_keeps_the_identity(tmp_path):
    qrels = {f"q{i}": {"d0"} for i in range(4)}  # four questions about one document
    rng = np.random.default_rng(0)
    table = {"doc 0": rng.normal(size=8), **{f"query {i}": rng.normal(size=8) for i in range(4)}}
    _write_beir(tmp_path / "data", qrels, 1)
    run = run_training(
        tmp_path / "adapter", tmp_path / "data", config=TrainingConfig(epochs=2), encoder=LookupEncoder(table)
    )
    assert run.result.is_identity and run.result.validation == {}
    assert run.result.validation_note.endswith("no split left, so the identity is kept")
    assert any(line.startswith("Validation: no split could be held out") for line in run.report())
    x = rng.normal(size=(3, 8)).astype(np.float32)
    np.testing.assert_allclose(run.adapter.apply(x), x / np.linalg.norm(x, axis=1, keepdims=True), atol=1e-6)
