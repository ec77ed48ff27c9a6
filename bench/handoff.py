"""What it costs to hand a split call's blocks to the threads.

Three passes of about 4 us of work per block, run either as three
``run_blocks`` (a hand-off per pass, as split calls did before) or as one
``run_phases`` (one hand-off, a spin barrier at entry and between the
passes, the entry barrier block 0's ready signal to the helper, as the
kernels' split calls do now). Prints the median and the 10th / 90th
percentiles of 2000 calls each, twice, and one block's work alone::

    python bench/handoff.py
"""

from __future__ import annotations

import time

import numba
import numpy as np

from gradpath.kernels.parallel import run_blocks, run_phases
from gradpath.kernels.sync import barrier

PASSES = 3
CALLS = 2000


@numba.njit(nogil=True)
def _work(a, lo, hi):
    s = 0.0
    for i in range(lo * 50, hi * 50):
        s += np.sqrt(i)
    a[0] = s


@numba.njit(nogil=True)
def _phased(a, state, parties, p0, p1, lo, hi):
    passed = barrier(state, parties, 0) if p0 == 0 else 0
    for p in range(p0, p1):
        if p > p0:
            passed = barrier(state, parties, passed)
        _work(a, lo, hi)


def main() -> None:
    a = np.zeros(1)

    def per_pass():
        for _ in range(PASSES):
            run_blocks(_work, 2, 32, a)

    def once():
        state = np.zeros(1, np.int64)
        run_phases(_phased, PASSES, 2, 32, a, state, per_block=[(), ()], ready=(state, 1))

    per_pass()
    once()
    for name, f in (("run_blocks per pass", per_pass), ("run_phases once", once)) * 2:
        ts = []
        for _ in range(CALLS):
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
        us = np.array(ts) * 1e6
        print(f"{name:>20}: median {np.median(us):6.1f} us, p10 {np.percentile(us, 10):6.1f},"
              f" p90 {np.percentile(us, 90):6.1f}")
    ts = []
    for _ in range(CALLS):
        t0 = time.perf_counter()
        _work(a, 0, 32)
        ts.append(time.perf_counter() - t0)
    print(f"one block's work alone: {np.median(ts) * 1e6:.1f} us")


if __name__ == "__main__":
    main()
