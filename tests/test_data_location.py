"""Tests outside the data layout fail once, at collection, with one line saying how to get the data."""

from __future__ import annotations

import os
import subprocess
import sys

from .conftest import DATA_ENV, REPO, SHARED_DATA  # noqa: TID252


def _pytest(data_dir: str, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, DATA_ENV: data_dir}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_packaging.py"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,  # generous: a loaded CI machine
    )


def test_missing_data_stops_the_run_at_collection_with_one_line(tmp_path):
    run = _pytest(str(tmp_path / "nowhere"), tmp_path)
    out = run.stdout + run.stderr
    assert run.returncode == 4, out  # pytest's usage error: nothing ran
    lines = [line for line in out.splitlines() if DATA_ENV in line]
    assert len(lines) == 1, out
    assert str(tmp_path / "nowhere") in lines[0] and "finetune-embedding/train_dataset.json" in lines[0]
    assert "FileNotFoundError" not in out and " passed" not in out


def test_the_data_location_comes_from_the_environment(tmp_path):
    run = _pytest(str(SHARED_DATA), tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert " passed" in run.stdout
