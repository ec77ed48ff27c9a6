"""Dump the numbers of every existing cell to an .npz, to compare two commits bit for bit.

A refactor must leave every number as it is. Run this script in two trees
(the commit before the change, e.g. a ``git worktree``, and the change) and
compare::

    python scripts/same_numbers.py dump before.npz        # in the old tree
    python scripts/same_numbers.py dump after.npz         # in the new tree
    python scripts/same_numbers.py compare before.npz after.npz

It covers the public API only: loss, gradients, gradient norms, dL/dh0 (and
dL/dc0) of every cell, activation, dtype, loss, scoring mode, ragged or not,
at a size run on the calling thread and at one split over threads; the
forward states; probe decay curves and Lyapunov exponents; and short
training runs (records, decay curves, lambda_1). ``compare`` counts the
values compared and exits 1 on the first difference in bits.
"""

from __future__ import annotations

import sys

import numpy as np

import gradpath as gp
from gradpath.probe import probe
from gradpath.train import TrainConfig, train

#: The cells (and their activations) present before the refactor.
MODELS = (("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh"))
SIZES = ((7, 5, 3, 6, 2), (40, 64, 5, 48, 3))  # (T, B, D, H, O): serial, split over threads


def _model(cell: str, act: str, D: int, H: int, O: int):
    if cell == "rnn":
        return gp.RNN(D, H, O, act)
    return {"lstm": gp.LSTM, "gru": gp.GRU}[cell](D, H, O)


def dump(path: str) -> None:
    out: dict[str, np.ndarray] = {}
    for cell, act in MODELS:
        for dt in (np.float64, np.float32):
            for T, B, D, H, O in SIZES:
                m = _model(cell, act, D, H, O)
                p = m.init_params("orthogonal", gain=1.1, seed=3, dtype=dt)
                rng = np.random.default_rng(7)
                x = rng.standard_normal((T, B, D)).astype(dt)
                for ragged in (False, True):
                    lengths = rng.integers(1, T + 1, B) if ragged else None
                    for loss in ("mse", "xent"):
                        for score in ("last", "all"):
                            lead = (B,) if score == "last" else (T, B)
                            tgt = (rng.standard_normal((*lead, O)).astype(dt) if loss == "mse"
                                   else rng.integers(0, O, lead))
                            r = m.loss_and_grads(p, x, tgt, loss, score, lengths)
                            key = f"{cell}-{act}/{np.dtype(dt)}/T{T}/r{ragged}/{loss}/{score}"
                            out[f"{key}/loss"] = np.array(r.loss)
                            for k, g in r.grads.items():
                                out[f"{key}/d{k}"] = g
                            out[f"{key}/gnorm"] = r.grad_norms
                            out[f"{key}/dh0"] = r.h0_grad
                            if r.cell_grad_norms is not None:
                                out[f"{key}/cnorm"] = r.cell_grad_norms
                                out[f"{key}/dc0"] = r.c0_grad
                    f = m.forward(p, x, lengths)
                    key = f"{cell}-{act}/{np.dtype(dt)}/T{T}/r{ragged}/forward"
                    out[f"{key}/h"] = f.h
                    out[f"{key}/y"] = f.y
                    if f.c is not None:
                        out[f"{key}/c"] = f.c
        for init in ("identity", "gaussian", "orthogonal"):
            r = probe(cell=cell, activation=act, init=init, gain=1.2, hidden=24, seq_len=60,
                      batch=3, burn_in=20, lyapunov_k=3, seeds=(0, 1), bias_std=0.1)
            key = f"probe/{cell}-{act}/{init}"
            out[f"{key}/curve"] = r.log10_grad_norm
            out[f"{key}/rate"] = np.array(r.decay_rate)
            out[f"{key}/lyapunov"] = r.lyapunov
            if r.log10_cell_grad_norm is not None:
                out[f"{key}/cell_curve"] = r.log10_cell_grad_norm
        for dt in ("float64", "float32"):
            for task in ("adding", "copy"):
                c = TrainConfig(task=task, seq_len=12, cell=cell, activation=act, hidden=16,
                                batch=8, steps=30, eval_every=10, dtype=dt, seed=1)
                r = train(c)
                key = f"train/{cell}-{act}/{dt}/{task}"
                for k, v in r.records.items():
                    out[f"{key}/{k}"] = np.asarray(v, dtype=np.float64)
                out[f"{key}/eval"] = np.asarray(r.evals["eval_metric"])
                out[f"{key}/lyap0"] = np.array(r.lyapunov_init)
                out[f"{key}/decay0"] = np.array(r.decay_rate_init)
                for i, cv in enumerate(r.curves):
                    out[f"{key}/curve{i}"] = cv["log10_grad_norm"]
    np.savez(path, **out)
    print(f"{path}: {len(out)} arrays, {sum(v.size for v in out.values())} values")


def compare(a_path: str, b_path: str) -> int:
    a, b = np.load(a_path), np.load(b_path)
    missing = sorted(set(a.files) ^ set(b.files))
    if missing:
        print(f"arrays in one file only: {missing[:10]}")
        return 1
    n = 0
    bad = []
    for k in a.files:
        x, y = a[k], b[k]
        n += x.size
        if x.shape != y.shape or x.dtype != y.dtype or x.tobytes() != y.tobytes():
            bad.append(k)
    print(f"{len(a.files)} arrays, {n} values compared; {len(bad)} arrays differ")
    for k in bad[:20]:
        print("  differs:", k)
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["dump"] and len(sys.argv) == 3:
        dump(sys.argv[2])
    elif sys.argv[1:2] == ["compare"] and len(sys.argv) == 4:
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)
