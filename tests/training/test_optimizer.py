"""queryshift's AdamW does torch.optim.AdamW's arithmetic."""

import pytest
import torch

from queryshift.training.optimizer import AdamW


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_steps_match_torch_adamw(weight_decay, fused):
    generator = torch.Generator().manual_seed(0)
    start = [torch.randn(6, 4, generator=generator), torch.randn(4, generator=generator)]
    ours = [torch.nn.Parameter(t.clone()) for t in start]
    theirs = [torch.nn.Parameter(t.clone()) for t in start]
    a = AdamW(ours, lr=0.01, weight_decay=weight_decay, fused=fused)
    b = torch.optim.AdamW(theirs, lr=0.01, weight_decay=weight_decay, foreach=False)
    x = torch.randn(32, 6, generator=generator)
    for _ in range(25):
        for params, optimizer in ((ours, a), (theirs, b)):
            optimizer.zero_grad()
            ((x @ params[0] + params[1]).tanh().square().mean()).backward()
            optimizer.step()
    for mine, reference in zip(ours, theirs, strict=True):
        torch.testing.assert_close(mine, reference, rtol=0, atol=1e-6)
    # torch >= 2.4 has the fused CPU kernel: the fused path ran, it did not fall back
    assert (a._fused is not None) == fused


@pytest.mark.parametrize("fused", [True, False])
def test_a_parameter_without_gradient_is_left_alone(fused):
    used, unused = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    optimizer = AdamW([used, unused], lr=0.1, weight_decay=0.5, fused=fused)
    (used * used).sum().backward()
    optimizer.step()
    assert unused.tolist() == [1.0, 1.0] and used.tolist() != [1.0, 1.0]
