"""Plain-numpy twin of the expRNN kernels: forward pass, loss and BPTT written
out step by step in float64, for tests/test_exprnn.py.

h_t = modReLU(W_ih x_t + W_hh h_{t-1}; b) for t < lengths[b], zero after,
modReLU(z; b) = sign(z) relu(|z| + b), W_hh = expm(A - A^T);
y_t = W_out h_t + b_out. No code is shared with gradpath, nor its method for
the exponential: the cell computes expm of the skew-symmetric X and the
adjoint of its Frechet derivative from an eigendecomposition (the
Daleckii-Krein formula); the twin takes scipy's Pade-based ``expm`` and
``expm_frechet``.
modReLU's derivatives are taken from the pre-activation z here (not from h
as the kernels do): dphi/dz = [|z| + b > 0], dphi/db = sign(z) [|z| + b > 0].
"""

from __future__ import annotations

import numpy as np
import scipy.linalg


def modrelu(z: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sign(z) * np.maximum(np.abs(z) + b, 0.0)


def expm_skew(X: np.ndarray) -> np.ndarray:
    """expm(X) of a real skew-symmetric X (orthogonal): scipy's Pade."""
    return scipy.linalg.expm(np.asarray(X, np.float64))


def frechet_adjoint(X: np.ndarray, G: np.ndarray) -> np.ndarray:
    """L_exp(X^T, G), the adjoint of the Frechet derivative of expm at the
    skew-symmetric X applied to G: sum(G * L_exp(X, E)) = sum(result * E)."""
    return scipy.linalg.expm_frechet(np.asarray(X, np.float64).T, np.asarray(G, np.float64),
                                     compute_expm=False)


def w_hh(A: np.ndarray) -> np.ndarray:
    A = np.asarray(A, np.float64)
    return expm_skew(A - A.T)


def grad_A(A: np.ndarray, dW: np.ndarray) -> np.ndarray:
    """dL/dA from dL/dW_hh through W_hh = expm(A - A^T)."""
    A = np.asarray(A, np.float64)
    dX = frechet_adjoint(A - A.T, dW)
    return dX - dX.T


def _lengths(lengths, T: int, B: int) -> np.ndarray:
    return np.full(B, T) if lengths is None else np.asarray(lengths)


def forward(p: dict, x: np.ndarray, lengths=None, h0=None, W=None):
    """States hs (T+1, B, H) with hs[t+1] = h_t, pre-activations zs (T, B, H)
    and read-outs ys (T, B, O). ``W``: W_hh to use instead of expm(A - A^T)."""
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    x = np.asarray(x, np.float64)
    T, B, _ = x.shape
    H = p["b"].shape[0]
    W = w_hh(p["A"]) if W is None else np.asarray(W, np.float64)
    lengths = _lengths(lengths, T, B)
    hs = np.zeros((T + 1, B, H))
    zs = np.zeros((T, B, H))
    if h0 is not None:
        hs[0] = h0
    for t in range(T):
        z = x[t] @ p["W_ih"].T + hs[t] @ W.T
        live = (t < lengths)[:, None]
        zs[t] = z
        hs[t + 1] = np.where(live, modrelu(z, p["b"]), 0.0)
    ys = hs[1:] @ p["W_out"].T + p["b_out"]
    return hs, zs, ys


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


def loss_and_grads(p: dict, x, target, activation: str = "modrelu", loss: str = "mse",
                   score: str = "last", lengths=None, h0=None) -> dict:
    """Loss, every parameter's gradient (and dL/dW_hh), ||dL/dh_t|| (T, B)
    and dL/dh0 by BPTT. The arguments are every later cell's twin's
    (``tests/naive.py``'s dispatch); ``activation`` is ignored (modReLU is fixed)."""
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    x = np.asarray(x, np.float64)
    T, B, _ = x.shape
    H = p["b"].shape[0]
    lengths = _lengths(lengths, T, B)
    W = w_hh(p["A"])
    hs, zs, ys = forward(p, x, lengths, h0, W)
    loss_v, dy = loss_and_dy(ys, target, loss, score, lengths)
    g = {k: np.zeros_like(v) for k, v in p.items()}
    dW = np.zeros((H, H))
    norms = np.zeros((T, B))
    carry = np.zeros((B, H))
    for t in range(T - 1, -1, -1):
        live = (t < lengths)[:, None]
        dh = np.where(live, dy[t] @ p["W_out"] + carry, 0.0)
        norms[t] = np.linalg.norm(dh, axis=1)
        on = (np.abs(zs[t]) + p["b"] > 0.0) & live
        dz = np.where(on, dh, 0.0)
        g["b"] += (dz * np.sign(zs[t])).sum(axis=0)
        g["W_ih"] += dz.T @ x[t]
        dW += dz.T @ hs[t]
        g["W_out"] += dy[t].T @ hs[t + 1]
        g["b_out"] += dy[t].sum(axis=0)
        carry = dz @ W
    g["A"] = grad_A(p["A"], dW)
    return {"loss": loss_v, "grads": g, "grad_norms": norms, "cell_grad_norms": None,
            "h0_grad": carry, "c0_grad": None, "dW_hh": dW, "hs": hs, "ys": ys}


def loss_only(p: dict, x, target, activation: str = "modrelu", loss: str = "mse",
              score: str = "last", lengths=None, h0=None) -> float:
    """The loss alone, in float64 (``activation`` ignored)."""
    _, _, ys = forward(p, x, lengths, h0)
    return loss_and_dy(ys, target, loss, score, lengths)[0]


def adjoint_lognorms(hs: np.ndarray, W: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """ln||dL/dh_t|| (T, B) from dL/dh_{T-1} = delta, in log space: the adjoint is
    rescaled to unit norm each step and the logs of the scales summed;
    dL/dh_{t-1} = W^T ([h_t != 0] dL/dh_t)."""
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
        d = (d * (hs[t + 1] != 0)) @ W
    return out
