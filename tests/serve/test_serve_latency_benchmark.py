"""The serve benchmark runs end to end (real model, a few requests) and writes its table and JSON."""

from __future__ import annotations

import json

import pytest

from benchmarks.serve_latency import main


@pytest.mark.slow
def test_serve_latency_benchmark_writes_table_and_json(tmp_path):
    args = ["--requests", "12", "--concurrency", "1,4", "--servers", "batched", "--output-dir", str(tmp_path)]
    paths = main(args)
    report = json.loads(paths["json"].read_text())
    assert report["command"] == "python -m benchmarks.serve_latency " + " ".join(args)
    assert [(r["server"], r["concurrency"], r["requests"]) for r in report["results"]] == [
        ("batched", 1, 12),
        ("batched", 4, 12),
    ]
    for row in report["results"]:
        assert row["requests_per_s"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["forward_passes"] >= 1 and 1 <= row["mean_batch_texts"] <= 4
    assert report["results"][0]["mean_batch_texts"] == 1.0  # one client: nothing to merge
    assert "| batched | 4 | 12 |" in paths["md"].read_text()
