"""How steady a case's time is on two threads and on one, sample by sample.

One process alternates samples of about 50 ms of one ``peer_cases`` case
(``bench/peers.py``'s cases: ``train-rnn-B16-H64-T100-float32``,
``kernel-gru-1x64x1x1000-float64``, ...) with two threads and with one
(``$GRADPATH_NUM_THREADS``, read at every call; same blocks, same bits) for
``--seconds``, and prints the 10th / 50th / 90th percentiles of each and the
correlation of neighbouring samples. On a shared host the two-thread times
can move with the host while the one-thread times stay put (a call split
over two vCPUs waits for the slower one at every barrier); a comparison of
implementations at these sizes is only as steady as that::

    python bench/threads_noise.py train-rnn-B16-H64-T100-float32 --seconds 40
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from peer_cases import kernel_specs, train_specs
from peer_worker import gradpath_case, setup_impl

from gradpath.kernels.parallel import THREADS_ENV

SAMPLE_S = 0.05


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("case", help="a key of bench/peer_cases.py (train-... or kernel-...)")
    ap.add_argument("--seconds", type=float, default=40.0)
    args = ap.parse_args(argv)
    specs = {s["key"]: s for s in train_specs() + kernel_specs()}
    if args.case not in specs:
        ap.error(f"unknown case {args.case!r}; e.g. {', '.join(sorted(specs)[:3])}")
    setup_impl("gradpath")
    call, _ = gradpath_case(specs[args.case])
    for _ in range(10):
        call()
    t0 = time.perf_counter()
    call()
    calls = max(1, round(SAMPLE_S / (time.perf_counter() - t0)))

    def sample(threads: str) -> float:
        os.environ[THREADS_ENV] = threads
        t = time.perf_counter()
        for _ in range(calls):
            call()
        return (time.perf_counter() - t) / calls * 1e3

    rows = []
    end = time.perf_counter() + args.seconds
    while time.perf_counter() < end:
        rows.append((sample("2"), sample("1")))
    two, one = np.array(rows).T
    print(f"{args.case}: {len(rows)} pairs of {calls}-call samples, ms per call")
    for name, v in (("two threads", two), ("one thread", one)):
        p10, p50, p90 = np.percentile(v, [10, 50, 90])
        print(f"  {name:11s} p10 {p10:.3f}  p50 {p50:.3f}  p90 {p90:.3f}  "
              f"(p90 / p10 {p90 / p10:.2f})")
    print(f"  correlation of the two in neighbouring samples: {np.corrcoef(two, one)[0, 1]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
