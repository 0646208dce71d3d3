"""``single_thread()``: one torch intra-op thread inside a ``with`` block, restored after.

For work made of many small tensor operations (a diffusion denoiser of a few dozen tokens, a
per-Gaussian MLP): there a second thread only adds synchronisation, and on a busy machine its
spin-waits cost several times the work (measured: the shipped generator's 25 DDIM steps of one
creature took 0.4-0.5 s with 2 threads at load 7, 0.06 s with one). One thread also makes float
reductions give the same bits in any process, whatever its thread setting.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
