"""`queryshift migrate` and the cross-model `evaluate`, with two tiny real models (dim 8 old, dim 12 new).

Both are static word-embedding sentence-transformers (tests/tiny_models.py) with different seeds
and sizes, so the spaces differ and no model download or transformer is needed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from queryshift.adapters import load_adapter
from queryshift.cli import main
from queryshift.data import RetrievalDataset, save_llamaindex_json

from ..tiny_models import WORDS, tiny_sentence_transformer  # noqa: TID252

N_DOCS = 24


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("migrate")
    tiny_sentence_transformer(dim=8, normalize=True, seed=1).save(str(root / "old"))
    tiny_sentence_transformer(dim=12, normalize=True, seed=2).save(str(root / "new"))
    rng = np.random.default_rng(0)
    documents, queries, qrels = {}, {}, {}
    for i in range(N_DOCS):
        topic = rng.choice(WORDS, size=5, replace=False).tolist()
        sentences = [" ".join(rng.choice(topic + WORDS[:3], size=7).tolist()) + "." for _ in range(3)]
        documents[f"d{i:02d}"] = " ".join(sentences)
        for j in range(2):
            queries[f"q{i:02d}{j}"] = " ".join(rng.choice(topic, size=4).tolist())
            qrels[f"q{i:02d}{j}"] = {f"d{i:02d}"}
    data = root / "index.json"
    save_llamaindex_json(RetrievalDataset(queries, documents, qrels, name="tiny"), data)
    return root, data


def _migrate(root, *args):
    return CliRunner().invoke(
        main, ["migrate", *args, "--model", str(root / "new"), "--epochs", "2", "--batch-size", "16"]
    )


def test_migrate_files_then_evaluate_against_both_models(world):
    root, data = world
    out = root / "cross"
    res = _migrate(root, str(data), "-o", str(out), "--index-model", str(root / "old"))
    assert res.exit_code == 0, res.output
    assert "Closed-form map: " in res.output and "closed-form map -> adapter" in res.output
    adapter = load_adapter(out)
    assert (adapter.input_dim, adapter.dim, adapter.config.index_model) == (12, 8, str(root / "old"))
    assert adapter.config.training["cross_model"]["validation_base_is"].startswith("the closed-form")

    res = CliRunner().invoke(
        main,
        ["evaluate", str(data), "--adapter", str(out), "--model", str(root / "new"),
         "--index-model", str(root / "old"), "--reembed", "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert list(report["rows"]) == ["old model", "new model -> adapter", "new model, re-embedded"]
    assert report["reference"] == "old model" and report["num_queries"] == 2 * N_DOCS
    assert set(report["difference_ci95"]) == {"new model -> adapter", "new model, re-embedded"}


def test_migrate_with_stored_vectors_and_labels_needs_no_old_model(world, tmp_path):
    from queryshift.embeddings import SentenceTransformerEncoder

    root, data = world
    ids = sorted(json.loads(data.read_text())["corpus"])
    texts = json.loads(data.read_text())["corpus"]
    vectors = SentenceTransformerEncoder(str(root / "old"), cache=False).encode_documents(
        [texts[d] for d in ids]
    )
    np.save(tmp_path / "d.npy", vectors)
    (tmp_path / "d.ids.txt").write_text("\n".join(ids))
    res = _migrate(
        root,
        str(data),
        "-o",
        str(tmp_path / "a"),
        "--document-vectors",
        str(tmp_path / "d.npy"),
        "--labelled",
        str(data),
    )
    assert res.exit_code == 0, res.output
    assert "labelled queries; closed-form map -> adapter" in res.output, res.output
    assert load_adapter(tmp_path / "a").config.training["labelled_queries"] == 2 * N_DOCS


def test_migrate_a_qdrant_collection_reads_stored_vectors(world, tmp_path):
    from qdrant_client import QdrantClient, models

    from queryshift.embeddings import SentenceTransformerEncoder

    root, data = world
    texts = json.loads(data.read_text())["corpus"]
    ids = sorted(texts)
    vectors = SentenceTransformerEncoder(str(root / "old"), cache=False).encode_documents(
        [texts[d] for d in ids]
    )
    client = QdrantClient(path=str(tmp_path / "qdrant"))
    client.create_collection(
        "docs", vectors_config=models.VectorParams(size=8, distance=models.Distance.COSINE)
    )
    points = [
        models.PointStruct(id=i, vector=vectors[i].tolist(), payload={"text": texts[d]})
        for i, d in enumerate(ids)
    ]
    client.upsert("docs", points)
    client.close()
    base = ["--collection", "docs", "--qdrant-path", str(tmp_path / "qdrant"), "-o", str(tmp_path / "a")]
    res = _migrate(root, *base, "--text-field", "text", "--index-model", "old-name")
    assert res.exit_code == 0, res.output
    adapter = load_adapter(tmp_path / "a")
    assert (adapter.input_dim, adapter.dim, adapter.config.index_model) == (12, 8, "old-name")
    res = _migrate(root, *base[:-1], str(tmp_path / "b"))
    assert res.exit_code != 0 and "--collection needs --text-field" in res.output


def test_migrate_refuses_missing_index_vectors(world, tmp_path):
    root, data = world
    res = _migrate(root, str(data), "-o", str(tmp_path / "a"))
    assert res.exit_code != 0 and "--index-model (the old model) or --document-vectors" in res.output


def test_migrate_with_the_old_model_at_hand_embeds_the_pseudo_queries_with_it_too(world, tmp_path):
    root, data = world
    old = ["--index-model", str(root / "old"), "--old-model-queries"]
    res = _migrate(root, str(data), "-o", str(tmp_path / "a"), *old)
    assert res.exit_code == 0, res.output
    assert "pseudo-queries with " + str(root / "old") + " too" in res.output, res.output
    assert "chosen on held-out pseudo-queries" in res.output
    assert load_adapter(tmp_path / "a").config.training["pseudo_queries"] > 0  # the target pairs
    res = _migrate(root, str(data), "-o", str(tmp_path / "b"), *old, "--pseudo-queries", "0")
    assert res.exit_code != 0 and "needs the old model (--index-model) and pseudo-queries" in res.output


def test_migrate_samples_pseudo_queries_as_the_cross_model_maps_were_measured_unless_told(world, tmp_path):
    """3 sentences a document, no total cap, 20 epochs at a constant 1e-3 (not `train`'s 8, 15,000 and
    cosine from 5e-4 over 30 epochs); an explicit flag still wins."""
    root, data = world
    sampled = {}
    for name, extra in (("default", []), ("five", ["--pseudo-queries", "5"])):
        out = tmp_path / name
        res = _migrate(root, str(data), "-o", str(out), "--index-model", str(root / "old"), *extra)
        assert res.exit_code == 0, res.output
        config = load_adapter(out).config.training["config"]
        sampled[name] = (config["pseudo_queries"], config["pseudo_max_queries"])
        assert (config["learning_rate"], config["lr_schedule"]) == (1e-3, "constant")
    assert sampled == {"default": (3, None), "five": (5, None)}
    migrate_flags = {p.name: p.default for p in main.commands["migrate"].params}
    assert (migrate_flags["epochs"], migrate_flags["learning_rate"], migrate_flags["lr_schedule"]) == (
        20,
        1e-3,
        "constant",
    )
    train_flags = {p.name: p.default for p in main.commands["train"].params}
    assert (train_flags["pseudo_queries"], train_flags["pseudo_max_queries"]) == (8, 15000)
    assert (train_flags["epochs"], train_flags["learning_rate"], train_flags["lr_schedule"]) == (
        30,
        5e-4,
        "cosine",
    )
