"""Building blocks shared by the RNN and LSTM kernels.

Scalar activations, the per-step recurrent product, robust norms, and the
output head (linear read-out + loss + its gradient) over the scored steps.
"""

from __future__ import annotations

import math

import numpy as np

from .jit import ACT_RELU, LOSS_MSE, SCORE_ALL, SMALL_MATMUL_FLOPS, jit

# Taylor coefficients of tanh(x) = x * P(x^2), used for |x| < 0.1 where the
# exp-based formula loses relative precision. Truncation error < 2e-17.
_T3 = -1.0 / 3.0
_T5 = 2.0 / 15.0
_T7 = -17.0 / 315.0
_T9 = 62.0 / 2835.0
_T11 = -1382.0 / 155925.0
_T13 = 21844.0 / 6081075.0


@jit
def tanh_(x):
    """tanh via one ``exp`` call (libm ``tanh`` costs ~30 ns here, ``exp`` ~5 ns).

    Accurate to a few ulp in float64 at every x, including NaN and +-Inf.
    """
    x = float(x)
    ax = abs(x)
    if ax < 0.1:
        z = x * x
        return x * (1.0 + z * (_T3 + z * (_T5 + z * (_T7 + z * (_T9 + z * (_T11 + z * _T13))))))
    e = math.exp(-2.0 * ax)
    t = (1.0 - e) / (1.0 + e)
    return t if x >= 0.0 else -t


@jit
def sigmoid_(x):
    """Logistic sigmoid, overflow-free: exp(-x) -> inf gives exactly 0."""
    return 1.0 / (1.0 + math.exp(-float(x)))


@jit
def activate(v, act):
    """Apply the activation with integer code ``act`` to a scalar."""
    if act == ACT_RELU:
        return v if v > 0.0 else 0.0 * v  # keeps NaN as NaN
    return tanh_(v)


@jit
def activation_grad(h, act):
    """phi'(a) written in terms of h = phi(a): 1 - h^2 for tanh, [h > 0] for ReLU."""
    if act == ACT_RELU:
        return 1.0 if h > 0.0 else 0.0
    return 1.0 - h * h


@jit
def matmul_into(A, M, out):
    """``out[...] = A @ M`` for C-contiguous 2-D arrays.

    Small products run as an axpy loop that LLVM vectorises without
    reassociation; large ones call BLAS (the call overhead then is noise).
    """
    nb, nk = A.shape
    nn = M.shape[1]
    if nb * nk * nn >= SMALL_MATMUL_FLOPS:
        np.dot(A, M, out)
        return
    for b in range(nb):
        row = out[b]
        for n in range(nn):
            row[n] = 0.0
        for k in range(nk):
            a = A[b, k]
            mk = M[k]
            for n in range(nn):
                row[n] += a * mk[n]


@jit
def row_norm(v):
    """Euclidean norm of a 1-D array, accumulated in float64 and rescaled
    when the plain sum of squares overflows (norms of exploding adjoints
    stay exact instead of turning into inf)."""
    s = 0.0
    for i in range(v.shape[0]):
        d = float(v[i])
        s += d * d
    if math.isfinite(s):
        return math.sqrt(s)
    m = 0.0
    for i in range(v.shape[0]):
        d = abs(float(v[i]))
        if not math.isfinite(d):
            return math.inf if not math.isnan(d) else math.nan
        if d > m:
            m = d
    s = 0.0
    for i in range(v.shape[0]):
        d = float(v[i]) / m
        s += d * d
    return m * math.sqrt(s)


@jit
def scored_positions(lengths, T, score):
    """(t, b, target-row) triples of every scored step, in (t, b) order.

    ``score == SCORE_ALL`` scores every t < lengths[b] against target[t, b];
    otherwise only t = lengths[b] - 1 against target[0, b] (targets of
    ``score="last"`` arrive with a leading axis of length 1).
    """
    B = lengths.shape[0]
    n = 0
    if score == SCORE_ALL:
        for b in range(B):
            n += lengths[b]
    else:
        n = B
    ts = np.empty(n, np.int64)
    bs = np.empty(n, np.int64)
    rows = np.empty(n, np.int64)
    k = 0
    if score == SCORE_ALL:
        for t in range(T):
            for b in range(B):
                if t < lengths[b]:
                    ts[k] = t
                    bs[k] = b
                    rows[k] = t
                    k += 1
    else:
        for b in range(B):
            ts[k] = lengths[b] - 1
            bs[k] = b
            rows[k] = 0
            k += 1
    return ts, bs, rows


@jit
def output_head(hs, ts, bs, rows, W_out, b_out, target_f, target_i, loss_code):
    """Read-out, loss and their gradients over the scored steps.

    ``hs`` is (T+1, B, H) with ``hs[t + 1] = h_t``.  Returns the loss (mean
    over scored (t, b), float64), dW_out, db_out and dL/dh_t injected at the
    scored steps as a dense (T, B, H) array.
    """
    T1, B, H = hs.shape
    O = W_out.shape[0]
    n = ts.shape[0]
    dt = hs.dtype
    hsc = np.empty((n, H), dt)
    for k in range(n):
        hsc[k] = hs[ts[k] + 1, bs[k]]
    y = np.dot(hsc, W_out.T)
    inv_n = 1.0 / n
    loss = 0.0
    for k in range(n):
        yk = y[k]
        if loss_code == LOSS_MSE:
            tgt = target_f[rows[k], bs[k]]
            for o in range(O):
                e = yk[o] + b_out[o] - tgt[o]
                loss += 0.5 * float(e) * float(e)
                yk[o] = e * inv_n
        else:
            m = -math.inf
            for o in range(O):
                yk[o] += b_out[o]
                if yk[o] > m:
                    m = float(yk[o])
            s = 0.0
            for o in range(O):
                s += math.exp(float(yk[o]) - m)
            lse = m + math.log(s)
            c = target_i[rows[k], bs[k]]
            loss += lse - float(yk[c])
            for o in range(O):
                yk[o] = math.exp(float(yk[o]) - lse) * inv_n
            yk[c] -= inv_n
    # y now holds dL/dy
    dW_out = np.dot(y.T, hsc)
    db_out = np.zeros(O, dt)
    for k in range(n):
        for o in range(O):
            db_out[o] += y[k, o]
    dhsc = np.dot(y, W_out)
    dh_direct = np.zeros((T1 - 1, B, H), dt)
    for k in range(n):
        dh_direct[ts[k], bs[k]] = dhsc[k]
    return loss * inv_n, dW_out, db_out, dh_direct


@jit
def input_projection(x, W_ih, b):
    """x @ W_ih.T + b for all steps at once: one GEMM of (T*B, D) by (D, G)."""
    T, B, D = x.shape
    G = W_ih.shape[0]
    xp = np.dot(x.reshape(T * B, D), W_ih.T)
    for r in range(T * B):
        for g in range(G):
            xp[r, g] += b[g]
    return xp.reshape(T, B, G)


@jit
def weight_grads(dpre, hs, x):
    """dW_ih, dW_hh, db as single GEMMs over all (t, b) after the time loop.

    ``dpre`` is dL/d(pre-activation), (T, B, G); ``hs`` (T+1, B, H) holds
    h_{t-1} at index t; ``x`` is (T, B, D).
    """
    T, B, G = dpre.shape
    H = hs.shape[2]
    D = x.shape[2]
    d2 = dpre.reshape(T * B, G)
    hprev = np.ascontiguousarray(hs[:T]).reshape(T * B, H)
    dW_hh = np.dot(d2.T, hprev)
    dW_ih = np.dot(d2.T, x.reshape(T * B, D))
    db = np.zeros(G, dpre.dtype)
    for r in range(T * B):
        for g in range(G):
            db[g] += d2[r, g]
    return dW_ih, dW_hh, db
