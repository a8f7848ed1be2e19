"""Saving and loading adapters and LlamaIndex exports: whole versions, refusals, one-line errors."""

from __future__ import annotations

import errno
import json
import pathlib

import numpy as np
import pytest

from queryshift.adapters import LinearAdapter, load_adapter, save_adapter
from queryshift.errors import AdapterFormatError, ArtifactWriteError, OutputPathError


def _linear(dim: int, seed: int = 0) -> LinearAdapter:
    rng = np.random.default_rng(seed)
    return LinearAdapter(LinearAdapter.identity(dim=dim).config, weight=rng.normal(size=(dim, dim)))


def test_a_save_between_reading_the_config_and_the_weights_does_not_mix_versions(tmp_path, monkeypatch):
    """0.1 read the config, then opened the weights by path: a swap in between mixed dim=4 and dim=8."""
    path = save_adapter(_linear(4), tmp_path / "a")
    real_loads, swapped = json.loads, []

    def loads_then_swap(*args, **kwargs):
        result = real_loads(*args, **kwargs)
        if not swapped:
            swapped.append(True)
            save_adapter(_linear(8, seed=1), path)
        return result

    monkeypatch.setattr(json, "loads", loads_then_swap)
    loaded = load_adapter(path)
    monkeypatch.undo()
    assert swapped
    assert loaded.dim == 4  # the version it opened, whole
    assert load_adapter(path).dim == 8


def test_save_adapter_refuses_a_directory_of_user_files(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("draft")
    with pytest.raises(OutputPathError, match="notes.txt"):
        save_adapter(_linear(4), tmp_path / "x")
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["notes.txt"]


def test_save_adapter_on_a_full_disk_is_one_line_and_keeps_the_old_adapter(tmp_path, monkeypatch):
    path = save_adapter(_linear(4), tmp_path / "a")

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(pathlib.Path, "write_bytes", full)
    monkeypatch.setattr(pathlib.Path, "write_text", full)
    with pytest.raises(ArtifactWriteError) as caught:
        save_adapter(_linear(8), path)
    monkeypatch.undo()
    message = str(caught.value)
    assert "\n" not in message and f"writing adapter {path}" in message and "no space left" in message
    assert load_adapter(path).dim == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_a_sparse_tensor_in_a_llamaindex_file_is_a_clear_error(tmp_path):
    import torch

    from queryshift.integrations.llamaindex_files import load_llamaindex_adapter

    (tmp_path / "config.json").write_text(json.dumps({"in_features": 4, "out_features": 4, "bias": False}))
    torch.save({"linear.weight": torch.eye(4).to_sparse()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(AdapterFormatError, match=r"pytorch_model.bin: tensor 'linear.weight' is sparse"):
        load_llamaindex_adapter(tmp_path)


def test_exporting_to_llamaindex_refuses_a_directory_of_user_files(tmp_path):
    from queryshift.integrations.llamaindex_files import export_llamaindex_adapter

    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("draft")
    with pytest.raises(OutputPathError, match="notes.txt"):
        export_llamaindex_adapter(_linear(4), tmp_path / "x")
    export_llamaindex_adapter(_linear(4), tmp_path / "y")
    export_llamaindex_adapter(_linear(4), tmp_path / "y")  # its own export is replaced
