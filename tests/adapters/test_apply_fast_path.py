"""One float32 query takes apply's fast path: same result as the checked path, same refusals."""

import numpy as np
import pytest

from queryshift.adapters import AdapterConfig, LinearAdapter, ResidualMLPAdapter, TwoLayerAdapter

DIM = 8


def _adapters(rng, **fields):
    def f32(*shape):
        return rng.normal(size=shape).astype(np.float32)

    return [
        LinearAdapter(AdapterConfig(kind="linear", dim=DIM, **fields), weight=f32(DIM, DIM), bias=f32(DIM)),
        LinearAdapter(AdapterConfig(kind="low_rank", dim=DIM, rank=2, **fields), u=f32(DIM, 2), v=f32(DIM, 2)),
        ResidualMLPAdapter(
            AdapterConfig(kind="residual_mlp", dim=DIM, hidden_dim=6, **fields),
            w1=f32(6, DIM), b1=f32(6), w2=f32(DIM, 6), b2=f32(DIM),
        ),
        TwoLayerAdapter.identity(DIM, hidden_dim=6, **fields),
    ]  # fmt: skip


@pytest.mark.parametrize("normalize", [True, False])
def test_one_float32_query_matches_the_checked_path(rng, normalize):
    x = rng.normal(size=DIM).astype(np.float32)
    for adapter in _adapters(rng, normalize=normalize, distance="cosine" if normalize else "dot"):
        fast = adapter.apply(x)
        assert fast.dtype == np.float32 and fast.shape == (DIM,)
        np.testing.assert_allclose(fast, adapter.apply(x.astype(np.float64)), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(fast, adapter.apply(x[None])[0], rtol=1e-6, atol=1e-7)
        fast[0] = 123.0  # the result is the caller's own array
        assert x[0] != 123.0


def test_one_float32_query_is_refused_as_before(rng):
    for adapter in _adapters(rng):
        for bad, message in ((np.nan, "NaN or inf"), (np.inf, "NaN or inf"), (-np.inf, "NaN or inf")):
            x = np.ones(DIM, np.float32)
            x[3] = bad
            with pytest.raises(ValueError, match=f"row 0 holds {message}"):
                adapter.apply(x)
        with pytest.raises(ValueError, match="all zeros"):
            adapter.apply(np.zeros(DIM, np.float32))


def test_extreme_scales_leave_the_fast_path_and_still_come_out_unit(rng):
    adapter = LinearAdapter.identity(DIM)
    x = rng.normal(size=DIM).astype(np.float32)
    for scale in (np.float32(1e25), np.float32(1e-25)):  # squares overflow / underflow float32
        np.testing.assert_allclose(adapter.apply(x * scale), x / np.linalg.norm(x), rtol=1e-5)
    dot = LinearAdapter.identity(DIM, distance="dot", normalize=False)
    np.testing.assert_array_equal(dot.apply(np.zeros(DIM, np.float32)), np.zeros(DIM, np.float32))


def test_cross_model_query_takes_the_fast_path_into_the_index_dim(rng):
    weight = rng.normal(size=(6, DIM)).astype(np.float32)
    adapter = LinearAdapter(AdapterConfig(kind="linear", dim=6, input_dim=DIM), weight=weight)
    x = rng.normal(size=DIM).astype(np.float32)
    fast = adapter.apply(x)
    assert fast.shape == (6,)
    np.testing.assert_allclose(fast, adapter.apply(x.astype(np.float64)), rtol=1e-6, atol=1e-7)
