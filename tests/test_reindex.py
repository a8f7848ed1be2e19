"""Re-indexing into a new collection behind an alias: interruption, resume, verification, errors."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from queryshift.data import RetrievalDataset
from queryshift.errors import DataFormatError, DimensionMismatchError
from queryshift.reindex import METADATA_KEY, ReindexError, reindex_collection

N_POINTS = 300
OLD_DIM = 8


class HashEncoder:
    """Deterministic unit vectors from a text hash; optionally fails after ``fail_after`` calls."""

    def __init__(self, dim: int = OLD_DIM, *, fail_after: int | None = None, model_id: str = "hash-v2"):
        self.dim = dim
        self.fail_after = fail_after
        self.model_id = model_id
        self.calls: list[int] = []

    def vector(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).normal(size=self.dim).astype(np.float32)
        return v / np.linalg.norm(v)

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("encoder crashed (simulated interruption)")
        self.calls.append(len(texts))
        return np.stack([self.vector(t) for t in texts])  # (n, dim)

    encode_queries = encode_documents


def _text(i: int) -> str:
    return f"document number {i} about topic {i % 7}"


def _fill(client: QdrantClient, name: str = "docs_v1", n: int = N_POINTS) -> dict[int, bytes]:
    """A cosine collection of ``n`` random points inserted in shuffled order; returns id → vector bytes."""
    client.create_collection(
        name, vectors_config=models.VectorParams(size=OLD_DIM, distance=models.Distance.COSINE)
    )
    rng = np.random.default_rng(0)
    ids = rng.permutation(n)
    vectors = rng.normal(size=(n, OLD_DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    client.upsert(
        name,
        [
            models.PointStruct(
                id=int(i), vector=vectors[int(i)].tolist(), payload={"text": _text(int(i)), "n": int(i)}
            )
            for i in ids
        ],
    )
    return _vectors(client, name)


def _vectors(client: QdrantClient, name: str) -> dict[object, bytes]:
    records, _ = client.scroll(name, limit=10_000, with_vectors=True, with_payload=False)
    return {r.id: np.asarray(r.vector, dtype=np.float32).tobytes() for r in records}


def test_interrupted_reindex_resumes_and_switches_alias(tmp_path):
    client = QdrantClient(path=str(tmp_path / "qdrant"))
    old = _fill(client)

    crashing = HashEncoder(fail_after=3)  # the probe text, then two batches of 50
    with pytest.raises(RuntimeError, match="simulated interruption"):
        reindex_collection(
            client,
            source_collection="docs_v1",
            target_collection="docs_v2",
            alias="docs",
            text_field="text",
            encoder=crashing,
            batch_size=50,
        )
    assert client.count("docs_v2").count == 100
    assert client.get_aliases().aliases == []  # nothing switched before completion

    resumed = HashEncoder()
    report = reindex_collection(
        client,
        source_collection="docs_v1",
        target_collection="docs_v2",
        alias="docs",
        text_field="text",
        encoder=resumed,
        batch_size=50,
    )
    assert (report.points, report.written, report.skipped) == (N_POINTS, 200, 100)
    assert resumed.calls == [1, 50, 50, 50, 50]  # the probe, then only the four missing batches
    assert report.previous_alias_target is None and report.dim == OLD_DIM

    # every source point exactly once, with the new model's vector and the same payload
    records, _ = client.scroll("docs_v2", limit=10_000, with_vectors=True, with_payload=True)
    assert sorted(r.id for r in records) == list(range(N_POINTS))
    for r in records:
        np.testing.assert_allclose(r.vector, resumed.vector(_text(r.id)), atol=1e-6)
        assert r.payload == {"text": _text(r.id), "n": r.id}

    # the old collection is intact, byte for byte
    assert _vectors(client, "docs_v1") == old
    assert client.count("docs_v1").count == N_POINTS

    # searches through the alias reach the new vectors
    aliases = {a.alias_name: a.collection_name for a in client.get_aliases().aliases}
    assert aliases == {"docs": "docs_v2"}
    hit = client.query_points("docs", query=resumed.vector(_text(42)).tolist(), limit=1).points[0]
    assert hit.id == 42
    client.close()


def test_alias_moves_from_previous_collection_and_source_may_be_the_alias():
    client = QdrantClient(":memory:")
    _fill(client, n=40)
    client.update_collection_aliases(
        change_aliases_operations=[
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name="docs_v1", alias_name="docs")
            )
        ]
    )
    report = reindex_collection(
        client,
        source_collection="docs",
        target_collection="docs_v2",
        alias="docs",
        text_field="text",
        encoder=HashEncoder(),
        batch_size=16,
    )
    assert report.source_collection == "docs_v1"
    assert report.previous_alias_target == "docs_v1"
    assert {a.alias_name: a.collection_name for a in client.get_aliases().aliases} == {"docs": "docs_v2"}
    assert client.collection_exists("docs_v1")
    json.dumps(report.to_dict())  # JSON-ready


def test_dimension_change_needs_consent():
    client = QdrantClient(":memory:")
    _fill(client, n=20)
    kwargs = dict(source_collection="docs_v1", target_collection="docs_v2", alias="docs", text_field="text")
    with pytest.raises(DimensionMismatchError, match=r"dim=16.*dim=8.*allow_dim_change=True"):
        reindex_collection(client, encoder=HashEncoder(dim=16), **kwargs)
    assert not client.collection_exists("docs_v2")
    with pytest.raises(DimensionMismatchError, match="expected_dim=12"):
        reindex_collection(
            client, encoder=HashEncoder(dim=16), expected_dim=12, allow_dim_change=True, **kwargs
        )
    report = reindex_collection(client, encoder=HashEncoder(dim=16), allow_dim_change=True, **kwargs)
    assert (report.dim, report.previous_dim) == (16, 8)
    assert client.get_collection("docs_v2").config.params.vectors.size == 16
    assert client.get_collection("docs_v1").config.params.vectors.size == 8


def test_missing_payload_field_names_point_and_field():
    client = QdrantClient(":memory:")
    _fill(client, n=20)
    client.overwrite_payload("docs_v1", payload={"title": "no text here"}, points=[7])
    with pytest.raises(DataFormatError, match=r"point id 7.*'text'"):
        reindex_collection(
            client,
            source_collection="docs_v1",
            target_collection="docs_v2",
            alias="docs",
            text_field="text",
            encoder=HashEncoder(),
            batch_size=8,
        )
    assert client.get_aliases().aliases == []


def test_texts_from_dataset_with_named_and_sparse_vectors_copied():
    client = QdrantClient(":memory:")
    client.create_collection(
        "kb",
        vectors_config={"text-dense": models.VectorParams(size=OLD_DIM, distance=models.Distance.DOT)},
        sparse_vectors_config={"text-sparse": models.SparseVectorParams()},
    )
    ids = [str(uuid.UUID(int=i + 1)) for i in range(30)]
    rng = np.random.default_rng(1)
    client.upsert(
        "kb",
        [
            models.PointStruct(
                id=pid,
                vector={
                    "text-dense": rng.normal(size=OLD_DIM).tolist(),
                    "text-sparse": models.SparseVector(indices=[i, i + 3], values=[1.0, 0.5]),
                },
                payload={"k": i},
            )
            for i, pid in enumerate(ids)
        ],
    )
    dataset = RetrievalDataset(
        queries={"q": "?"}, documents={pid: _text(i) for i, pid in enumerate(ids)}, qrels={"q": {ids[0]}}
    )
    encoder = HashEncoder()
    report = reindex_collection(
        client,
        source_collection="kb",
        target_collection="kb_v2",
        alias="kb_live",
        dataset=dataset,
        encoder=encoder,
        batch_size=7,
    )
    assert report.vector_name == "text-dense" and report.distance == "Dot"
    records = client.retrieve("kb_v2", ids, with_vectors=True)
    assert len(records) == 30
    for r in records:
        i = r.payload["k"]
        np.testing.assert_allclose(r.vector["text-dense"], encoder.vector(_text(i)), atol=1e-6)
        assert r.vector["text-sparse"].indices == [i, i + 3]

    missing = RetrievalDataset(queries={"q": "?"}, documents={ids[0]: "x"}, qrels={"q": {ids[0]}})
    with pytest.raises(DataFormatError, match=r"point id .* has no document"):
        reindex_collection(
            client,
            source_collection="kb",
            target_collection="kb_v3",
            alias="kb_live",
            dataset=missing,
            encoder=encoder,
        )


def test_llamaindex_payload_path():
    client = QdrantClient(":memory:")
    client.create_collection(
        "li", vectors_config=models.VectorParams(size=OLD_DIM, distance=models.Distance.COSINE)
    )
    client.upsert(
        "li",
        [
            models.PointStruct(
                id=i,
                vector=[1.0] * OLD_DIM,
                payload={"_node_content": json.dumps({"text": _text(i), "id_": str(i)})},
            )
            for i in range(5)
        ],
    )
    encoder = HashEncoder()
    reindex_collection(
        client,
        source_collection="li",
        target_collection="li_v2",
        alias="li_live",
        text_field="_node_content.text",
        encoder=encoder,
    )
    record = client.retrieve("li_v2", [3], with_vectors=True)[0]
    np.testing.assert_allclose(record.vector, encoder.vector(_text(3)), atol=1e-6)


def test_refuses_foreign_or_mismatched_target_and_alias_over_collection():
    client = QdrantClient(":memory:")
    _fill(client, n=20)
    client.create_collection(
        "other", vectors_config=models.VectorParams(size=OLD_DIM, distance=models.Distance.COSINE)
    )
    kwargs = dict(source_collection="docs_v1", alias="docs", text_field="text")
    with pytest.raises(ReindexError, match="not created by a queryshift re-index"):
        reindex_collection(client, target_collection="other", encoder=HashEncoder(), **kwargs)
    with pytest.raises(ValueError, match="name of a collection"):
        reindex_collection(
            client,
            source_collection="docs_v1",
            target_collection="docs_v2",
            alias="other",
            text_field="text",
            encoder=HashEncoder(),
        )
    with pytest.raises(RuntimeError):
        reindex_collection(
            client, target_collection="docs_v2", encoder=HashEncoder(fail_after=2), batch_size=5, **kwargs
        )
    assert client.get_collection("docs_v2").config.metadata[METADATA_KEY]["model_id"] == "hash-v2"
    with pytest.raises(ReindexError, match="model_id: 'hash-v2' now 'hash-v3'"):
        reindex_collection(
            client, target_collection="docs_v2", encoder=HashEncoder(model_id="hash-v3"), **kwargs
        )


def test_verification_catches_points_that_are_not_in_the_source():
    client = QdrantClient(":memory:")
    _fill(client, n=20)
    kwargs = dict(source_collection="docs_v1", target_collection="docs_v2", alias="docs", text_field="text")
    with pytest.raises(RuntimeError):
        reindex_collection(client, encoder=HashEncoder(fail_after=2), batch_size=5, **kwargs)
    client.upsert("docs_v2", [models.PointStruct(id=999, vector=[1.0] * OLD_DIM, payload={})])
    with pytest.raises(ReindexError, match="source 'docs_v1' has 20 points, target 'docs_v2' has 21"):
        reindex_collection(client, encoder=HashEncoder(), batch_size=5, **kwargs)
    assert client.get_aliases().aliases == []


def test_bad_arguments():
    client = QdrantClient(":memory:")
    _fill(client, n=5)
    with pytest.raises(ValueError, match="exactly one of text_field"):
        reindex_collection(
            client, source_collection="docs_v1", target_collection="t", alias="a", encoder=HashEncoder()
        )
    with pytest.raises(ValueError, match="is the source"):
        reindex_collection(
            client,
            source_collection="docs_v1",
            target_collection="docs_v1",
            alias="a",
            text_field="text",
            encoder=HashEncoder(),
        )
    with pytest.raises(ValueError, match="neither a collection nor an alias"):
        reindex_collection(
            client,
            source_collection="nope",
            target_collection="t",
            alias="a",
            text_field="text",
            encoder=HashEncoder(),
        )


# --- the steps of reindex_collection, one by one ---------------------------------------------


def test_reindex_steps_plan_copy_verify_switch_each_alone():
    from queryshift.reindex import copy_points, plan_reindex, switch_alias, verify_copy

    client = QdrantClient(":memory:")
    _fill(client, n=40)
    encoder = HashEncoder()
    plan = plan_reindex(
        client,
        source_collection="docs_v1",
        target_collection="docs_v2",
        alias="docs",
        encoder=encoder,
        text_field="text",
        batch_size=16,
    )
    # planning writes nothing: no target, no alias; the probe embedded one text
    assert not client.collection_exists("docs_v2") and client.get_aliases().aliases == []
    assert (plan.source, plan.dim, plan.source_count, plan.target_exists) == ("docs_v1", OLD_DIM, 40, False)
    assert encoder.calls == [1]

    client.create_collection(
        "docs_v2",
        vectors_config=models.VectorParams(size=OLD_DIM, distance=models.Distance.COSINE),
        metadata={METADATA_KEY: plan.marker},
    )
    client.upsert("docs_v2", [models.PointStruct(id=0, vector=encoder.vector(_text(0)).tolist())])
    with pytest.raises(ReindexError, match="39 source points missing"):
        verify_copy(client, "docs_v1", "docs_v2", batch_size=16)

    # an interrupted run left the target with one point: the copy resumes, embedding only the rest
    resumed = copy_points(client, dataclasses.replace(plan, target_exists=True), encoder)
    assert (resumed.written, resumed.skipped) == (39, 1)
    verify_copy(client, "docs_v1", "docs_v2", batch_size=16)

    switch_alias(client, "docs", "docs_v2", previous=None)
    switch_alias(client, "docs", "docs_v1", previous="docs_v2")  # the roll back
    assert [(a.alias_name, a.collection_name) for a in client.get_aliases().aliases] == [("docs", "docs_v1")]
