"""Index-side training: only the labelled and mined points are fetched, validation searches the collection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from queryshift.data import RetrievalDataset
from queryshift.embeddings import EmbeddedDataset
from queryshift.integrations.qdrant.index_training import QdrantRanker, add_sampled_points
from queryshift.pipeline import run_training
from queryshift.training import TrainingConfig
from queryshift.training.scoring import SplitScorer

DIM = 8
N_POINTS = 600
N_QUERIES = 40
WORDS = "revenue cost growth market driver rider trip city fare tax".split()


class PointEncoder:
    """Embeds "about N" as a fixed distortion of point N's vector plus noise: an adapter can learn it."""

    model_id = "point-toy"

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors
        self.distortion = np.random.default_rng(7).normal(scale=0.4, size=(DIM, DIM)) + np.eye(DIM)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        out = []
        for text in texts:
            words = text.split()
            if words[0] == "about":
                n = int(words[1])
                noise = np.random.default_rng(n).normal(scale=0.3, size=DIM)
                out.append(self.vectors[n] @ self.distortion + noise)
            else:  # a pseudo-query (a sentence of a point's text): a stable vector of its words
                out.append(np.random.default_rng(abs(hash(text)) % 2**32).normal(size=DIM))
        return np.asarray(out, dtype=np.float32)

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        raise AssertionError("documents are read from Qdrant, never re-embedded")


class MeteredClient:
    """A client that counts what crosses the wire and refuses to return more than ``cap`` vectors.

    The cap plays the role of a memory limit: a path that pulls the corpus into the process
    exceeds it long before it finishes.
    """

    def __init__(self, client: QdrantClient, cap: int) -> None:
        self.client, self.cap = client, cap
        self.vectors = 0
        self.retrieved: list = []
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str):
        method = getattr(self.client, name)

        def counted(*args, **kwargs):
            self.calls[name] = self.calls.get(name, 0) + 1
            result = method(*args, **kwargs)
            if name == "retrieve":
                self.retrieved.extend(kwargs.get("ids", args[1] if len(args) > 1 else []))
            records = result[0] if name == "scroll" else getattr(result, "points", result)
            if isinstance(records, list):
                self._meter(records)
            return result

        return counted

    def _meter(self, records: list) -> None:
        self.vectors += sum(1 for r in records if getattr(r, "vector", None) is not None)
        if self.vectors > self.cap:
            raise MemoryError(f"fetched {self.vectors} vectors, over the cap of {self.cap}")


@pytest.fixture
def collection() -> tuple[QdrantClient, np.ndarray]:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(N_POINTS, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    client = QdrantClient(":memory:")
    client.create_collection("docs", vectors_config=models.VectorParams(size=DIM, distance="Cosine"))
    texts = [" ".join(rng.choice(WORDS, size=8)) + f" point {i}." for i in range(N_POINTS)]
    client.upsert(
        "docs",
        [
            models.PointStruct(id=i, vector=vectors[i].tolist(), payload={"text": texts[i]})
            for i in range(N_POINTS)
        ],
    )
    return client, vectors


def _pairs(path: Path) -> Path:
    # Two questions per point on 20 points: a query split is possible.
    rows = [{"query": f"about {i % 20} v{i // 20}", "point_id": i % 20} for i in range(N_QUERIES)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_index_side_training_fetches_only_labelled_mined_and_sampled_points(collection, tmp_path) -> None:
    client, vectors = collection
    pairs = _pairs(tmp_path / "pairs.jsonl")
    negatives, sample = 4, 30
    cap = N_QUERIES * (1 + negatives) + sample  # what index-side training may fetch, << N_POINTS
    config = TrainingConfig(epochs=3, hard_negatives=negatives, pseudo_queries=1, pseudo_max_documents=sample)
    metered = MeteredClient(client, cap=cap)
    run = run_training(
        tmp_path / "adapter",
        qdrant=metered,
        collection="docs",
        pairs=pairs,
        encoder=PointEncoder(vectors),
        config=config,
        text_field="text",
        holdout="query",
        test_fraction=0.25,
    )
    assert "scroll" not in metered.calls  # nothing is scrolled
    assert metered.vectors <= cap
    train_ids = set(run.split.train)
    # Retrieved: the labelled points (all queries, checked before the split) and the mined
    # negatives of the training queries; nothing else.
    assert len(metered.retrieved) == len(set(map(str, metered.retrieved)))  # each id once
    assert len(metered.retrieved) <= 20 + len(train_ids) * negatives
    # Searches: one batch to mine, one sample, then per validation split one batch for the base
    # vectors and one per epoch (its 4 alphas stacked in one batch).
    assert metered.calls["query_points"] == 1
    assert metered.calls["query_batch_points"] == 1 + 2 * (1 + 3)
    summary = run.adapter.config.training
    assert summary["pseudo_queries"] > 0 and summary["train_queries"] == len(train_ids)
    assert set(summary["validation"]) == {"query", "document"}

    # The same client in memory pulls every vector: over the cap.
    with pytest.raises(MemoryError, match="over the cap"):
        run_training(
            tmp_path / "in-memory",
            qdrant=MeteredClient(client, cap=cap),
            collection="docs",
            pairs=pairs,
            encoder=PointEncoder(vectors),
            config=config,
            in_memory=True,
        )


def test_qdrant_ranker_scores_like_the_in_memory_corpus(collection) -> None:
    """Congruence: validation through the collection equals brute force over all its vectors."""
    client, vectors = collection
    ids = [str(i) for i in range(N_POINTS)]
    rng = np.random.default_rng(1)
    qids = [f"q{i}" for i in range(12)]
    qrels = {q: {str(i * 7), str(i * 7 + 1)} for i, q in enumerate(qids)}
    dataset = RetrievalDataset(
        queries=dict.fromkeys(qids, "?"), documents=dict.fromkeys(ids, ""), qrels=qrels
    )
    queries = vectors[[i * 7 for i in range(12)]] + rng.normal(scale=0.4, size=(12, DIM)).astype(np.float32)
    full = EmbeddedDataset(dataset, qids, queries, ids, vectors, "toy")
    relevant = sorted({d for r in qrels.values() for d in r})
    small = EmbeddedDataset(
        dataset.subset(qids), qids, queries, relevant, vectors[[int(d) for d in relevant]], "toy"
    )
    metrics = ["ndcg@10", "mrr@10", "recall@10", "hit@1"]
    ranker = QdrantRanker(client, "docs", batch_size=5)
    candidates = np.stack([queries, queries @ rng.normal(size=(DIM, DIM)).astype(np.float32)])
    expected = SplitScorer(full, metrics).score(candidates)
    got = SplitScorer(small, metrics, ranker=ranker).score(candidates)
    for row, want in zip(got, expected, strict=True):
        assert row == pytest.approx(want, abs=1e-9)
    assert ranker.calls == 5 and ranker.queries == 24  # 2 x 12 queries in batches of 5
    assert 0 < expected[0]["ndcg@10"] < 1


def test_sample_is_bounded_and_skips_points_without_text(collection) -> None:
    client, vectors = collection
    client.upsert("docs", [models.PointStruct(id=N_POINTS, vector=vectors[0].tolist(), payload={})])
    # "5" stands for a mined negative: fetched without its text.
    ds = RetrievalDataset(queries={"q": "?"}, documents={"0": "t", "5": ""}, qrels={"q": {"0"}})
    data = EmbeddedDataset(ds, ["q"], vectors[:1], ["0", "5"], vectors[[0, 5]], "toy")
    sampled = add_sampled_points(client, "docs", data, limit=25, text_field="text")
    assert 25 <= len(sampled.document_ids) <= 27 and sampled.document_ids[:2] == ["0", "5"]
    everything = add_sampled_points(client, "docs", data, limit=10 * N_POINTS, text_field="text")
    assert len(everything.document_ids) == N_POINTS  # the whole collection, less the point without text
    row = everything.document_ids.index("17")
    np.testing.assert_allclose(everything.document_vectors[row], vectors[17], atol=1e-6)
    assert everything.dataset.documents["17"].endswith("point 17.")
    assert everything.dataset.documents["0"] == "t"  # known text kept
    assert everything.dataset.documents["5"].endswith("point 5.")  # the negative got its text, once
    assert everything.document_ids.count("5") == 1


def test_cli_max_documents_needs_in_memory(tmp_path) -> None:
    from click.testing import CliRunner

    from queryshift.cli import main

    pairs = _pairs(tmp_path / "pairs.jsonl")
    args = ["train", "--qdrant-path", str(tmp_path), "--collection", "docs", "--pairs", str(pairs)]
    res = CliRunner().invoke(main, [*args, "--max-documents", "10", "-o", str(tmp_path / "a")])
    assert res.exit_code != 0 and "--max-documents needs --in-memory" in res.output
    assert not (tmp_path / "a").exists()
