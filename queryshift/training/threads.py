"""One thread pool at a time: numpy's BLAS kept to one thread while torch trains on the CPU.

The recipe alternates torch steps (OpenMP threads) with numpy scoring of the validation
candidates (OpenBLAS threads). Each pool's idle workers spin for a while after a call, so on a
machine with few cores the two pools take the cores from each other: on 2 idle cores the
default recipe on the 668 Lyft pairs (code of 74cd46b, runs side by side) took 5.4-6.0 s and
twice the CPU time with both pools at 2 threads, 2.8-3.7 s with OpenBLAS at one thread, and
in one run 70-120 s. Torch keeps its threads; the numpy side (ranking a few hundred validation
queries) is the small share.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["blas_yields_to_torch"]


@contextlib.contextmanager
def blas_yields_to_torch(device: str) -> Iterator[None]:
    """Within the block, numpy's BLAS runs on one thread when torch computes on the CPU.

    On a GPU torch's work is on the device and numpy keeps its threads.

    Example:
        >>> import numpy as np
        >>> with blas_yields_to_torch("cpu"):
        ...     float(np.ones((2, 2)) @ np.ones(2) @ np.ones(2))
        4.0
    """
    if device != "cpu":
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
