"""Congruence: each torch module and the numpy adapter it exports compute the same function."""

import numpy as np
import pytest
import torch

from queryshift.training import build_module


@pytest.mark.parametrize("kind", ["linear", "low_rank", "residual_mlp"])
@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_numpy_apply_matches_torch_forward(kind, alpha):
    module = build_module(kind, 8, rank=3, hidden_dim=6, bias=True, seed=1)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=generator))
    x = torch.randn(5, 8, generator=generator)
    with torch.no_grad():
        expected = module(x, alpha=alpha).numpy()
    adapter = module.to_adapter(alpha=alpha, normalize=False)
    np.testing.assert_allclose(adapter.apply(x.numpy()), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["linear", "low_rank", "residual_mlp"])
def test_fresh_module_is_identity(kind):
    module = build_module(kind, 8, rank=3, hidden_dim=6, bias=True)
    x = torch.randn(4, 8)
    with torch.no_grad():
        np.testing.assert_array_equal(module(x).numpy(), x.numpy())
    np.testing.assert_allclose(module.to_adapter(normalize=False).apply(x.numpy()), x.numpy(), atol=1e-7)
