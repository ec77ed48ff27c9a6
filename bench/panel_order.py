"""One row's recurrent product, step after step: the panels in the same order or alternating.

    python bench/panel_order.py [--H 64] [--dtype float64] [--steps 1000] [--repeat 30]

A tanh RNN's forward loop at B = 1 (product, then tanh), with ``--other``
bytes of other data touched per step as a real step does (the input drive,
the states), timed for these ways of running each step's product through
:mod:`gradpath.kernels.gemm`'s micro-kernel:

* ``4 panels``: tiles of up to 4 panels (8 FMA chains for one row), in the
  same order every step;
* ``2 panels``: tiles of 2 panels, the same order;
* ``2 panels, alternating``: tiles of 2, the order reversed every other step
  (what ``product_units`` does with ``reverse`` when one row's panels do not
  stay in L1);
* ``4 panels, alternating``.

Prints ns per step (min / median over ``--repeat`` interleaved runs) and
whether every variant gave the same bits (they must: each output entry is
the same FMA chain). The packed W_hh^T of H = 64 in float64 is 32 KB, an
AMD Zen 4's whole L1 data cache.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from numba import njit

from gradpath.kernels.common import activate_row
from gradpath.kernels.gemm import _run_tile, pack
from gradpath.kernels.jit import JIT_OPTIONS

_OPTS = {k: v for k, v in JIT_OPTIONS.items() if k not in ("cache", "nopython")}


@njit(**_OPTS)
def forward(hs, P, a, other, width, alternate):
    """hs[t + 1] = tanh(hs[t] @ M) for every t, the product in tiles of
    ``width`` panels, their order reversed at odd steps when ``alternate``."""
    T = hs.shape[0] - 1
    H = hs.shape[1]
    _, npan, K, nr = P.shape
    groups = -(-npan // width)
    for t in range(T):
        A = hs[t:t + 1]
        for gg in range(groups):
            g = groups - 1 - gg if alternate and t % 2 == 1 else gg
            q = g * width
            m = min(width, npan - q)
            _run_tile(1, m, A, 0, K, 1, P, q * K * nr, nr, K * nr, K, a, q * nr, H, False,
                      min(nr, H - (q + m - 1) * nr))
        for i in range(other.shape[0]):
            other[i] += 1.0
        activate_row(a[0], hs[t + 1], 0)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--H", type=int, default=64)
    ap.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--other", type=int, nargs="+", default=[0, 4096],
                    help="bytes of other data touched per step")
    args = ap.parse_args(argv)
    dt = np.dtype(args.dtype)
    H, T = args.H, args.steps
    rng = np.random.default_rng(0)
    W = (rng.standard_normal((H, H)) / np.sqrt(H)).astype(dt)
    P = pack(np.ascontiguousarray(W.T), 1)
    print(f"H = {H}, {dt.name}: packed W_hh^T {P.nbytes // 1024} KB in {P.shape[1]} panels")
    variants = (("4 panels", 4, False), ("2 panels", 2, False),
                ("2 panels, alternating", 2, True), ("4 panels, alternating", 4, True))
    h0 = rng.uniform(-1, 1, H).astype(dt)
    for nbytes in args.other:
        times = {name: [] for name, _, _ in variants}
        last = {}
        for _ in range(args.repeat + 1):  # the first round compiles
            for name, width, alternate in variants:
                hs = np.zeros((T + 1, H), dt)
                hs[0] = h0
                a = np.zeros((1, H), dt)
                other = np.zeros(nbytes // dt.itemsize, dt)
                t0 = time.perf_counter()
                forward(hs, P, a, other, width, alternate)
                times[name].append(time.perf_counter() - t0)
                last[name] = hs[-1].copy()
        same = all(np.array_equal(last["4 panels"], v) for v in last.values())
        cells = "; ".join(f"{name} {np.min(v[1:]) / T * 1e9:.0f} / {np.median(v[1:]) / T * 1e9:.0f}"
                          for name, v in times.items())
        print(f"other data {nbytes} B per step, ns per step (min / median): {cells}; "
              f"same bits: {same}")


if __name__ == "__main__":
    main()
