"""The collection-scale benchmark's train child measures what it claims, on a tiny collection."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize("mode", ["index_side", "in_memory"])
def test_train_child_reports_memory_time_and_vectors_fetched(tmp_path, monkeypatch, mode):
    from benchmarks import collection_scale

    monkeypatch.setitem(collection_scale.CONFIG, "labelled_points", 20)
    monkeypatch.setitem(
        collection_scale.CONFIG,
        "train",
        {"epochs": 1, "hard_negatives": 2, "pseudo_queries": 1, "pseudo_max_documents": 50},
    )
    out = tmp_path / "row.json"
    collection_scale._child_train(mode, 1_000, 8, out)
    row = json.loads(out.read_text())
    assert row["mode"] == mode and row["train_queries"] == 28  # 40 questions, 30% held out
    assert 0 < row["store_rss_mib"] <= row["peak_rss_mib"] and row["train_s"] > 0
    if mode == "index_side":  # labelled + mined negatives of the training questions + the sample
        assert row["vectors_fetched"] <= 20 + 28 * 2 + 50 and "scroll" not in row["calls"]
    else:  # every point, plus the labelled ones retrieved first
        assert row["vectors_fetched"] == 1_000 + 20
    assert "| " + mode in collection_scale._markdown(
        {
            "machine": {"cpu": "x", "usable_cpus": 2, "load_average_1_5_15": [1, 1, 1]},
            "queryshift_version": "0",
            "train": [row],
        }
    )
