import numpy as np

from queryshift.training import TrainingConfig, train_adapter
from queryshift.training.selection import choose_candidate

from ..conftest import toy_embedded  # noqa: TID252


def _exact(rng, n, mean, sd):
    x = rng.normal(size=n)
    return mean + sd * (x - x.mean()) / x.std(ddof=1)


def test_a_gain_within_noise_keeps_the_identity():
    rng = np.random.default_rng(0)
    # The unseen set that fell below base: +0.002 on a 150-query document split (standard error
    # 0.004) and a 6-query query split that happens to gain; candidates of one family (alpha x update).
    document, query = _exact(rng, 150, 0.002, 0.05), _exact(rng, 6, 0.05, 0.2)
    gains = {(1, a): {"document": a * document, "query": a * query} for a in (0.25, 0.5, 0.75, 1.0)}
    key, evidence = choose_candidate(gains, z=1.0)
    assert key is None and evidence["worst_split_gain"] > 0 and evidence["lower_bound"] <= 0
    assert choose_candidate(gains, z=0.0)[0] == (1, 1.0)  # the point estimate alone would take it


def test_a_consistent_gain_is_taken_and_the_worst_split_decides():
    steady = np.linspace(0.0, 0.04, 200)  # mean +0.02, every query >= 0
    gains = {
        (1, 0.5): {"query": steady + 0.05, "document": steady - 0.01},  # worst split +0.01
        (2, 0.5): {"query": steady, "document": steady},  # worst split +0.02
    }
    key, evidence = choose_candidate(gains, z=1.0)
    assert key == (2, 0.5) and abs(evidence["worst_split_gain"] - 0.02) < 1e-9
    assert choose_candidate({(1, 1.0): {"document": steady - 0.03}})[0] is None  # a loss never wins


def test_validation_pools_every_draw_of_the_splits():
    data = toy_embedded(n_docs=30, n_queries=240, noise=0.3)
    result = train_adapter(data, TrainingConfig(epochs=3, hard_negatives=2, validation_repeats=2))
    assert {figures["draws"] for figures in result.validation.values()} == {2}
    one = train_adapter(data, TrainingConfig(epochs=3, hard_negatives=2, validation_repeats=1))
    # The first draw is the single-draw run's split: the same queries held out.
    for name, figures in result.validation.items():
        assert figures["queries"] == one.validation[name]["queries"]
