"""Do head's kernels give the numbers a base revision gave? float64, every cell.

    python bench/agree.py [--base REV] [--rtol 1e-12]

A kernel change that is meant to be faster, not different (packing, FMA
contraction, another split over threads), may move float64 results in their
last bits and no further. This script builds ``--base`` (default
``$BENCH_BASE``, else ``HEAD~1``) into a temporary git worktree, as the
gate does, and runs the same problems in both revisions, each in its own
process with its own Numba cache: every cell (tanh RNN, LSTM, GRU, IndRNN,
expRNN) at five shapes (B = 1 and a ragged T included), mse over every step,
loss, every parameter's gradient and the per-step gradient norms. It prints
the largest difference relative to each array's largest entry, per cell and
dtype, and exits 1 when a float64 one exceeds ``--rtol`` (float32 is shown,
not judged: its rounding differs by design).

It also runs short trainings (every cell and dtype; global-norm clipping
that acts at most updates, Adam; for the RNN also clipping by value, none,
SGD and RMSProp) and says per cell and dtype whether every record (loss,
norms before and after clipping, clipped) and the final parameters are the
same bits: a change to the update path (clipping, the
optimisers, the checks) should leave them so. Shown, not judged: a kernel
change that moves the last bits may move a training's further.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from gate import base_worktree, git

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CELLS = ("rnn", "lstm", "gru", "indrnn", "exprnn")
SHAPES = ((1, 64, 1, 1000), (32, 128, 2, 200), (16, 512, 8, 100), (8, 100, 12, 300),
          (5, 37, 3, 50))

DUMP = """
import sys, numpy as np
from gradpath.models import make_model
out = {}
for cell in %(cells)r:
    for B, H, D, T in %(shapes)r:
        for dt in (np.float64, np.float32):
            rng = np.random.default_rng(1)
            m = make_model(cell, D, H, 1, "tanh")
            p = m.init_params("gaussian", gain=1.3, seed=2, dtype=dt)
            x = rng.standard_normal((T, B, D)).astype(dt)
            y = rng.standard_normal((T, B, 1)).astype(dt)
            r = m.loss_and_grads(p, x, y, loss="mse", score="all")
            k = f"{cell}|{B},{H},{D},{T}|{np.dtype(dt).name}"
            out[k + "|loss"] = np.array(r.loss)
            out[k + "|grad_norms"] = np.asarray(r.grad_norms)
            for name, g in r.grads.items():
                out[k + "|" + name] = np.asarray(g)
from gradpath.train import TrainConfig, Trainer
for cell in %(cells)r:
    for dt in ("float64", "float32"):
        runs = [("norm", "adam")]
        if cell == "rnn":
            runs += [("value", "adam"), ("none", "adam"), ("norm", "sgd"), ("norm", "rmsprop")]
        for clip, opt in runs:
            c = TrainConfig(task="adding", seq_len=30, cell=cell, hidden=16, batch=8, steps=25,
                            eval_every=10, clip=clip, clip_threshold=0.5, optimizer=opt,
                            lr=1e-2, dtype=dt)
            tr = Trainer(c)
            rec = [[u.loss, u.grad_norm_before, u.grad_norm_after, u.clipped] for u in
                   (tr.update(tr.batch(i)) for i in range(c.steps))]
            k = f"{cell}|train {clip} {opt}|{dt}"
            out[k + "|records"] = np.array(rec, dtype=np.float64)
            for name, v in tr.params.items():
                out[k + "|" + name] = v
np.savez(sys.argv[1], **out)
"""


def dump(src: Path, out: Path, cache: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(src), NUMBA_CACHE_DIR=str(cache))
    code = DUMP % {"cells": CELLS, "shapes": SHAPES}
    subprocess.run([sys.executable, "-c", code, str(out)], env=env, check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default=os.environ.get("BENCH_BASE", "HEAD~1"))
    ap.add_argument("--rtol", type=float, default=1e-12)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        base_src, about = base_worktree(args.base, tmp)
        if base_src is None:
            same = "is the same" in about
            print(f"AGREE: {'nothing to compare' if same else 'no base'}: {about}")
            return 0 if same else 2
        try:
            dump(base_src / "src", tmp / "base.npz", tmp / "cache-base")
            dump(ROOT / "src", tmp / "head.npz", tmp / "cache-head")
            base, head = np.load(tmp / "base.npz"), np.load(tmp / "head.npz")
            worst: dict[tuple[str, str], float] = {}
            trained: dict[tuple[str, str], bool] = {}
            for key in base.files:
                if key.split("|")[1].startswith("train"):
                    cd = tuple(key.split("|")[0::2])
                    trained[cd] = trained.get(cd, True) and key in head.files and \
                        base[key].tobytes() == head[key].tobytes()
                    continue
                a, b = base[key].astype(np.float64), head[key].astype(np.float64)
                if not np.array_equal(np.isfinite(a), np.isfinite(b)):
                    worst[tuple(key.split("|")[0::2])] = np.inf
                    continue
                fin = np.isfinite(a)
                scale = np.abs(a[fin]).max() if fin.any() else 0.0
                rel = np.abs(a[fin] - b[fin]).max() / scale if scale > 0 else 0.0
                cell, _, dtype, _ = key.split("|")
                worst[(cell, dtype)] = max(worst.get((cell, dtype), 0.0), rel)
        finally:
            git("worktree", "remove", "--force", str(tmp / "base"), check=False)
            git("worktree", "prune", check=False)
    short = about if len(about) <= 60 else about[:57] + "..."
    print(f"head against {short}: largest difference relative to each array's largest entry")
    print("| cell | float64 | float32 |\n|---|--:|--:|")
    for cell in CELLS:
        print(f"| {cell} | {worst[(cell, 'float64')]:.2e} | {worst[(cell, 'float32')]:.2e} |")
    if trained:  # a base from before the trainings were dumped has none
        print("\nshort trainings, the same bits (records of every update, final parameters):")
        print("| cell | float64 | float32 |\n|---|---|---|")
        for cell in CELLS:
            print(f"| {cell} | {'yes' if trained[(cell, 'float64')] else 'no'} | "
                  f"{'yes' if trained[(cell, 'float32')] else 'no'} |")
    bad = [c for (c, d), v in worst.items() if d == "float64" and not v <= args.rtol]
    print(f"AGREE: float64 within {args.rtol:g}" if not bad else
          f"AGREE: FAIL, float64 beyond {args.rtol:g} in {', '.join(sorted(bad))}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
