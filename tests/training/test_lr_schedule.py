"""TrainingConfig.lr_schedule: the learning rate of each step of ``fit``, on both AdamW paths."""

import functools
import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import queryshift.training.loop as loop
import queryshift.training.recipe as recipe
from queryshift.cli import main
from queryshift.data import save_llamaindex_json
from queryshift.training import TrainingConfig, TrainingPairs, build_module, fit, train_adapter
from queryshift.training.optimizer import AdamW
from queryshift.training.schedule import learning_rate_at

from ..conftest import toy_embedded  # noqa: TID252

COSINE = TrainingConfig(
    epochs=3, batch_size=16, learning_rate=1e-2, lr_schedule="cosine", lr_min_ratio=0.1, device="cpu"
)


def _pairs(rng, n=40, n_docs=24, dim=8):
    docs = rng.standard_normal((n_docs, dim), dtype=np.float32)
    queries = docs[np.arange(n) % n_docs] + 0.5 * rng.standard_normal((n, dim), dtype=np.float32)
    negatives = [rng.integers(0, n_docs, size=3).tolist() for _ in range(n)]
    return TrainingPairs(queries, docs, [[i % n_docs] for i in range(n)], negatives)


def _recorded_rates(monkeypatch, pairs, config, *, fused=True, **fit_kwargs):
    """``fit``'s learning rate at each optimiser step, and the trained module."""
    rates = []

    class Recording(AdamW):
        def step(self):
            rates.append(self.lr)
            super().step()

    monkeypatch.setattr(loop, "AdamW", functools.partial(Recording, fused=fused))
    module = build_module("linear", pairs.queries.shape[1])
    fit(module, pairs, config, **fit_kwargs)
    return rates, module


def test_cosine_goes_from_the_learning_rate_to_its_floor():
    rates = [learning_rate_at(COSINE, s, 8) for s in range(9)]
    assert rates[0] == 1e-2 and rates[8] == pytest.approx(1e-3)
    assert rates[4] == pytest.approx((1e-2 + 1e-3) / 2)
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False))
    assert learning_rate_at(COSINE, 20, 8) == pytest.approx(1e-3)  # past the end: the floor
    floor0 = TrainingConfig(learning_rate=1e-2, lr_schedule="cosine", lr_min_ratio=0.0)
    assert learning_rate_at(floor0, 8, 8) == pytest.approx(0.0, abs=1e-18)
    assert learning_rate_at(TrainingConfig(learning_rate=1e-2, lr_schedule="constant"), 5, 8) == 1e-2


def test_a_warm_up_rises_linearly_then_the_schedule_runs_over_the_remaining_steps():
    warm = TrainingConfig(learning_rate=1e-2, lr_schedule="cosine", lr_min_ratio=0.0, lr_warmup_ratio=0.25)
    rates = [learning_rate_at(warm, s, 12) for s in range(12)]  # 3 warm-up steps, then 9 of cosine
    assert rates[:3] == pytest.approx([1e-2 / 3, 2e-2 / 3, 1e-2])
    cosine = TrainingConfig(learning_rate=1e-2, lr_schedule="cosine", lr_min_ratio=0.0)
    assert rates[3:] == pytest.approx([learning_rate_at(cosine, s, 9) for s in range(9)])
    constant = TrainingConfig(learning_rate=1e-2, lr_schedule="constant", lr_warmup_ratio=0.25)
    assert [learning_rate_at(constant, s, 12) for s in range(2, 6)] == pytest.approx([1e-2] * 4)


def test_fit_sets_each_steps_rate_over_the_configs_epochs(rng, monkeypatch):
    pairs = _pairs(rng)  # 40 queries at batch 16: 3 steps an epoch, 9 in the run
    rates, _ = _recorded_rates(monkeypatch, pairs, COSINE)
    expected = [
        0.001 + 0.009 * 0.5 * (1 + math.cos(math.pi * s / 9)) for s in range(9)
    ]  # worked out apart from learning_rate_at
    assert rates == pytest.approx(expected, rel=1e-12)
    # A run asked for fewer epochs (the refit, stopped at the chosen one) takes the same first steps.
    short, _ = _recorded_rates(monkeypatch, pairs, COSINE, epochs=2)
    assert short == rates[:6]
    warm, _ = _recorded_rates(monkeypatch, pairs, TrainingConfig(**{**vars(COSINE), "lr_warmup_ratio": 0.3}))
    assert (
        warm[:4] == pytest.approx([1e-2 / 3, 2e-2 / 3, 1e-2, 1e-2]) and warm[4] < 1e-2
    )  # round(0.3 x 9) = 3


def test_constant_leaves_the_rate_and_the_weights_as_they_were(rng, monkeypatch):
    pairs = _pairs(rng)
    plain = TrainingConfig(epochs=3, batch_size=16, learning_rate=1e-2, lr_schedule="constant", device="cpu")
    rates, module = _recorded_rates(monkeypatch, pairs, plain)
    assert rates == [1e-2] * 9
    # Not one optimiser attribute written: the weights are those of an AdamW nobody scheduled.
    monkeypatch.setattr(loop, "AdamW", AdamW)
    untouched = build_module("linear", 8)
    monkeypatch.setattr(loop, "learning_rate_at", None)  # a constant run must never call it
    fit(untouched, pairs, plain)
    torch.testing.assert_close(module.delta, untouched.delta, rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["linear", "residual_mlp"])  # closed-form and autograd steps
def test_fused_and_op_by_op_adamw_follow_the_same_schedule(rng, monkeypatch, kind):
    pairs = _pairs(rng)
    trained = {}
    for fused in (True, False):
        monkeypatch.setattr(loop, "AdamW", functools.partial(AdamW, fused=fused))
        trained[fused] = build_module(kind, 8, hidden_dim=16)
        fit(trained[fused], pairs, COSINE)
    for a, b in zip(trained[True].parameters(), trained[False].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    constant = build_module(kind, 8, hidden_dim=16)
    fit(
        constant,
        pairs,
        TrainingConfig(epochs=3, batch_size=16, learning_rate=1e-2, lr_schedule="constant", device="cpu"),
    )
    gap = max(
        float((a - b).detach().abs().max())
        for a, b in zip(trained[False].parameters(), constant.parameters(), strict=True)
    )
    assert gap > 1e-4  # the op-by-op path used the scheduled rates, not the constant one


def test_the_refit_beside_the_selection_sees_the_selections_schedule(monkeypatch):
    data = toy_embedded(n_docs=30, n_queries=240, noise=0.3)
    config = TrainingConfig(
        epochs=10, learning_rate=1e-2, hard_negatives=4, lr_schedule="cosine", lr_min_ratio=0.1
    )
    results = []
    for split in (None, (1, 1)):  # the refit after the selection, then beside it
        monkeypatch.setattr(recipe, "thread_split", lambda config, device, split=split: split)
        results.append(train_adapter(data, config))
    sequential, beside = results
    assert not sequential.is_identity and sequential.chosen.epoch < config.epochs  # stopped early: 8 of 10
    assert (beside.chosen.epoch, beside.chosen.alpha) == (sequential.chosen.epoch, sequential.chosen.alpha)
    for name, tensor in sequential.adapter.tensors().items():
        np.testing.assert_allclose(beside.adapter.tensors()[name], tensor, atol=1e-5)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"lr_schedule": "linear"}, "lr_schedule must be 'constant' or 'cosine', got 'linear'"),
        ({"lr_schedule": "cosine", "lr_min_ratio": -0.1}, r"lr_min_ratio must be a number in \[0, 1\]"),
        ({"lr_schedule": "cosine", "lr_min_ratio": 1.5}, r"lr_min_ratio must be a number in \[0, 1\]"),
        ({"lr_schedule": "cosine", "lr_min_ratio": "0.1"}, r"got '0.1'"),
        ({"lr_schedule": "cosine", "lr_min_ratio": float("nan")}, "got nan"),
        ({"lr_warmup_ratio": 1.0}, r"lr_warmup_ratio must be a number in \[0, 1\)"),
        ({"lr_warmup_ratio": -0.5}, r"lr_warmup_ratio must be a number in \[0, 1\)"),
    ],
)
def test_bad_schedule_settings_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        TrainingConfig(**fields)


def test_a_floor_without_a_schedule_warns():
    with pytest.warns(UserWarning, match="lr_min_ratio=0.2 has no effect with lr_schedule='constant'"):
        TrainingConfig(lr_schedule="constant", lr_min_ratio=0.2)


def test_cli_flags_reach_the_config_and_bad_values_name_the_field(tmp_path):
    data = toy_embedded(n_docs=20, n_queries=60)
    save_llamaindex_json(data.dataset, tmp_path / "toy.json")
    np.save(tmp_path / "q.npy", data.query_vectors)
    (tmp_path / "q.ids.txt").write_text("\n".join(data.query_ids))
    np.save(tmp_path / "d.npy", data.document_vectors)
    (tmp_path / "d.ids.txt").write_text("\n".join(data.document_ids))
    args = ["train", str(tmp_path / "toy.json"), "--model", "toy", "--epochs", "2"]
    args += ["--query-vectors", str(tmp_path / "q.npy"), "--document-vectors", str(tmp_path / "d.npy")]
    runner = CliRunner()
    res = runner.invoke(
        main, [*args, "--lr-schedule", "cosine", "--lr-min-ratio", "0.1", "-o", str(tmp_path / "a")]
    )
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert '"lr_schedule": "cosine"' in json.dumps(saved) and '"lr_min_ratio": 0.1' in json.dumps(saved)
    res = runner.invoke(
        main, [*args, "--lr-schedule", "cosine", "--lr-min-ratio", "2", "-o", str(tmp_path / "b")]
    )
    assert res.exit_code != 0 and "lr_min_ratio must be a number in [0, 1]" in res.output
    res = runner.invoke(main, [*args, "--lr-schedule", "step", "-o", str(tmp_path / "c")])
    assert res.exit_code == 2 and "--lr-schedule" in res.output
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
