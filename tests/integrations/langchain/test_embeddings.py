"""LangChain: adapted queries, untouched documents, end to end through langchain-qdrant."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from langchain_qdrant import QdrantVectorStore
from qdrant_client import QdrantClient, models

from queryshift.adapters import AdapterConfig, LinearAdapter
from queryshift.embeddings import SentenceTransformerEncoder
from queryshift.integrations.langchain import AdaptedEmbeddings, EncoderEmbeddings

from ...tiny_models import TEXTS, tiny_sentence_transformer  # noqa: TID252

QUERIES = [
    "covid vaccine test",
    "virus spread risk",
    "fever cough",
    "driver loss",
    "ride price city",
    "mask lung",
]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The tiny model, saved and loaded back through queryshift's own encoder (no cache)."""
    path = tmp_path_factory.mktemp("tiny") / "model"
    tiny_sentence_transformer(dim=8).save(str(path))
    return EncoderEmbeddings(SentenceTransformerEncoder(str(path), device="cpu", cache=False))


@pytest.fixture(scope="module")
def steering_adapter(base):
    """A linear map sending query i exactly onto document i+1: what retrieval must then return."""
    q = np.array([base.embed_query(text) for text in QUERIES])  # (6, 8)
    d = np.array(base.embed_documents(TEXTS))  # (6, 8)
    targets = np.roll(np.arange(len(TEXTS)), -1)
    weight = d[targets].T @ np.linalg.pinv(q.T)  # (8, 8): weight @ q.T == d[targets].T
    return LinearAdapter(AdapterConfig(dim=8), weight=weight), targets


def test_queries_adapted_documents_untouched(base, steering_adapter, tmp_path):
    adapter, _ = steering_adapter
    adapter.save(tmp_path / "adapter")
    embeddings = AdaptedEmbeddings(base, tmp_path / "adapter")  # a directory works too
    expected = adapter.apply(np.asarray(base.embed_query(QUERIES[0]), np.float32))
    assert np.allclose(embeddings.embed_query(QUERIES[0]), expected, atol=1e-6)
    assert not np.allclose(embeddings.embed_query(QUERIES[0]), base.embed_query(QUERIES[0]), atol=1e-2)
    assert embeddings.embed_documents(TEXTS) == base.embed_documents(TEXTS)
    assert asyncio.run(embeddings.aembed_query(QUERIES[0])) == embeddings.embed_query(QUERIES[0])
    assert asyncio.run(embeddings.aembed_documents(TEXTS)) == base.embed_documents(TEXTS)


def test_wrapping_twice_is_refused(base, steering_adapter):
    adapted = AdaptedEmbeddings(base, steering_adapter[0])
    with pytest.raises(ValueError, match="adapt queries twice"):
        AdaptedEmbeddings(adapted, steering_adapter[0])
    with pytest.raises(TypeError, match="must be a langchain_core Embeddings"):
        AdaptedEmbeddings(object(), steering_adapter[0])


def test_qdrant_vector_store_end_to_end(base, steering_adapter):
    """Documents go in as base vectors; similarity_search returns what the adapted query points at."""
    adapter, targets = steering_adapter
    client = QdrantClient(":memory:")
    client.create_collection(
        "docs", vectors_config=models.VectorParams(size=8, distance=models.Distance.COSINE)
    )
    store = QdrantVectorStore(
        client=client, collection_name="docs", embedding=AdaptedEmbeddings(base, adapter)
    )
    store.add_texts(TEXTS, ids=list(range(len(TEXTS))))

    stored = client.retrieve("docs", ids=list(range(len(TEXTS))), with_vectors=True)
    stored_vectors = np.array([point.vector for point in sorted(stored, key=lambda p: p.id)])
    assert np.allclose(stored_vectors, base.embed_documents(TEXTS), atol=1e-6)  # cosine: unit vectors kept

    plain = QdrantVectorStore(client=client, collection_name="docs", embedding=base)
    adapted_hits = [TEXTS.index(store.similarity_search(q, k=1)[0].page_content) for q in QUERIES]
    base_hits = [TEXTS.index(plain.similarity_search(q, k=1)[0].page_content) for q in QUERIES]
    assert adapted_hits == targets.tolist()
    assert base_hits != targets.tolist()
