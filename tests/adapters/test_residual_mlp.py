import numpy as np

from queryshift.adapters import AdapterConfig, ResidualMLPAdapter
from queryshift.adapters.residual_mlp import gelu


def test_new_mlp_is_identity(rng):
    x = rng.normal(size=(6, 8)).astype(np.float32)
    adapter = ResidualMLPAdapter.identity(8, hidden_dim=16, normalize=False)
    np.testing.assert_array_equal(adapter.apply(x), x)


def test_mlp_math(rng):
    d, h = 8, 5
    w1, b1 = rng.normal(size=(h, d)), rng.normal(size=h)
    w2, b2 = rng.normal(size=(d, h)), rng.normal(size=d)
    adapter = ResidualMLPAdapter(
        AdapterConfig(kind="residual_mlp", dim=d, hidden_dim=h, normalize=False), w1=w1, b1=b1, w2=w2, b2=b2
    )
    x = rng.normal(size=(3, d)).astype(np.float32)
    expected = x + gelu(x @ w1.T + b1) @ w2.T + b2
    np.testing.assert_allclose(adapter.apply(x), expected, rtol=1e-4, atol=1e-4)
