import pytest
import torch

from queryshift.training.losses import contrastive_loss_by_columns, linear_loss_and_gradients
from queryshift.training.modules import TorchLinear


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("n_positive", [1, 3])
def test_closed_form_gradients_are_autograds(normalize, bias, n_positive):
    generator = torch.Generator().manual_seed(n_positive + 2 * bias + 4 * normalize)
    module = TorchLinear(8, bias=bias)
    with torch.no_grad():
        module.delta.normal_(std=0.3, generator=generator)
        if bias:
            module.bias.normal_(std=0.3, generator=generator)
    queries, candidates = torch.randn(6, 8, generator=generator), torch.randn(11, 8, generator=generator)
    columns = torch.randint(0, 11, (6, n_positive), generator=generator).sort(dim=1).values
    columns[0, -1] = columns[0, 0]  # a positive given twice: masked as a repeat, counted once
    repeats = torch.zeros_like(columns, dtype=torch.bool)
    repeats[:, 1:] = columns[:, 1:] == columns[:, :-1]
    repeats = repeats if repeats.any() else None
    expected = contrastive_loss_by_columns(
        module(queries), candidates, columns, repeats, temperature=0.1, normalize=normalize
    )
    expected.backward()
    loss, grad_delta, grad_bias = linear_loss_and_gradients(
        module.delta, module.bias, queries, candidates, columns, repeats, temperature=0.1, normalize=normalize
    )
    torch.testing.assert_close(loss, expected.detach())
    torch.testing.assert_close(grad_delta, module.delta.grad)
    assert float(grad_delta.abs().max()) > 1e-3
    if bias:
        torch.testing.assert_close(grad_bias, module.bias.grad)
    else:
        assert grad_bias is None


def test_scaling_the_columns_is_normalising_the_candidates():
    generator = torch.Generator().manual_seed(0)
    delta = 0.3 * torch.randn(8, 8, generator=generator)
    queries, stored = torch.randn(6, 8, generator=generator), 3 * torch.randn(11, 8, generator=generator)
    columns = torch.randint(0, 11, (6, 2), generator=generator)
    unit = torch.nn.functional.normalize(stored, dim=-1)
    expected = linear_loss_and_gradients(delta, None, queries, unit, columns, temperature=0.1)
    scaled = linear_loss_and_gradients(
        delta, None, queries, stored, columns, temperature=0.1, candidate_scale=1 / stored.norm(dim=-1)
    )
    torch.testing.assert_close(scaled[0], expected[0])
    torch.testing.assert_close(scaled[1], expected[1])
    unscaled = linear_loss_and_gradients(delta, None, queries, stored, columns, temperature=0.1)
    assert not torch.allclose(unscaled[0], expected[0])
