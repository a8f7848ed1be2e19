"""Training data read from a Qdrant collection, and the end-to-end path: collection → adapter → wrapper."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from queryshift.errors import DataFormatError, DimensionMismatchError, DistanceMismatchError
from queryshift.integrations.qdrant.training_data import (
    collection_distance,
    load_training_data_from_qdrant,
    mine_hard_negatives_from_qdrant,
    parse_point_id,
)

from ...conftest import FINETUNE_DATA  # noqa: TID252

DIM = 8
UUID_A = "d193a4ce-e62b-415c-a2e4-91dbc65ba284"
DATA = FINETUNE_DATA / "val_dataset.json"


class KeywordEncoder:
    """Embeds a query as the vector of the point it names ("about 3" → point 3's direction) plus noise."""

    model_id = "keyword-toy"

    def __init__(self, vectors: np.ndarray, dim: int = DIM) -> None:
        self.vectors, self.dim = vectors, dim

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        out = []
        for text in texts:
            n = int(text.split()[-1].strip("?"))
            rng = np.random.default_rng(n)
            out.append(self.vectors[n % len(self.vectors)][: self.dim] + 0.3 * rng.normal(size=self.dim))
        return np.asarray(out, dtype=np.float32)

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        raise AssertionError("documents must be read from Qdrant, never re-embedded")


@pytest.fixture
def collection() -> tuple[QdrantClient, np.ndarray]:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(40, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    client = QdrantClient(":memory:")
    client.create_collection(
        "docs", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    )
    points = [
        models.PointStruct(id=i, vector=vectors[i].tolist(), payload={"text": f"doc {i}"}) for i in range(39)
    ]
    points.append(models.PointStruct(id=UUID_A, vector=vectors[39].tolist(), payload={"text": "uuid doc"}))
    client.upsert("docs", points)
    return client, vectors


def write_pairs(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_pairs_build_an_embedded_dataset_from_stored_vectors(collection, tmp_path: Path) -> None:
    client, vectors = collection
    pairs = write_pairs(
        tmp_path / "pairs.jsonl",
        [
            {"query": "about 3", "point_id": 3},
            {"query": "about 3", "point_id": "5"},  # same question: merged, digit string = integer id
            {"query": "about 7", "point_ids": [7, UUID_A.upper()]},
            {"query": "about 9", "point_id": 9, "id": "named"},
        ],
    )
    data = load_training_data_from_qdrant(
        client, "docs", pairs, encoder=KeywordEncoder(vectors), text_field="text"
    )
    assert data.dataset.qrels == {"q1": {"3", "5"}, "q3": {"7", UUID_A}, "named": {"9"}}
    assert data.query_ids == ["named", "q1", "q3"]
    assert len(data.document_ids) == 40 and data.document_ids == sorted(data.document_ids)
    stored = {str(i): vectors[i] for i in range(39)} | {UUID_A: vectors[39]}
    for doc_id, vector in zip(data.document_ids, data.document_vectors, strict=True):
        np.testing.assert_allclose(vector, stored[doc_id], atol=1e-6)
    assert data.dataset.documents["7"] == "doc 7" and data.dataset.documents[UUID_A] == "uuid doc"
    assert data.model_id == "keyword-toy" and data.query_vectors.shape == (3, DIM)


def test_text_is_read_through_a_dotted_path_into_json_strings(tmp_path: Path) -> None:
    """LlamaIndex keeps the node text inside ``_node_content``, a JSON string."""
    client = QdrantClient(":memory:")
    client.create_collection(
        "li", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    )
    node = {"text": "The chunk text of a LlamaIndex node.", "metadata": {}}
    client.upsert(
        "li",
        [
            models.PointStruct(
                id=i, vector=np.eye(DIM)[i].tolist(), payload={"_node_content": json.dumps(node)}
            )
            for i in range(4)
        ],
    )
    pairs = write_pairs(tmp_path / "pairs.jsonl", [{"query": "about 1", "point_id": 1}])
    data = load_training_data_from_qdrant(
        client, "li", pairs, encoder=KeywordEncoder(np.eye(DIM)), text_field="_node_content.text"
    )
    assert data.dataset.documents == {str(i): node["text"] for i in range(4)}


def test_missing_point_ids_are_listed_with_their_lines(collection, tmp_path: Path) -> None:
    client, vectors = collection
    pairs = write_pairs(
        tmp_path / "pairs.jsonl",
        [
            {"query": "about 1", "point_id": 1},
            {"query": "about 2", "point_ids": [2, 404]},
            {"query": "about 4", "point_id": 405},
        ],
    )
    with pytest.raises(
        DataFormatError,
        match=r"pairs.jsonl: 2 relevant point ids are not in collection 'docs': 404 \(line 2\), 405 \(line 3\)",
    ):
        load_training_data_from_qdrant(client, "docs", pairs, encoder=KeywordEncoder(vectors))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"query": "about 1"}, "line 1, field 'point_id': missing field"),
        ({"query": "about 1", "point_id": "not-a-uuid"}, "line 1, field 'point_id': a point id must be"),
        ({"query": "about 1", "point_id": -3}, "field 'point_id'"),
        ({"query": "", "point_id": 1}, "field 'query'"),
        ({"query": "about 1", "point_ids": []}, "field 'point_ids'"),
    ],
)
def test_malformed_pair_lines_name_file_line_and_field(
    collection, tmp_path: Path, row: dict, message: str
) -> None:
    client, vectors = collection
    pairs = write_pairs(tmp_path / "pairs.jsonl", [row])
    with pytest.raises(DataFormatError, match=message):
        load_training_data_from_qdrant(client, "docs", pairs, encoder=KeywordEncoder(vectors))


def test_named_vector_corpus_limits_and_dimension_check(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    text = rng.normal(size=(30, DIM)).astype(np.float32)
    client = QdrantClient(":memory:")
    client.create_collection(
        "named",
        vectors_config={
            "text": models.VectorParams(size=DIM, distance=models.Distance.DOT),
            "other": models.VectorParams(size=3, distance=models.Distance.COSINE),
        },
    )
    points = [
        models.PointStruct(id=i, vector={"text": text[i].tolist()}, payload={"part": i % 2})
        for i in range(25)
    ]
    points += [
        models.PointStruct(id=i, vector={"other": [1.0, 0.0, 0.0]}) for i in range(25, 30)
    ]  # no 'text'
    client.upsert("named", points)
    pairs = write_pairs(
        tmp_path / "p.jsonl", [{"query": "about 3", "point_id": 3}, {"query": "about 24", "point_id": 24}]
    )
    encoder = KeywordEncoder(text)
    data = load_training_data_from_qdrant(client, "named", pairs, encoder=encoder, using="text")
    assert len(data.document_ids) == 25  # points without the 'text' vector are left out
    np.testing.assert_allclose(data.document_vectors[data.document_ids.index("24")], text[24], atol=1e-6)
    assert collection_distance(client, "named", using="text") == "dot"

    part = models.Filter(must=[models.FieldCondition(key="part", match=models.MatchValue(value=0))])
    sampled = load_training_data_from_qdrant(
        client,
        "named",
        pairs,
        encoder=encoder,
        using="text",
        corpus_filter=part,
        max_documents=5,
        batch_size=2,
    )
    assert set(sampled.document_ids) >= {"3", "24"}  # relevant points are always included
    assert len(sampled.document_ids) == 7 and all(int(d) % 2 == 0 for d in set(sampled.document_ids) - {"3"})

    with pytest.raises(DataFormatError, match="have no vector"):
        load_training_data_from_qdrant(
            client,
            "named",
            write_pairs(tmp_path / "q.jsonl", [{"query": "about 26", "point_id": 26}]),
            encoder=encoder,
            using="text",
        )
    other = write_pairs(tmp_path / "o.jsonl", [{"query": "about 26", "point_id": 26}])
    with pytest.raises(DimensionMismatchError, match="dim=3 but encoder 'keyword-toy'"):
        load_training_data_from_qdrant(client, "named", other, encoder=encoder, using="other")
    with pytest.raises(ValueError, match="no unnamed vector"):
        load_training_data_from_qdrant(client, "named", pairs, encoder=encoder)


def test_collection_distance_and_point_ids() -> None:
    client = QdrantClient(":memory:")
    client.create_collection(
        "m", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.MANHATTAN)
    )
    client.create_collection(
        "e", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.EUCLID)
    )
    assert collection_distance(client, "e") == "euclid"
    with pytest.raises(DistanceMismatchError, match="manhattan"):
        collection_distance(client, "m")
    assert parse_point_id(UUID_A.upper()) == UUID_A and parse_point_id(12) == 12
    for bad in (True, -1, "x", 1.5):
        with pytest.raises(ValueError, match="unsigned integer or a UUID"):
            parse_point_id(bad)


def test_hard_negatives_are_mined_with_qdrant_searches(collection, tmp_path: Path) -> None:
    client, vectors = collection
    pairs = write_pairs(tmp_path / "p.jsonl", [{"query": f"about {i}", "point_id": i} for i in (1, 2, 3, 4)])
    data = load_training_data_from_qdrant(
        client, "docs", pairs, encoder=KeywordEncoder(vectors), max_documents=4
    )
    assert data.document_ids == ["0", "1", "2", "3", "4"]  # 4 scrolled (0..3) plus relevant point 4
    mined = mine_hard_negatives_from_qdrant(client, "docs", data, count=3)
    assert data.dataset.negatives == {}  # input unchanged
    for i, qid in enumerate(mined.query_ids):
        found = client.query_points("docs", query=mined.query_vectors[i].tolist(), limit=4).points
        expected = [str(p.id) for p in found if str(p.id) not in mined.dataset.qrels[qid]][:3]
        assert mined.dataset.negatives[qid] == expected
    extra = set(mined.document_ids) - set(data.document_ids)
    assert extra and extra <= {d for n in mined.dataset.negatives.values() for d in n}
    stored = {
        p.id: p.vector
        for p in client.retrieve("docs", ids=[parse_point_id(d) for d in extra], with_vectors=True)
    }
    for d in extra:
        np.testing.assert_allclose(
            mined.document_vectors[mined.document_ids.index(d)], stored[parse_point_id(d)], atol=1e-6
        )


# -- end to end: the Uber 10-K chunks in a local Qdrant collection ---------------------------------


def _ndcg_at_10(responses, qrels: list[set[str]]) -> np.ndarray:
    from queryshift.evaluation import score_rankings

    rankings = [[str(p.id) for p in r.points] for r in responses]
    return score_rankings(rankings, qrels, metrics=["ndcg@10"])["ndcg@10"]


@pytest.mark.slow
def test_end_to_end_train_from_collection_and_query_through_wrapper(tmp_path: Path, monkeypatch) -> None:
    from queryshift.data import load_llamaindex_json
    from queryshift.embeddings import SentenceTransformerEncoder
    from queryshift.integrations.qdrant import AdaptedQdrantClient
    from queryshift.splits import split_by_query
    from queryshift.training import TrainingConfig, train_adapter

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dataset = load_llamaindex_json(DATA)
    encoder = SentenceTransformerEncoder()
    doc_ids = sorted(dataset.documents)
    doc_vectors = encoder.encode_documents([dataset.documents[d] for d in doc_ids])  # (395, 384), cached

    client = QdrantClient(":memory:")  # path= is covered by the fast tests; its upsert costs ~8 s here
    client.create_collection(
        "uber", vectors_config=models.VectorParams(size=384, distance=models.Distance.COSINE)
    )
    client.upsert(
        "uber",
        [
            models.PointStruct(id=d, vector=v.tolist(), payload={"text": dataset.documents[d]})
            for d, v in zip(doc_ids, doc_vectors, strict=True)
        ],
    )
    split = split_by_query(dataset, test_fraction=0.3, seed=0)
    pairs = tmp_path / "pairs.jsonl"
    write_pairs(
        pairs,
        [{"query": dataset.queries[q], "point_ids": sorted(dataset.qrels[q]), "id": q} for q in split.train],
    )

    data = load_training_data_from_qdrant(client, "uber", pairs, encoder=encoder, text_field="text")
    assert data.document_ids == doc_ids and len(data.query_ids) == len(split.train)
    np.testing.assert_allclose(data.document_vectors, doc_vectors, atol=1e-5)  # read back, not re-embedded
    distance = collection_distance(client, "uber")

    test_vectors = encoder.encode_queries([dataset.queries[q] for q in split.test])  # (n_test, 384)
    test_qrels = [dataset.qrels[q] for q in split.test]

    def run(c, vectors) -> list[models.QueryResponse]:
        requests = [models.QueryRequest(query=v.tolist(), limit=10) for v in vectors]
        return c.query_batch_points("uber", requests)

    base = _ndcg_at_10(run(client, test_vectors), test_qrels)

    # The validated recipe (may choose the identity): never worse on held-out questions. Fewer
    # epochs than the default 30 keep the test short; the recipe picks epoch 3 here either way.
    default = train_adapter(data, TrainingConfig(distance=distance, epochs=10, seed=0)).adapter
    wrapped = AdaptedQdrantClient(client, adapters={"uber": default})
    adapted = _ndcg_at_10(run(wrapped, test_vectors), test_qrels)
    assert adapted.mean() >= base.mean()

    # A surely non-identity adapter: the wrapper returns exactly what adapting by hand returns.
    forced = train_adapter(
        data, TrainingConfig(distance=distance, validation="none", epochs=5, seed=0)
    ).adapter
    assert not np.allclose(forced.matrix(), np.eye(384), atol=1e-3)
    wrapped.set_adapter("uber", forced)
    through_wrapper = run(wrapped, test_vectors)
    manual = run(client, forced.apply(test_vectors))
    assert [[p.id for p in r.points] for r in through_wrapper] == [[p.id for p in r.points] for r in manual]
    for got, want in zip(through_wrapper, manual, strict=True):
        np.testing.assert_allclose([p.score for p in got.points], [p.score for p in want.points], atol=1e-6)
    forced_ndcg = _ndcg_at_10(through_wrapper, test_qrels)
    print(  # noqa: T201 - reported with `pytest -s`
        f"uber held-out nDCG@10 ({len(split.test)} queries): base={base.mean():.4f} "
        f"default_recipe={adapted.mean():.4f} forced_5_epochs={forced_ndcg.mean():.4f}"
    )
    client.close()
