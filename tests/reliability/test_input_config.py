"""Bad seeds and devices fail on construction, before any data is read or model loaded.
The table of cases is in docs/reliability.md ("## Input")."""

from __future__ import annotations

import pytest
import torch

from queryshift.embeddings import SentenceTransformerEncoder, check_device
from queryshift.training import TrainingConfig
from queryshift.training.finetune_config import FinetuneConfig


@pytest.mark.parametrize("seed", [-5, 2**32, 10**30, True, 1.5])
@pytest.mark.parametrize("config", [TrainingConfig, FinetuneConfig])
def test_out_of_range_seed_is_refused(config, seed):
    with pytest.raises(ValueError, match=rf"seed must be an integer in \[0, 4294967295\].*got {seed!r}"):
        config(seed=seed)


def test_largest_seed_is_accepted():
    assert TrainingConfig(seed=2**32 - 1).seed == 2**32 - 1


@pytest.mark.parametrize("device", ["bogus", "CUDA", "", "meta"])
def test_unknown_device_is_refused(device):
    with pytest.raises(ValueError, match=rf"device {device!r} (is not a torch device|cannot run models)"):
        TrainingConfig(device=device)
    with pytest.raises(ValueError, match=rf"device {device!r}"):
        SentenceTransformerEncoder(device=device)


def test_cuda_without_a_gpu_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"device 'cuda' was asked for, but torch sees no cuda device"):
        TrainingConfig(device="cuda")
    with pytest.raises(ValueError, match=r"device 'cuda:0' was asked for"):
        check_device("cuda:0")


def test_cuda_index_beyond_the_gpus_is_refused():
    count = torch.cuda.device_count()  # 0 on a CPU machine: then "no cuda device"
    with pytest.raises(ValueError, match=rf"device 'cuda:{count}' (does not exist|was asked for)"):
        check_device(f"cuda:{count}")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--device", "bogus"], "device 'bogus' is not a torch device"),
        (["--seed", "-5"], "seed must be an integer in"),
        (["--seed", str(2**40)], "seed must be an integer in"),
    ],
)
def test_cli_train_refuses_bad_device_and_seed_before_reading_data(tmp_path, flags, message):
    from click.testing import CliRunner

    from queryshift.cli import main

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")  # reading it would fail: the flag must fail first
    result = CliRunner().invoke(main, ["train", str(broken), "-o", str(tmp_path / "out"), *flags])
    assert result.exit_code == 1 and result.exception.__class__ is SystemExit
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.output
    assert not (tmp_path / "out").exists()


def test_cli_reindex_refuses_bad_device_before_opening_anything(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from queryshift.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    folder = tmp_path / "qdrant"
    args = ["reindex", "--qdrant-path", str(folder), "--source", "a", "--target", "b", "--alias", "c"]
    result = CliRunner().invoke(main, [*args, "--model", "m", "--text-field", "t", "--device", "cuda"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "Error: device 'cuda' was asked for, but torch sees no cuda"
    )
    assert not folder.exists()  # no Qdrant folder was created
