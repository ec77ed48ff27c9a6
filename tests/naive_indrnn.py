"""Plain-numpy twin of the IndRNN kernels: forward pass, loss and BPTT written
out step by step in float64, for tests/test_indrnn.py.

h_t = phi(W_ih x_t + u * h_{t-1} + b) for t < lengths[b], zero after;
y_t = W_out h_t + b_out. No code is shared with gradpath.
"""

from __future__ import annotations

import numpy as np


def phi(a: np.ndarray, activation: str) -> np.ndarray:
    return np.maximum(a, 0.0) if activation == "relu" else np.tanh(a)


def phi_grad(h: np.ndarray, activation: str) -> np.ndarray:
    """phi'(a) from h = phi(a)."""
    return (h > 0).astype(h.dtype) if activation == "relu" else 1.0 - h * h


def _lengths(lengths, T: int, B: int) -> np.ndarray:
    return np.full(B, T) if lengths is None else np.asarray(lengths)


def forward(p: dict, x: np.ndarray, activation: str, lengths=None, h0=None):
    """States hs (T+1, B, H) with hs[t+1] = h_t, and read-outs ys (T, B, O)."""
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    x = np.asarray(x, np.float64)
    T, B, _ = x.shape
    H = p["u"].shape[0]
    lengths = _lengths(lengths, T, B)
    hs = np.zeros((T + 1, B, H))
    if h0 is not None:
        hs[0] = h0
    for t in range(T):
        a = x[t] @ p["W_ih"].T + p["b"] + p["u"] * hs[t]
        live = (t < lengths)[:, None]
        hs[t + 1] = np.where(live, phi(a, activation), 0.0)
    ys = hs[1:] @ p["W_out"].T + p["b_out"]
    return hs, ys


def _scored(T: int, B: int, lengths: np.ndarray, score: str) -> np.ndarray:
    """(T, B) mask of the scored steps."""
    t = np.arange(T)[:, None]
    if score == "last":
        return t == (lengths - 1)[None, :]
    return t < lengths[None, :]


def loss_and_dy(ys, target, loss: str, score: str, lengths):
    """Mean loss over the scored steps and dL/dy (T, B, O)."""
    T, B, O = ys.shape
    lengths = _lengths(lengths, T, B)
    mask = _scored(T, B, lengths, score)
    n = mask.sum()
    total = 0.0
    dy = np.zeros_like(ys)
    for t in range(T):
        for b in range(B):
            if not mask[t, b]:
                continue
            y = ys[t, b]
            tgt = target[b] if score == "last" else target[t, b]
            if loss == "mse":
                e = y - tgt
                total += 0.5 * float(e @ e)
                dy[t, b] = e / n
            else:
                m = y.max()
                lse = m + np.log(np.exp(y - m).sum())
                total += lse - y[tgt]
                g = np.exp(y - lse)
                g[tgt] -= 1.0
                dy[t, b] = g / n
    return total / n, dy


def loss_and_grads(p: dict, x, target, activation: str, loss: str = "mse",
                   score: str = "last", lengths=None, h0=None) -> dict:
    """Loss, every parameter's gradient, ||dL/dh_t|| (T, B) and dL/dh0 by BPTT."""
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    x = np.asarray(x, np.float64)
    T, B, D = x.shape
    H = p["u"].shape[0]
    lengths = _lengths(lengths, T, B)
    hs, ys = forward(p, x, activation, lengths, h0)
    loss_v, dy = loss_and_dy(ys, target, loss, score, lengths)
    g = {k: np.zeros_like(v) for k, v in p.items()}
    norms = np.zeros((T, B))
    carry = np.zeros((B, H))
    for t in range(T - 1, -1, -1):
        live = (t < lengths)[:, None]
        dh = np.where(live, dy[t] @ p["W_out"] + carry, 0.0)
        norms[t] = np.linalg.norm(dh, axis=1)
        da = dh * phi_grad(hs[t + 1], activation)
        g["u"] += (da * hs[t]).sum(axis=0)
        g["b"] += da.sum(axis=0)
        g["W_ih"] += da.T @ x[t]
        g["W_out"] += dy[t].T @ hs[t + 1]
        g["b_out"] += dy[t].sum(axis=0)
        carry = da * p["u"]
    return {"loss": loss_v, "grads": g, "grad_norms": norms, "h0_grad": carry, "hs": hs,
            "ys": ys}


def loss_only(p: dict, x, target, activation: str, loss: str = "mse", score: str = "last",
              lengths=None, h0=None) -> float:
    _, ys = forward(p, x, activation, lengths, h0)
    return loss_and_dy(ys, target, loss, score, lengths)[0]


def adjoint_lognorms(hs: np.ndarray, u: np.ndarray, activation: str,
                     delta: np.ndarray) -> np.ndarray:
    """ln||dL/dh_t|| (T, B) from dL/dh_{T-1} = delta, in log space: the adjoint is
    rescaled to unit norm each step and the logs of the scales summed."""
    T = hs.shape[0] - 1
    d = np.array(delta, np.float64)
    logs = np.zeros(d.shape[0])
    out = np.empty((T, d.shape[0]))
    for t in range(T - 1, -1, -1):
        n = np.linalg.norm(d, axis=1)
        with np.errstate(divide="ignore"):
            out[t] = logs + np.log(n)
        ok = n > 0
        logs = np.where(ok, out[t], logs)
        d[ok] /= n[ok, None]
        d = d * phi_grad(hs[t + 1], activation) * u
    return out
