"""The lecture's own exercise: a small RNN learns to predict a sine wave.

Each training sequence is a sine of random frequency and phase with a little
noise; at every step the network predicts the next value. Training is plain
gradient descent with Adam, written out here with gradpath's public API
(``gp.RNN``, ``loss_and_grads``, ``clip_by_norm``), so every number is
visible: the loss, and the gradient norm ||dL/dh_t|| at every time step
that backpropagation through time produces.

    python examples/sine_wave.py                  # writes sine_wave.png here
    python examples/sine_wave.py --steps 300 --out /tmp/sine.png

The figure shows (top) a held-out sequence and the network's one-step
predictions, (bottom left) the training loss against the baseline of
repeating the last value, and (bottom right) ||dL/dh_t|| over the sequence
at the first and the last update.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

import gradpath as gp


def sine_batch(rng: np.random.Generator, T: int, B: int, noise: float = 0.05):
    """B noisy sines of T + 1 steps: inputs x_0..x_{T-1}, targets x_1..x_T."""
    w = rng.uniform(0.1, 0.6, size=B)
    phi = rng.uniform(0.0, 2 * math.pi, size=B)
    t = np.arange(T + 1)[:, None]
    s = np.sin(w * t + phi) + noise * rng.standard_normal((T + 1, B))
    return s[:T, :, None], s[1:, :, None]


def train(hidden: int = 16, T: int = 50, batch: int = 32, steps: int = 400, lr: float = 0.01,
          seed: int = 0) -> dict:
    """Train a tanh RNN with Adam and norm clipping; return what the figure shows."""
    rng = np.random.default_rng(seed)
    model = gp.RNN(input_size=1, hidden_size=hidden, output_size=1, activation="tanh")
    params = model.init_params(init="orthogonal", gain=1.0, seed=seed)
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    losses, norms = [], []
    for step in range(1, steps + 1):
        x, y = sine_batch(rng, T, batch)
        res = model.loss_and_grads(params, x, y, loss="mse", score="all")
        grads = gp.clip_by_norm(res.grads, 1.0).grads
        for k in params:  # Adam
            m[k] = 0.9 * m[k] + 0.1 * grads[k]
            v[k] = 0.999 * v[k] + 0.001 * grads[k] ** 2
            m_hat, v_hat = m[k] / (1 - 0.9**step), v[k] / (1 - 0.999**step)
            params[k] = params[k] - lr * m_hat / (np.sqrt(v_hat) + 1e-8)
        losses.append(res.loss)
        if step in (1, steps):
            norms.append(res.grad_norms.mean(axis=1))
    x, y = sine_batch(np.random.default_rng(seed + 1), T, 1)
    pred = model.forward(params, x).y
    baseline = float(np.mean((y - x) ** 2))  # repeat the last value
    return {"losses": np.array(losses), "norms": norms, "x": x[:, 0, 0], "y": y[:, 0, 0],
            "pred": pred[:, 0, 0], "baseline": baseline,
            "test_mse": float(np.mean((pred - y) ** 2))}


def plot(out: dict, path: Path) -> None:
    """The prediction, the training loss and the gradient norms, in one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplot_mosaic([["top", "top"], ["loss", "norm"]], figsize=(10, 7),
                                 layout="constrained")
    top, left, right = ax["top"], ax["loss"], ax["norm"]
    top.plot(out["y"], "k-", lw=1.5, label="next value (target)")
    top.plot(out["pred"], "o", ms=3, color="C1", label="RNN prediction")
    top.set(xlabel="time step t", ylabel="value",
            title=f"held-out sine: MSE {out['test_mse']:.4f} "
                  f"(repeating the last value: {out['baseline']:.4f})")
    top.legend(loc="upper right")
    left.semilogy(out["losses"], color="C0", label="training loss (MSE)")
    left.axhline(out["baseline"], color="grey", ls="--", label="repeat-last baseline")
    left.set(xlabel="update", ylabel="loss")
    left.legend()
    for norms, label in zip(out["norms"], ("first update", "last update"), strict=True):
        right.semilogy(norms, label=label)
    right.set(xlabel="time step t", ylabel="mean ||dL/dh_t||",
              title="gradient norm through time (BPTT)")
    right.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Train, print the held-out error against the baseline, and save the figure."""
    ap = argparse.ArgumentParser(description="A small RNN learns to predict a sine wave.")
    ap.add_argument("--steps", type=int, default=400, help="Adam updates (400)")
    ap.add_argument("--hidden", type=int, default=16, help="hidden units (16)")
    ap.add_argument("--out", type=Path, default=Path("sine_wave.png"), help="figure path")
    args = ap.parse_args(argv)
    out = train(hidden=args.hidden, steps=args.steps)
    plot(out, args.out)
    print(f"held-out MSE {out['test_mse']:.4f}, repeating the last value "
          f"{out['baseline']:.4f}; figure: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
