"""`run_training`: the `queryshift train` job, called from Python without the CLI."""

import json

from queryshift.pipeline import HELDOUT_NAME, TrainingRun, run_training
from queryshift.training.config import TrainingConfig

from .cli.test_cli import _toy_files  # noqa: TID252


def test_run_training_holds_out_trains_saves_and_reports(tmp_path):
    _toy_files(tmp_path)
    lines: list[str] = []
    run = run_training(
        tmp_path / "adapter",
        tmp_path / "toy.json",
        config=TrainingConfig(epochs=3),
        model="toy",
        holdout="query",
        query_vectors=tmp_path / "q.npy",
        document_vectors=tmp_path / "d.npy",
        echo=lines.append,
    )
    assert isinstance(run, TrainingRun) and run.split is not None and run.split.regime == "query"
    heldout = json.loads((tmp_path / "adapter" / HELDOUT_NAME).read_text())
    assert sorted(run.split.test) == heldout and 0.0 <= run.seen <= 1.0
    assert lines[0].startswith("Training on ") and "No pseudo-queries: query vectors" in lines[1]
    assert run.adapter.config.base_model == "toy" and run.adapter.config.training["split_regime"] == "query"
    report = run.report()
    assert report[-1] == f"Saved to {tmp_path / 'adapter'}" and any(
        "validation (query split" in x for x in report
    )


def test_run_training_needs_data_or_a_collection(tmp_path):
    import pytest

    with pytest.raises(ValueError, match="needs data"):
        run_training(tmp_path / "adapter")
