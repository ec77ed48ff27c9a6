"""Training updates, head against a base revision, paired and interleaved.

``bench/gate.py`` times the kernels' ``loss_and_grads``; ``make bench-peers``
times the training updates against PyTorch and JAX, one revision at a time.
This script times the updates of ``make bench-peers`` (gradpath's own: the
``train-...`` cases of ``bench/peer_cases.py``; Adam, clipping by norm, the
adding problem) in head and in ``--base`` at once, the way the gate does: the
base in a git worktree with its own Numba cache, one worker process per
revision (``bench/worker.py``), and the gate's rounds (``gate.Rounds``): the
cases in a shuffled order, head and base back to back in random order. Per case it
prints the median of the paired ratios head/base with a 95 % bootstrap
interval (``gate.median_ci``), and the geometric mean of the medians. It
judges nothing: it answers "did this change make the updates faster?"::

    python bench/ab_updates.py --base HEAD~1                  # rnn, lstm, gru
    python bench/ab_updates.py --base v0.1 --only B16-H64 --rounds 25

A base that cannot be built, or whose timed code is head's
(``gate.TIMED_SOURCES``), is reported and nothing is timed. The base's
kernels compile in its worker on first use (a few minutes). Its cache starts
empty, so a kernel first needed at a later update (the clipping's scaling
pass, at the first update that clips) compiles inside one timed sample: one
outlying ratio, which the median absorbs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
from gate import ROOT, Rounds, Worker, base_worktree, median_ci, release
from peer_cases import train_specs

CELLS = ("rnn", "lstm", "gru")


class Update(NamedTuple):
    """One update case as the gate's :class:`gate.Rounds` times it (by its key)."""

    key: str


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default=os.environ.get("BENCH_BASE") or "HEAD~1",
                    help="base revision (default: $BENCH_BASE, else HEAD~1)")
    ap.add_argument("--cells", default=",".join(CELLS),
                    help="comma-separated cells (default: %(default)s)")
    ap.add_argument("--only", nargs="*", default=[],
                    help="keep the cases whose key contains one of these (e.g. B16-H64)")
    ap.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default: 15)")
    return ap


def setup(worker: Worker, specs: list[dict]) -> None:
    errors = worker.request(cmd="setup", cases=specs)["errors"]
    if errors:
        raise RuntimeError(f"{worker.name} cannot run {errors}")


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    specs = [s for s in train_specs() if s["cell"] in cells
             and (not args.only or any(o in s["key"] for o in args.only))]
    if not specs or args.rounds < 3:
        ap.error("no case selected (--cells, --only), or --rounds below 3")
    tmp = Path(tempfile.mkdtemp(prefix="gradpath-ab-"))
    head = base = None
    try:
        base_src, about = base_worktree(args.base, tmp)
        if base_src is None:
            print(f"NOTE: {about}; nothing to compare.")
            return 0
        print(f"{len(specs)} updates, head against {args.base} = {about}", flush=True)
        t0 = time.perf_counter()
        head = Worker("head", ROOT / "src")
        base = Worker("base", base_src / "src", {"NUMBA_CACHE_DIR": str(tmp / "numba-cache")})
        for w in (head, base):
            setup(w, specs)
        print(f"both built in {time.perf_counter() - t0:.0f} s", flush=True)
        cases = [Update(s["key"]) for s in specs]
        rounds = Rounds(head, base, cases, [], {c.key for c in cases})
        rounds.calibrate()
        for c in cases:  # an untimed sample each: a later update can still compile
            for w in (head, base):  # a specialisation the first one did not need
                w.time(c.key, rounds.calls[c.key])
        rounds.run(cases, args.rounds)
    finally:
        release((head, base), tmp)

    print("\n| update | head ms | base ms | head / base | 95 % CI | pairs |\n"
          "|---|--:|--:|--:|---|--:|")
    medians = []
    for s in specs:
        h, b = rounds.samples("head", s["key"]), rounds.samples("base", s["key"])
        med, lo, hi = median_ci([x / y for x, y in zip(h, b, strict=True)])
        medians.append(med)
        print(f"| {s['key']} | {1e3 * np.median(h):.3f} | {1e3 * np.median(b):.3f} | "
              f"{med:.3f} | {lo:.3f}-{hi:.3f} | {len(h)} |")
    print(f"\ngeometric mean of the medians: {np.exp(np.mean(np.log(medians))):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
