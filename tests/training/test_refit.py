"""The refit trained beside the selection run gives the adapter the sequential refit gives."""

import numpy as np
import pytest
import torch

import queryshift.training.recipe as recipe
from queryshift.training import TrainingConfig, train_adapter
from queryshift.training.refit import BackgroundRefit, thread_split

from ..conftest import toy_embedded  # noqa: TID252

CONFIG = TrainingConfig(epochs=6, learning_rate=1e-2, hard_negatives=4)


@pytest.fixture(scope="module")
def data():
    return toy_embedded(n_docs=30, n_queries=240, noise=0.3)


def _train(data, monkeypatch, split):
    monkeypatch.setattr(recipe, "thread_split", lambda config, device: split)
    return train_adapter(data, CONFIG)


def test_background_refit_matches_the_sequential_refit(data, monkeypatch):
    threads = torch.get_num_threads()
    sequential = _train(data, monkeypatch, None)
    beside = _train(data, monkeypatch, (1, 1))
    assert torch.get_num_threads() == threads  # the caller's thread count is restored
    assert not sequential.is_identity
    assert (beside.chosen.epoch, beside.chosen.alpha) == (sequential.chosen.epoch, sequential.chosen.alpha)
    assert beside.losses == pytest.approx(sequential.losses, rel=1e-4)
    assert len(beside.losses) == sequential.chosen.epoch
    for name, tensor in sequential.adapter.tensors().items():
        np.testing.assert_allclose(beside.adapter.tensors()[name], tensor, atol=1e-5)


def test_an_error_in_the_refit_thread_reaches_the_caller(data, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("refit failed")

    monkeypatch.setattr("queryshift.training.refit.fit", broken)
    with pytest.raises(RuntimeError, match="refit failed"):
        _train(data, monkeypatch, (1, 1))


def test_a_failing_selection_stops_the_refit(data, monkeypatch):
    started = []

    def failing_selection(*args, **kwargs):
        raise KeyboardInterrupt

    real_start = BackgroundRefit.start
    monkeypatch.setattr(BackgroundRefit, "start", lambda self: (started.append(self), real_start(self)))
    monkeypatch.setattr(recipe, "_selection_run", failing_selection)
    with pytest.raises(KeyboardInterrupt):
        _train(data, monkeypatch, (1, 1))
    (refit,) = started
    assert not refit._thread.is_alive()


def test_thread_split_only_where_the_cpu_has_threads_to_share(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert thread_split(TrainingConfig(), cpu) == (1, 1)
    assert thread_split(TrainingConfig(refit=False), cpu) is None
    assert thread_split(TrainingConfig(validation="none"), cpu) is None
    assert thread_split(TrainingConfig(), torch.device("cuda")) is None
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert thread_split(TrainingConfig(), cpu) is None
