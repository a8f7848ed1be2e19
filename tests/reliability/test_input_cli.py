"""The CLI under bad input: one ``Error:`` line naming the file, and ``--json`` output that parses.
Cheap: precomputed vectors (dim 8), so no model is loaded. Cases in docs/reliability.md."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from queryshift.adapters import LinearAdapter
from queryshift.cli import main
from queryshift.data import RetrievalDataset, save_llamaindex_json

DIM = 8


@pytest.fixture
def setup(tmp_path):
    """A 6-query data set, its precomputed vectors and a saved identity adapter."""
    ids = [f"x{i}" for i in range(6)]
    data = RetrievalDataset(
        queries={f"q{i}": f"question {i}" for i in range(6)},
        documents={d: f"text {d}" for d in ids},
        qrels={f"q{i}": {ids[i]} for i in range(6)},
    )
    path = save_llamaindex_json(data, tmp_path / "data.json")
    vectors = np.eye(6, DIM, dtype=np.float32)
    for name, row_ids in (("q", sorted(data.queries)), ("d", ids)):
        np.save(tmp_path / f"{name}.npy", vectors)
        (tmp_path / f"{name}.ids.txt").write_text("\n".join(row_ids) + "\n")
    adapter_dir = LinearAdapter.identity(DIM, base_model="toy-model").save(tmp_path / "adapter")
    return tmp_path, path, adapter_dir


def _evaluate(tmp_path, data, adapter_dir, *extra):
    args = ["evaluate", str(data), "--adapter", str(adapter_dir), "--queries", "all"]
    args += ["--query-vectors", str(tmp_path / "q.npy"), "--document-vectors", str(tmp_path / "d.npy")]
    return CliRunner().invoke(main, [*args, *extra])


def _one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_evaluate_and_inspect_json_are_pure_json_on_stdout(setup):
    tmp_path, data, adapter_dir = setup
    result = _evaluate(tmp_path, data, adapter_dir, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["adapter"] == str(adapter_dir)
    result = CliRunner().invoke(main, ["inspect", str(adapter_dir), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["dim"] == DIM


def test_evaluate_refuses_nan_query_vectors_in_one_line(setup):
    tmp_path, data, adapter_dir = setup
    vectors = np.eye(6, DIM, dtype=np.float32)
    vectors[4, 2] = np.nan
    np.save(tmp_path / "q.npy", vectors)
    line = _one_error_line(_evaluate(tmp_path, data, adapter_dir))
    assert "q.npy: vectors: 1 row(s) hold NaN or inf: row 4 (id 'q4')" in line


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'["q1", ', "heldout_queries.json, line 1: invalid JSON"),
        (b'{"q1": true}', "heldout_queries.json: expected a JSON list of query-id strings, got dict"),
        (
            b'["q1", 7]',
            "heldout_queries.json: expected a JSON list of query-id strings, got list with non-string",
        ),
        (b'["q1", "q1"]', "heldout_queries.json: a query id is listed twice"),
        (b'["q\xff"]', "heldout_queries.json, line 1: not UTF-8 text"),
    ],
)
def test_evaluate_names_a_malformed_heldout_file(setup, content, message):
    tmp_path, data, adapter_dir = setup
    (adapter_dir / "heldout_queries.json").write_bytes(content)
    assert message in _one_error_line(_evaluate(tmp_path, data, adapter_dir, "--queries", "auto"))


@pytest.mark.slow
def test_reindex_json_is_pure_json_on_stdout(tmp_path):
    from qdrant_client import QdrantClient, models

    folder = tmp_path / "qdrant"
    client = QdrantClient(path=str(folder))
    client.create_collection("docs", vectors_config=models.VectorParams(size=384, distance="Cosine"))
    rng = np.random.default_rng(0)
    points = [
        models.PointStruct(
            id=i, vector=rng.normal(size=384).tolist(), payload={"text": f"document number {i}"}
        )
        for i in range(3)
    ]
    client.upsert("docs", points)
    client.close()
    args = [
        "reindex",
        "--qdrant-path",
        str(folder),
        "--source",
        "docs",
        "--target",
        "docs_v2",
        "--alias",
        "live",
    ]
    result = CliRunner().invoke(
        main, [*args, "--model", "sentence-transformers/all-MiniLM-L6-v2", "--text-field", "text", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["points"] == 3 and report["target_collection"] == "docs_v2"
