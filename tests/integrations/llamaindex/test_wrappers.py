"""LlamaIndex wrappers: AdaptedEmbedding, AdaptedRetriever, SentenceTransformerEmbedding.

Unit tests use a deterministic fake ``BaseEmbedding`` (dim=8) and LlamaIndex's in-memory
vector store; the slow end-to-end tests run the real model over the Uber chunks in a local
Qdrant through ``QdrantVectorStore``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import QueryBundle, TextNode

from queryshift.adapters import AdapterConfig, LinearAdapter, save_adapter
from queryshift.errors import DimensionMismatchError
from queryshift.integrations.llamaindex import (
    AdaptedEmbedding,
    AdaptedRetriever,
    SentenceTransformerEmbedding,
    export_llamaindex_adapter,
)

REPO = Path(__file__).resolve().parents[3]
DIM = 8


class FakeEmbedding(BaseEmbedding):
    """Deterministic vectors from a hash of the text; records every call it receives."""

    _calls: list = PrivateAttr(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "FakeEmbedding"

    @staticmethod
    def vector(text: str) -> list[float]:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).normal(size=DIM)
        return (v / np.linalg.norm(v)).tolist()

    @property
    def calls(self) -> list:
        return self._calls

    def _get_query_embedding(self, query: str) -> list[float]:
        self._calls.append(("query", query))
        return self.vector(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        self._calls.append(("aquery", query))
        return self.vector(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        self._calls.append(("text", text))
        return self.vector(text)

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        self._calls.append(("texts", list(texts)))
        return [self.vector(t) for t in texts]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        self._calls.append(("atexts", list(texts)))
        return [self.vector(t) for t in texts]


def _adapter(rng, *, normalize: bool = True, dim: int = DIM) -> LinearAdapter:
    weight = np.eye(dim) + 0.5 * rng.normal(size=(dim, dim))
    return LinearAdapter(
        AdapterConfig(dim=dim, normalize=normalize), weight=weight, bias=0.1 * rng.normal(size=dim)
    )


# --- AdaptedEmbedding --------------------------------------------------------------------------


@pytest.mark.parametrize("normalize", [True, False])
def test_query_embeddings_are_adapted(normalize, rng):
    adapter = _adapter(rng, normalize=normalize)
    model = AdaptedEmbedding(FakeEmbedding(), adapter)
    base = np.array(FakeEmbedding.vector("what is uber?"), np.float32)
    expected = base @ adapter.weight.T + adapter.bias
    if normalize:
        expected /= np.linalg.norm(expected)

    single = model.get_query_embedding("what is uber?")
    assert isinstance(single, list) and len(single) == DIM
    np.testing.assert_allclose(single, expected, atol=1e-6)
    assert not np.allclose(single, base, atol=1e-3)
    np.testing.assert_allclose(asyncio.run(model.aget_query_embedding("what is uber?")), expected, atol=1e-6)
    assert bool(np.isclose(np.linalg.norm(single), 1.0)) is normalize


def test_batch_and_aggregated_query_paths_are_adapted(rng):
    adapter = _adapter(rng)
    model = AdaptedEmbedding(FakeEmbedding(), adapter)
    queries = ["a", "b", "c"]
    expected = adapter.apply(np.array([FakeEmbedding.vector(q) for q in queries], np.float32))  # (3, dim)

    np.testing.assert_allclose(model.get_query_embedding_batch(queries), expected, atol=1e-6)
    assert model.get_query_embedding_batch([]) == []
    np.testing.assert_allclose(model.get_agg_embedding_from_queries(queries), expected.mean(0), atol=1e-6)
    agg = asyncio.run(model.aget_agg_embedding_from_queries(queries))
    np.testing.assert_allclose(agg, expected.mean(0), atol=1e-6)


def test_text_embeddings_pass_through_in_the_base_models_batches(rng):
    base = FakeEmbedding(embed_batch_size=4)
    model = AdaptedEmbedding(base, _adapter(rng))
    texts = [f"chunk {i}" for i in range(10)]

    out = model.get_text_embedding_batch(texts)

    assert model.embed_batch_size == 4
    assert out == [FakeEmbedding.vector(t) for t in texts]  # bit-identical, never adapted
    assert [len(batch) for kind, batch in base.calls if kind == "texts"] == [4, 4, 2]
    assert not any(kind == "text" for kind, _ in base.calls)  # no one-by-one fallback
    assert model.get_text_embedding("chunk 3") == FakeEmbedding.vector("chunk 3")
    base.calls.clear()
    assert asyncio.run(model.aget_text_embedding_batch(texts)) == out
    assert [len(batch) for kind, batch in base.calls if kind == "atexts"] == [4, 4, 2]


def test_adapted_embedding_checks_its_inputs(rng, tmp_path):
    model = AdaptedEmbedding(FakeEmbedding(), _adapter(rng))
    assert model.class_name() == "QueryshiftAdaptedEmbedding"
    assert model.model_name == "queryshift:unknown"
    with pytest.raises(ValueError, match="adapt queries twice"):
        AdaptedEmbedding(model, _adapter(rng))
    with pytest.raises(TypeError, match="BaseEmbedding"):
        AdaptedEmbedding("all-MiniLM-L6-v2", _adapter(rng))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="queryshift adapter or a folder path"):
        AdaptedEmbedding(FakeEmbedding(), np.eye(DIM))  # type: ignore[arg-type]
    wrong_dim = AdaptedEmbedding(FakeEmbedding(), _adapter(rng, dim=4))
    with pytest.raises(DimensionMismatchError, match="adapter expects dim=4"):
        wrong_dim.get_query_embedding("q")


def test_adapter_can_be_a_folder_in_either_layout(rng, tmp_path):
    adapter = _adapter(rng)
    save_adapter(adapter, tmp_path / "queryshift")
    export_llamaindex_adapter(adapter, tmp_path / "llamaindex")
    expected = adapter.apply(np.array(FakeEmbedding.vector("q"), np.float32))
    for folder in ("queryshift", "llamaindex"):
        model = AdaptedEmbedding(FakeEmbedding(), tmp_path / folder)
        np.testing.assert_allclose(model.get_query_embedding("q"), expected, atol=1e-6)
        retriever = AdaptedRetriever(_index(FakeEmbedding()).as_retriever(), str(tmp_path / folder))
        np.testing.assert_allclose(
            retriever.adapter.apply(np.eye(DIM)), adapter.apply(np.eye(DIM)), atol=1e-6
        )


# --- AdaptedRetriever over the in-memory store --------------------------------------------------

TEXTS = [f"document number {i} about topic {i % 7}" for i in range(40)]


def _index(embed_model: BaseEmbedding) -> VectorStoreIndex:
    nodes = [TextNode(id_=f"n{i:02d}", text=t) for i, t in enumerate(TEXTS)]
    return VectorStoreIndex(nodes, embed_model=embed_model)


def _brute_force(query_vector: np.ndarray, k: int) -> list[str]:
    docs = np.array([FakeEmbedding.vector(t) for t in TEXTS])  # (n_docs, dim), unit norm
    q = query_vector / np.linalg.norm(query_vector)
    return [f"n{i:02d}" for i in np.argsort(-(docs @ q), kind="stable")[:k]]


def test_retriever_searches_with_the_adapted_vector(rng):
    adapter = _adapter(rng)
    index = _index(FakeEmbedding())
    stored = {i: list(index.vector_store.get(i)) for i in index.index_struct.nodes_dict.values()}
    retriever = AdaptedRetriever(index.as_retriever(similarity_top_k=5), adapter)
    queries = ["which topic is 3?", "tell me about number 12", "anything"]
    changed = 0
    for query in queries:
        base = np.array(FakeEmbedding.vector(query), np.float32)
        expected = _brute_force(adapter.apply(base), 5)
        assert [n.node.node_id for n in retriever.retrieve(query)] == expected
        assert [n.node.node_id for n in asyncio.run(retriever.aretrieve(query))] == expected
        changed += expected != _brute_force(base, 5)
    assert changed > 0  # the adapter really moves results
    # documents in the store are untouched
    assert {i: list(index.vector_store.get(i)) for i in stored} == stored


def test_retriever_adapts_a_precomputed_embedding_and_keeps_the_callers_bundle(rng):
    adapter = _adapter(rng)
    embed = FakeEmbedding()
    retriever = AdaptedRetriever(_index(embed).as_retriever(similarity_top_k=3), adapter)
    base = FakeEmbedding.vector("some other text")
    bundle = QueryBundle(query_str="ignored for embedding", embedding=list(base))
    before = dataclasses.asdict(bundle)
    embed.calls.clear()

    nodes = retriever.retrieve(bundle)

    assert [n.node.node_id for n in nodes] == _brute_force(adapter.apply(np.array(base, np.float32)), 3)
    assert dataclasses.asdict(bundle) == before  # not mutated
    assert embed.calls == []  # nothing re-embedded


def test_retriever_averages_adapted_custom_embedding_strings(rng):
    adapter = _adapter(rng)
    retriever = AdaptedRetriever(_index(FakeEmbedding()).as_retriever(similarity_top_k=4), adapter)
    strings = ["first phrasing", "second phrasing"]
    adapted = adapter.apply(np.array([FakeEmbedding.vector(s) for s in strings], np.float32))
    bundle = QueryBundle(query_str="q", custom_embedding_strs=strings)
    assert [n.node.node_id for n in retriever.retrieve(bundle)] == _brute_force(adapted.mean(0), 4)


def test_adapted_retriever_equals_adapted_embedding_as_query_model(rng):
    adapter = _adapter(rng)
    embed = FakeEmbedding()
    index = _index(embed)
    wrapped = AdaptedRetriever(index.as_retriever(similarity_top_k=6), adapter)
    via_model = index.as_retriever(similarity_top_k=6, embed_model=AdaptedEmbedding(embed, adapter))
    for query in ("alpha", "topic 5", "number 30"):
        assert [n.node.node_id for n in wrapped.retrieve(query)] == [
            n.node.node_id for n in via_model.retrieve(query)
        ]


def test_retriever_refuses_what_it_cannot_adapt(rng):
    embed = FakeEmbedding()
    index = _index(embed)
    with pytest.raises(ValueError, match="adapted\\s+twice"):
        AdaptedRetriever(
            index.as_retriever(embed_model=AdaptedEmbedding(embed, _adapter(rng))), _adapter(rng)
        )
    with pytest.raises(ValueError, match="mode 'text_search'"):
        AdaptedRetriever(index.as_retriever(vector_store_query_mode="text_search"), _adapter(rng))
    retriever = AdaptedRetriever(index.as_retriever(), _adapter(rng))
    with pytest.raises(ValueError, match="neither text to embed"):
        retriever.retrieve(QueryBundle(query_str=""))

    class Delegating(BaseRetriever):  # a retriever that carries no embed model
        def _retrieve(self, query_bundle: QueryBundle) -> list:
            return index.as_retriever().retrieve(query_bundle)

    with pytest.raises(TypeError, match="pass embed_model="):
        AdaptedRetriever(Delegating(), _adapter(rng))
    assert AdaptedRetriever(Delegating(), _adapter(rng), embed_model=embed).embed_model is embed


def test_import_queryshift_does_not_import_llama_index():
    code = (
        "import sys, queryshift, queryshift.integrations, queryshift.adapters.two_layer; "
        "bad = [m for m in sys.modules if m.split('.')[0] == 'llama_index']; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# --- real model, Uber chunks, local Qdrant ----------------------------------------------------


@pytest.mark.slow
def test_sentence_transformer_embedding_uses_the_encoder_and_its_cache(encoder, uber):
    model = SentenceTransformerEmbedding.from_encoder(encoder)
    assert model.class_name() == "QueryshiftSentenceTransformerEmbedding"
    assert model.encoder is encoder and model.embed_batch_size == encoder.batch_size
    qids, dids = uber.query_ids[:3], uber.document_ids[:5]
    queries = [uber.dataset.queries[q] for q in qids]
    documents = [uber.dataset.documents[d] for d in dids]

    np.testing.assert_allclose(model.get_query_embedding(queries[0]), uber.query_vectors[0], atol=1e-6)
    np.testing.assert_allclose(model.get_query_embedding_batch(queries), uber.query_vectors[:3], atol=1e-6)
    np.testing.assert_allclose(
        model.get_text_embedding_batch(documents), uber.document_vectors[:5], atol=1e-6
    )
    np.testing.assert_allclose(
        asyncio.run(model.aget_query_embedding(queries[1])), uber.query_vectors[1], atol=1e-6
    )
    fresh = SentenceTransformerEmbedding()  # same default model, same shared cache
    assert fresh.encoder.model_id == encoder.model_id
    np.testing.assert_allclose(fresh.get_text_embedding(documents[0]), uber.document_vectors[0], atol=1e-6)


@pytest.fixture(scope="module")
def uber_qdrant_path(tmp_path_factory, encoder, uber) -> Path:
    """A local Qdrant folder holding the Uber chunks, indexed by LlamaIndex with the cached model."""
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    path = tmp_path_factory.mktemp("qdrant")
    client = QdrantClient(path=str(path))
    nodes = [TextNode(id_=d, text=uber.dataset.documents[d]) for d in uber.document_ids]
    VectorStoreIndex(
        nodes,
        storage_context=StorageContext.from_defaults(
            vector_store=QdrantVectorStore(collection_name="uber", client=client)
        ),
        embed_model=SentenceTransformerEmbedding.from_encoder(encoder),
    )
    client.close()
    return path


class _OpenIndex:
    """Open the Qdrant folder, and check on exit that the stored collection is byte-identical.

    Local-mode qdrant-client re-normalises the stored vectors in place on every cosine search
    (``qdrant_client/local/distances.py``: ``vectors /= norm``), which moves some of them by
    one float32 ulp even for plain, unwrapped searches. So the in-memory vectors are compared
    within 1e-7, and byte identity is checked on what the collection holds: the vectors read
    back by a fresh client from the folder, before and after all the retrieval. Any write
    (upsert, vector update) would show there.
    """

    def __init__(self, path: Path, encoder) -> None:
        self.path, self.encoder = path, encoder

    def __enter__(self):
        from llama_index.vector_stores.qdrant import QdrantVectorStore
        from qdrant_client import QdrantClient

        self.client = QdrantClient(path=str(self.path))
        self.before = _stored_vectors(self.client)
        store = QdrantVectorStore(collection_name="uber", client=self.client)
        embed_model = SentenceTransformerEmbedding.from_encoder(self.encoder)
        return self.client, VectorStoreIndex.from_vector_store(store, embed_model=embed_model)

    def __exit__(self, *exc_info) -> None:
        from qdrant_client import QdrantClient

        in_memory = _stored_vectors(self.client)
        self.client.close()
        if exc_info[0] is not None:
            return
        assert in_memory.keys() == self.before.keys()
        drift = max(np.abs(_floats(in_memory[k]) - _floats(self.before[k])).max() for k in self.before)
        assert drift <= 1e-7
        reopened = QdrantClient(path=str(self.path))
        try:
            assert _stored_vectors(reopened) == self.before  # byte-identical document vectors
        finally:
            reopened.close()


def _floats(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, np.float32)


def _stored_vectors(client) -> dict[str, bytes]:
    points, next_page = client.scroll("uber", limit=10_000, with_vectors=True)
    assert next_page is None
    return {str(p.id): np.asarray(p.vector, np.float32).tobytes() for p in points}


def _ids(retriever, query: str) -> list[str]:
    return [n.node.node_id for n in retriever.retrieve(query)]


def _hit_and_mrr(rankings: dict[str, list[str]], qrels: dict[str, set[str]]) -> dict[str, float]:
    hits, reciprocal = [], []
    for qid, ranking in rankings.items():
        ranks = [r for r, d in enumerate(ranking[:10], start=1) if d in qrels[qid]]
        hits.append(float(bool(ranks) and ranks[0] <= 5))
        reciprocal.append(1.0 / ranks[0] if ranks else 0.0)
    return {"hit@5": float(np.mean(hits)), "mrr@10": float(np.mean(reciprocal))}


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Payload indexes have no effect in the local Qdrant:UserWarning")
def test_end_to_end_default_recipe_in_qdrant(uber_qdrant_path, uber, encoder):
    from queryshift.evaluation import evaluate_retrieval
    from queryshift.splits import split_by_query
    from queryshift.training import train_adapter

    split = split_by_query(uber.dataset, test_fraction=0.5, seed=0)
    result = train_adapter(uber.subset(split.train), base_model=encoder.model_id)
    test_queries = {q: uber.dataset.queries[q] for q in split.test}

    with _OpenIndex(uber_qdrant_path, encoder) as (client, index):
        assert client.count("uber").count == uber.dataset.num_documents
        base = index.as_retriever(similarity_top_k=10)
        adapted = AdaptedRetriever(base, result.adapter)
        base_metrics = _hit_and_mrr({q: _ids(base, t) for q, t in test_queries.items()}, uber.dataset.qrels)
        adapted_metrics = _hit_and_mrr(
            {q: _ids(adapted, t) for q, t in test_queries.items()}, uber.dataset.qrels
        )

    assert adapted_metrics["hit@5"] >= base_metrics["hit@5"]
    assert adapted_metrics["mrr@10"] >= base_metrics["mrr@10"]
    # LlamaIndex + Qdrant rank like queryshift's own evaluation (up to float ties).
    held_out = uber.subset(split.test)
    ours = evaluate_retrieval(
        held_out.query_vectors,
        held_out.query_ids,
        uber.document_vectors,
        uber.document_ids,
        held_out.dataset.qrels,
        metrics=["hit@5", "mrr@10"],
    ).metrics
    assert base_metrics["hit@5"] == pytest.approx(ours["hit@5"], abs=2 / len(split.test))
    assert base_metrics["mrr@10"] == pytest.approx(ours["mrr@10"], abs=2 / len(split.test))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Payload indexes have no effect in the local Qdrant:UserWarning")
def test_end_to_end_non_identity_adapter_matches_querying_qdrant_by_hand(uber_qdrant_path, uber, encoder):
    from queryshift.splits import split_by_query
    from queryshift.training import TrainingConfig, train_adapter

    split = split_by_query(uber.dataset, test_fraction=0.5, seed=0)
    adapter = train_adapter(uber.subset(split.train), TrainingConfig(validation="none", epochs=5)).adapter
    assert not np.allclose(adapter.matrix(), np.eye(uber.dim), atol=1e-3)
    held_out = uber.subset(split.test[:60])

    with _OpenIndex(uber_qdrant_path, encoder) as (client, index):
        retriever = AdaptedRetriever(index.as_retriever(similarity_top_k=10), adapter)
        changed = 0
        for qid, vector in zip(held_out.query_ids, held_out.query_vectors, strict=True):
            by_hand = client.query_points("uber", query=adapter.apply(vector).tolist(), limit=10).points
            expected = [str(p.id) for p in by_hand]
            assert _ids(retriever, uber.dataset.queries[qid]) == expected
            unadapted = client.query_points("uber", query=vector.tolist(), limit=10).points
            changed += expected != [str(p.id) for p in unadapted]
    assert changed > 0  # the adapter changes rankings, so the equality above is not trivial
