"""Cross-model adapters served through every wrapper: queries from a dim-8 model, an index of dim 12.

Each wrapper must return what the store returns for ``adapter.apply(query)`` by hand, refuse a
collection of another dimension than the adapter's output, and refuse query vectors of another
dimension than its input, each with a message naming the side that is wrong.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

import numpy as np
import pytest
import qdrant_edge as qe
from llama_index.core import VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import QueryBundle, TextNode
from qdrant_client import QdrantClient, models

from queryshift.adapters import AdapterConfig, LinearAdapter
from queryshift.errors import DimensionMismatchError
from queryshift.integrations.llamaindex import AdaptedEmbedding, AdaptedRetriever
from queryshift.integrations.qdrant import AdaptedQdrantClient
from queryshift.integrations.qdrant.edge import AdaptedEdgeShard

D_NEW, D_OLD, N_DOCS = 8, 12, 40


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def cross() -> LinearAdapter:
    rng = np.random.default_rng(3)
    config = AdapterConfig(kind="linear", dim=D_OLD, input_dim=D_NEW, base_model="new", index_model="old")
    return LinearAdapter(config, weight=rng.normal(size=(D_OLD, D_NEW)).astype(np.float32))


@pytest.fixture(scope="module")
def docs() -> np.ndarray:
    return _unit(np.random.default_rng(4).normal(size=(N_DOCS, D_OLD)))  # (n_docs, old dim)


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return _unit(np.random.default_rng(5).normal(size=(6, D_NEW)))  # (6, new dim)


# -- Qdrant ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(docs: np.ndarray) -> QdrantClient:
    c = QdrantClient(":memory:")
    for name, size in (("old", D_OLD), ("small", D_NEW)):
        c.create_collection(
            name, vectors_config=models.VectorParams(size=size, distance=models.Distance.COSINE)
        )
        points = [models.PointStruct(id=i, vector=docs[i, :size].tolist()) for i in range(N_DOCS)]
        c.upsert(name, points)
    yield c
    c.close()


def test_qdrant_client_serves_new_model_queries_on_the_old_index(client, cross, queries):
    adapted = AdaptedQdrantClient(client, adapters={"old": cross})
    for q in queries:
        got = [p.id for p in adapted.query_points("old", query=q.tolist(), limit=5).points]
        assert got == [
            p.id for p in client.query_points("old", query=cross.apply(q).tolist(), limit=5).points
        ]


def test_qdrant_client_checks_each_side(client, cross, queries):
    adapted = AdaptedQdrantClient(client, adapters={"old": cross, "small": cross})
    with pytest.raises(
        DimensionMismatchError, match=r"'small'.*dim=8 but the cross-model adapter maps .*dim=12"
    ):
        adapted.query_points("small", query=queries[0].tolist())
    with pytest.raises(
        DimensionMismatchError, match=r"got query vectors with dim=12; .*embed the queries with 'new'"
    ):
        adapted.query_points("old", query=np.ones(D_OLD).tolist())


# -- qdrant-edge -------------------------------------------------------------------------------


def _shard(tmp_path, docs: np.ndarray) -> tuple[qe.EdgeShard, qe.EdgeConfig]:
    config = qe.EdgeConfig(
        vectors={
            "old": qe.EdgeVectorParams(size=D_OLD, distance=qe.Distance.Cosine),
            "small": qe.EdgeVectorParams(size=D_NEW, distance=qe.Distance.Cosine),
        }
    )
    shard = qe.EdgeShard.create(str(tmp_path), config)
    points = [
        qe.Point(i, {"old": docs[i].tolist(), "small": docs[i, :D_NEW].tolist()}) for i in range(N_DOCS)
    ]
    shard.update(qe.UpdateOperation.upsert_points(points))
    return shard, config


def test_edge_shard_serves_and_checks_each_side(tmp_path, docs, cross, queries):
    shard, config = _shard(tmp_path, docs)
    adapted = AdaptedEdgeShard(shard, {"old": cross}, config=config)
    for q in queries:
        got = adapted.query(limit=5, query=qe.Query.Nearest(q.tolist(), using="old"))
        want = shard.query(
            qe.QueryRequest(limit=5, query=qe.Query.Nearest(cross.apply(q).tolist(), using="old"))
        )
        assert [p.id for p in got] == [p.id for p in want]
    with pytest.raises(DimensionMismatchError, match="embed the queries with 'new'"):
        adapted.query(limit=5, query=qe.Query.Nearest(np.ones(D_OLD).tolist(), using="old"))
    with pytest.raises(
        DimensionMismatchError, match=r"vector 'small' stores vectors of dim=8 but the cross-model"
    ):
        AdaptedEdgeShard(shard, {"small": cross}, config=config)
    adapted.close()


# -- LlamaIndex --------------------------------------------------------------------------------


class _Hashed(BaseEmbedding):
    """Deterministic unit vectors of ``DIM`` from a hash of the text."""

    DIM: ClassVar[int] = D_NEW

    @classmethod
    def class_name(cls) -> str:
        return f"Hashed{cls.DIM}"

    @classmethod
    def vector(cls, text: str) -> list[float]:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        return _unit(np.random.default_rng(seed).normal(size=cls.DIM)).tolist()

    def _get_query_embedding(self, query: str) -> list[float]:
        return self.vector(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self.vector(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self.vector(text)


class NewModel(_Hashed):
    DIM: ClassVar[int] = D_NEW


class OldModel(_Hashed):
    DIM: ClassVar[int] = D_OLD


def _index(docs: np.ndarray) -> VectorStoreIndex:
    nodes = [TextNode(text=f"doc {i}", id_=f"n{i}", embedding=docs[i].tolist()) for i in range(N_DOCS)]
    return VectorStoreIndex(nodes, embed_model=OldModel())


def test_llamaindex_retriever_serves_and_checks_each_side(docs, cross):
    index = _index(docs)
    retriever = AdaptedRetriever(index.as_retriever(similarity_top_k=5), cross, embed_model=NewModel())
    for text in ("when is the meeting", "refund policy", "q3"):
        want = index.as_retriever(similarity_top_k=5).retrieve(
            QueryBundle(query_str=text, embedding=cross.apply(np.array(NewModel.vector(text))).tolist())
        )
        assert [n.node.node_id for n in retriever.retrieve(text)] == [n.node.node_id for n in want]
    with pytest.raises(TypeError, match="pass embed_model= the query model \\(new\\)"):
        AdaptedRetriever(index.as_retriever(), cross)
    with pytest.raises(DimensionMismatchError, match="embed the queries with 'new'"):
        AdaptedRetriever(index.as_retriever(), cross, embed_model=OldModel()).retrieve("q")
    with pytest.raises(
        DimensionMismatchError,
        match="the index stores vectors of dim=8 but the adapter maps queries into dim=12",
    ):
        AdaptedRetriever(_index(docs[:, :D_NEW]).as_retriever(), cross, embed_model=NewModel())


def test_llamaindex_embedding_embeds_documents_with_the_index_model(cross):
    with pytest.raises(ValueError, match="pass document_embed_model= old"):
        AdaptedEmbedding(NewModel(), cross)
    model = AdaptedEmbedding(NewModel(), cross, document_embed_model=OldModel())
    np.testing.assert_allclose(
        model.get_query_embedding("q"), cross.apply(np.array(NewModel.vector("q"))), atol=1e-6
    )
    assert model.get_text_embedding("d") == OldModel.vector("d")
    assert model.get_text_embedding_batch(["a", "b"]) == [OldModel.vector("a"), OldModel.vector("b")]
    wrong = AdaptedEmbedding(NewModel(), cross, document_embed_model=NewModel())
    with pytest.raises(
        DimensionMismatchError,
        match="document_embed_model returns dim=8 vectors, but the adapter maps queries into dim=12",
    ):
        wrong.get_text_embedding("d")
    with pytest.raises(DimensionMismatchError, match="embed the queries with 'new'"):
        AdaptedEmbedding(OldModel(), cross, document_embed_model=OldModel()).get_query_embedding("q")


# -- the embeddings server ---------------------------------------------------------------------


class _NewEncoder:
    model_id = "new"

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return np.array([NewModel.vector(t) for t in texts], np.float32)  # (n, new dim)

    encode_documents = encode_queries


def test_server_adapts_queries_and_refuses_documents(cross):
    from starlette.testclient import TestClient

    from queryshift.serve import create_app

    with TestClient(create_app(_NewEncoder(), cross)) as http:
        reply = http.post("/v1/embeddings", json={"input": ["q"], "model": "new"})
        assert reply.status_code == 200
        np.testing.assert_allclose(
            reply.json()["data"][0]["embedding"], cross.apply(np.array(NewModel.vector("q"))), atol=1e-6
        )
        refused = http.post("/v1/embeddings", json={"input": ["d"], "model": "new", "input_type": "passage"})
        assert refused.status_code == 400
        assert "documents must be embedded by that model" in refused.json()["error"]["message"]
