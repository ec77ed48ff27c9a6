"""Where a forward + BPTT call spends its time: the GEMMs it cannot avoid,
timed alone with the same BLAS and split, against the whole call.

    python bench/profile_step.py [--dtype float32] [--cases lstm:32,128,2,200 ...]

For each case (cell:B,H,D,T; mse over every step, tanh, as in the peers
table) it times, median of ``--repeat`` calls:

- the whole call (``loss_and_grads``);
- the recurrent products: 2T GEMMs (forward h @ W_hh^T and backward
  delta @ W_hh) of B/2 rows each on one BLAS thread, which is what each of
  the kernel's two row-block threads does;
- the weight gradient: one GEMM of (G·H x T·B) @ (T·B x H) split by column
  blocks over the two threads, i.e. half of it on one thread;
- the rest: elementwise gate math and transcendentals, the loss and its
  per-step injection, thread hand-offs.

``--updates`` adds the training update's overhead: ``Trainer.update``
(kernel call + clipping + Adam + bookkeeping) and ``Trainer.batch`` (the
adding problem's batch) against the kernel call alone on the same batch.

The GEMM rows use numpy's matmul (the same OpenBLAS the kernels call), so
they are a floor for what the kernel's BLAS calls cost, not a trace of them.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

import gradpath as gp
from gradpath.models import make_model
from gradpath.vocab import CELLS

DEFAULT_CASES = ("lstm:32,128,2,200", "lstm:64,256,2,1000", "lstm:16,512,8,100",
                 "rnn:16,512,8,100", "rnn:64,256,2,1000", "gru:32,128,2,200",
                 "gru:64,256,2,1000", "gru:16,512,8,100")


def _median(fn, repeat: int) -> float:
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def profile(case: str, dtype: str, repeat: int) -> dict:
    cell, dims = case.split(":")
    B, H, D, T = (int(v) for v in dims.split(","))
    dt = np.dtype(dtype)
    rng = np.random.default_rng(0)
    model = make_model(cell, D, H, 1, "tanh")
    G = model.gates  # gate blocks: rows of W_hh per hidden unit
    params = model.init_params(seed=0, dtype=dt)
    x = rng.uniform(size=(T, B, D)).astype(dt)
    target = np.zeros((T, B, 1), dt)
    whole = _median(lambda: model.loss_and_grads(params, x, target, loss="mse", score="all"),
                    repeat)
    rows = max(1, B // 2)
    h = rng.standard_normal((rows, H)).astype(dt)
    d = rng.standard_normal((rows, G * H)).astype(dt)
    W = rng.standard_normal((G * H, H)).astype(dt)
    A = rng.standard_normal((G * H, T * B)).astype(dt)
    S = rng.standard_normal((T * B, max(1, H // 2))).astype(dt)
    with threadpool_limits(1):
        fwd = _median(lambda: [h @ W.T for _ in range(T)], repeat)
        bwd = _median(lambda: [d @ W for _ in range(T)], repeat)
        wgrad = _median(lambda: A @ S, repeat)
    rest = whole - fwd - bwd - wgrad
    return dict(case=case, dtype=dtype, whole=whole, fwd=fwd, bwd=bwd, wgrad=wgrad, rest=rest)


def update_overhead(cell: str, B: int, H: int, T: int, dtype: str, repeat: int) -> dict:
    from gradpath.train import TrainConfig, Trainer

    cfg = TrainConfig(task="adding", seq_len=T, cell=cell, activation="relu",
                      init="orthogonal", clip="norm", clip_threshold=1.0, optimizer="adam",
                      lr=1e-3, hidden=H, batch=B, dtype=dtype)
    tr = Trainer(cfg)
    b = tr.batch(1)
    kernel = _median(lambda: tr.model.loss_and_grads(tr.params, b.x, b.target, "mse", "last"),
                     repeat)
    update = _median(lambda: tr.update(b), repeat)
    batch = _median(lambda: tr.batch(2), repeat)
    return dict(case=f"update {cell} B{B} H{H} T{T}", dtype=dtype, kernel=kernel,
                update=update, batch=batch)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES))
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--updates", action="store_true",
                    help="also the training update's overhead over the kernel call")
    args = ap.parse_args(argv)
    gp.warmup()
    print("| case | dtype | call ms | recurrent fwd | recurrent bwd | weight grad | rest |")
    print("|---|---|--:|--:|--:|--:|--:|")
    for case in args.cases:
        r = profile(case, args.dtype, args.repeat)
        pct = {k: 100 * r[k] / r["whole"] for k in ("fwd", "bwd", "wgrad", "rest")}
        print(f"| {r['case']} | {r['dtype']} | {r['whole']:.3g} | {r['fwd']:.3g} "
              f"({pct['fwd']:.0f} %) | {r['bwd']:.3g} ({pct['bwd']:.0f} %) | {r['wgrad']:.3g} "
              f"({pct['wgrad']:.0f} %) | {r['rest']:.3g} ({pct['rest']:.0f} %) |")
    if not args.updates:
        return
    print("\n| update case | dtype | kernel ms | update ms | overhead | batch ms |")
    print("|---|---|--:|--:|--:|--:|")
    for cell in CELLS:
        for B, H, T in ((16, 64, 100), (16, 128, 400), (64, 128, 100)):
            r = update_overhead(cell, B, H, T, args.dtype, args.repeat)
            over = (r["update"] - r["kernel"]) / r["kernel"]
            print(f"| {r['case']} | {r['dtype']} | {r['kernel']:.3g} | {r['update']:.3g} | "
                  f"{over:+.0%} | {r['batch']:.3g} |")


if __name__ == "__main__":
    main()
