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
