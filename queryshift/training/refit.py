"""The refit, trained beside the selection run instead of after it.

The recipe picks an epoch on held-out queries, then retrains from scratch on every training
query for that many epochs. The refit's batches come from the seed only, so its state after
``e`` epochs is the same whatever the number of epochs asked for: it can start at once, keep a
snapshot of each epoch, and stop as soon as the selection has named the epoch. On the CPU the
two runs share the cores (each on its own torch threads); a step of these shapes gains little
from a second thread, so the pair takes about the time of the longer run alone (the 668 Lyft
pairs: `python -m benchmarks.speed`). Once the choice is known, the refit takes every thread
for the epochs it still lacks.
"""

from __future__ import annotations

import threading
from typing import Any

import torch

from queryshift.training.config import TrainingConfig
from queryshift.training.loop import TrainingPairs, fit
from queryshift.training.modules import state_snapshot

__all__ = ["BackgroundRefit", "thread_split"]


def thread_split(config: TrainingConfig, device: torch.device) -> tuple[int, int] | None:
    """``(selection_threads, refit_threads)`` when the refit should run beside the selection.

    None (refit afterwards, as before) on a GPU, where both runs would queue on one device, and
    where torch has a single CPU thread to share.
    """
    if device.type != "cpu" or not config.refit or config.validation == "none":
        return None
    threads = torch.get_num_threads()
    if threads < 2:
        return None
    return threads - threads // 2, threads // 2


class BackgroundRefit:
    """A refit of ``module`` on ``pairs`` in a thread; :meth:`result` names the epoch and joins.

    Example:
        >>> import numpy as np
        >>> from queryshift.training.modules import build_module
        >>> rng = np.random.default_rng(0)
        >>> docs = rng.normal(size=(6, 4)).astype(np.float32)
        >>> pairs = TrainingPairs(docs + 0.1, docs, [[i] for i in range(6)], [[] for _ in range(6)])
        >>> refit = BackgroundRefit(build_module("linear", 4), pairs, TrainingConfig(epochs=3), threads=1)
        >>> refit.start()
        >>> state, losses = refit.result(2)
        >>> len(losses), sorted(state)
        (2, ['delta'])
    """

    def __init__(
        self, module: torch.nn.Module, pairs: TrainingPairs, config: TrainingConfig, *, threads: int
    ):
        self._module, self._pairs, self._config = module, pairs, config
        self._threads, self._all_threads = threads, torch.get_num_threads()
        self._states: dict[int, dict[str, torch.Tensor]] = {}
        self._losses: list[float] = []
        self._target: int | None = None  # the chosen epoch, once known (0: none needed)
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="queryshift-refit", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def result(self, epoch: int) -> tuple[dict[str, Any], list[float]]:
        """The state after ``epoch`` epochs and the losses up to it (``epoch=0``: stop, nothing kept)."""
        with self._lock:
            self._target = epoch
        self._thread.join()
        if self._error is not None:
            raise self._error
        return (self._states.get(epoch, {}), self._losses[:epoch])

    def cancel(self) -> None:
        """Stop after the current epoch and wait (the selection failed; nothing is used)."""
        with self._lock:
            self._target = 0
        self._thread.join()

    def _run(self) -> None:
        try:
            torch.set_num_threads(self._threads)  # this thread's share; the selection has the rest
            self._losses = fit(
                self._module,
                self._pairs,
                self._config,
                on_epoch=self._snapshot,
                stop_after=self._stop_after,
            )
        except BaseException as error:  # re-raised in the caller's thread by result()
            self._error = error

    def _snapshot(self, epoch: int, module: torch.nn.Module) -> None:
        self._states[epoch] = state_snapshot(module)

    def _stop_after(self, epoch: int) -> bool:
        with self._lock:
            target = self._target
        if target is None:
            return False
        # Keep the chosen epoch's snapshot only: the others were kept while the choice was open.
        for other in [e for e in self._states if e != target]:
            del self._states[other]
        if epoch >= target:
            return True
        torch.set_num_threads(self._all_threads)  # the selection is over: every thread is free
        return False
