import numpy as np
import pytest

from queryshift.adapters import AdapterConfig, LinearAdapter
from queryshift.errors import AdapterFormatError, DimensionMismatchError


@pytest.mark.parametrize(("dim", "rank"), [(1, None), (8, None), (384, None), (1, 1), (8, 3), (384, 32)])
def test_new_adapter_is_exact_identity(dim, rank, rng):
    x = rng.normal(size=(5, dim)).astype(np.float32)
    adapter = LinearAdapter.identity(dim, rank=rank, normalize=False)
    np.testing.assert_array_equal(adapter.apply(x), x)


def test_apply_matches_matrix_and_normalises(rng):
    dim = 8
    weight = rng.normal(size=(dim, dim)).astype(np.float32)
    bias = rng.normal(size=dim).astype(np.float32)
    adapter = LinearAdapter(AdapterConfig(kind="linear", dim=dim), weight=weight, bias=bias)
    x = rng.normal(size=(4, dim)).astype(np.float32)
    expected = x @ weight.T + bias
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    out = adapter.apply(x)
    assert out.dtype == np.float32 and out.shape == (4, dim)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(adapter.apply(x[0]), expected[0], rtol=1e-5, atol=1e-6)


def test_low_rank_equals_its_dense_matrix(rng):
    dim, rank = 8, 2
    u = rng.normal(size=(dim, rank)).astype(np.float32)
    v = rng.normal(size=(dim, rank)).astype(np.float32)
    adapter = LinearAdapter(AdapterConfig(kind="low_rank", dim=dim, rank=rank, normalize=False), u=u, v=v)
    x = rng.normal(size=(3, dim)).astype(np.float32)
    np.testing.assert_allclose(adapter.apply(x), x @ adapter.matrix().T, rtol=1e-5, atol=1e-5)


def test_dimension_mismatch_names_model():
    adapter = LinearAdapter.identity(8, base_model="my-model")
    with pytest.raises(DimensionMismatchError, match="dim=8.*dim=4.*my-model"):
        adapter.apply(np.ones((2, 4), np.float32))


def test_bad_shapes_and_values_are_refused():
    config = AdapterConfig(kind="linear", dim=4)
    with pytest.raises(AdapterFormatError, match="weight"):
        LinearAdapter(config, weight=np.eye(3))
    bad = np.eye(4)
    bad[0, 0] = np.nan
    with pytest.raises(AdapterFormatError, match="non-finite"):
        LinearAdapter(config, weight=bad)


def test_config_validates_fields():
    with pytest.raises(AdapterFormatError, match="rank"):
        AdapterConfig(kind="low_rank", dim=4, rank=9)
    with pytest.raises(AdapterFormatError, match="distance"):
        AdapterConfig(dim=4, distance="manhattan")
    with pytest.raises(AdapterFormatError, match="format_version"):
        AdapterConfig(dim=4, format_version=99)
