"""AdamW for the few parameters of an adapter, without ``torch.optim``.

``torch.optim``'s optimizers import ``torch._dynamo`` the first time one is built (its step
functions are wrapped to opt out of compilation), and that import took 3.1 s of the 4.9 s a first
``train_adapter`` call spent on the 668 Lyft pairs here, every time ``queryshift train`` starts. An
adapter has one to four parameter tensors, so the update is a handful of in-place tensor ops;
this module does exactly the arithmetic of ``torch.optim.AdamW`` (decoupled weight decay, bias
correction, ``eps`` added after the square root; ``tests/training/test_optimizer.py`` compares the
two step by step).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

__all__ = ["AdamW"]


class AdamW:
    """``torch.optim.AdamW(params, lr, betas, eps, weight_decay)``'s update, for plain dense parameters.

    Example:
        >>> w = torch.nn.Parameter(torch.ones(2))
        >>> optimizer = AdamW([w], lr=0.1)
        >>> (w * w).sum().backward()
        >>> optimizer.step()
        >>> [round(x, 4) for x in w.tolist()]
        [0.9, 0.9]
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        *,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        fused: bool = True,
    ) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.steps = 0
        self._first = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self._second = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        # torch's fused kernel (what ``torch.optim.AdamW(fused=True)`` calls) makes one pass over
        # the weight, its gradient and both moments where the ops below make six: a third of the
        # time on a CPU (0.09 against 0.22 ms for a 384x384 weight). CPU support came in torch 2.4;
        # where it is missing, or refuses the tensors, the same arithmetic runs op by op.
        self._fused = getattr(torch, "_fused_adamw_", None) if fused else None
        self._step_counts = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]

    def zero_grad(self) -> None:
        """Drop the gradients (as ``torch.optim``'s ``set_to_none=True``)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        self.steps += 1
        if self._fused is not None and self._fused_step():
            return
        beta1, beta2 = self.betas
        step_size = self.lr / (1 - beta1**self.steps)
        root_correction = math.sqrt(1 - beta2**self.steps)
        for p, first, second in zip(self.params, self._first, self._second, strict=True):
            if p.grad is None:
                continue
            grad = p.grad
            if self.weight_decay:
                p.mul_(1 - self.lr * self.weight_decay)
            first.lerp_(grad, 1 - beta1)
            second.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            # m / (sqrt(v) / c + eps) = c · m / (sqrt(v) + c · eps): one pass fewer than torch's order.
            denominator = second.sqrt().add_(self.eps * root_correction)
            p.addcdiv_(first, denominator, value=-step_size * root_correction)

    def _fused_step(self) -> bool:
        """The update by torch's fused kernel; False (nothing changed) where it does not apply."""
        rows = [
            (p, first, second, count)
            for p, first, second, count in zip(
                self.params, self._first, self._second, self._step_counts, strict=True
            )
            if p.grad is not None
        ]
        if any(p.dtype != torch.float32 or p.grad.is_sparse for p, *_ in rows):
            return False
        for *_, count in rows:
            count.fill_(self.steps)
        try:
            self._fused(
                [p for p, *_ in rows],
                [p.grad for p, *_ in rows],
                [first for _, first, _, _ in rows],
                [second for _, _, second, _ in rows],
                [],
                [count for *_, count in rows],
                lr=self.lr,
                beta1=self.betas[0],
                beta2=self.betas[1],
                weight_decay=self.weight_decay,
                eps=self.eps,
                amsgrad=False,
                maximize=False,
            )
        except (RuntimeError, TypeError, NotImplementedError):  # no kernel for this device or version
            self._fused = None
            return False
        return True
