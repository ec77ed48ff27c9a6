"""Rescaled adjoint propagation for gradient-decay probes.

BPTT multiplies the adjoint by one Jacobian per step, so over thousands of
steps its norm under- or overflows. These kernels renormalise the adjoint
after every step and accumulate the log of the scale, so ln||dL_T/dh_t|| is
exact and finite at any lag (a rate of -0.7 per step over 10,000 steps is
about -7000 in ln, far below float64's range but fine as a number).
"""

from __future__ import annotations

import math

import numpy as np

from .common import activation_grad, matmul_into, row_norm
from .fpenv import jit_entry
from .jit import jit


@jit
def _renormalise(v, logscale):
    """Divide v by its norm; return ln of the true norm (logscale + ln||v||)."""
    n = row_norm(v)
    if n > 0.0 and math.isfinite(n):
        for i in range(v.shape[0]):
            v[i] /= n
        return logscale + math.log(n)
    if n == 0.0:
        return -math.inf
    return math.nan if math.isnan(n) else math.inf


@jit_entry
def rnn_adjoint_lognorms(hs, W_hh, act, delta):
    """ln||dL/dh_t|| for t = T-1..0 given dL/dh_{T-1} = ``delta`` (B, H).

    ``hs`` is (T+1, B, H) from :func:`rnn_forward`. Returns (T, B); row t
    holds ln||delta_t||, with row T-1 = ln||delta||.
    """
    T = hs.shape[0] - 1
    B, H = delta.shape
    d = delta.copy()
    tmp = np.empty((B, H), d.dtype)
    logs = np.zeros(B)
    out = np.empty((T, B))
    for t in range(T - 1, -1, -1):
        for b in range(B):
            lg = _renormalise(d[b], logs[b])
            out[t, b] = lg
            logs[b] = lg if math.isfinite(lg) else logs[b]
            h = hs[t + 1, b]
            for i in range(H):
                tmp[b, i] = d[b, i] * activation_grad(h[i], act)
        matmul_into(tmp, W_hh, d, B)
    return out


@jit_entry
def lstm_adjoint_lognorms(hs, cs, gates, tcs, W_hh, delta_h, delta_c):
    """ln||dL/dh_t|| and ln||dL/dc_t|| for t = T-1..0 of an LSTM.

    ``hs``, ``cs`` (T+1, B, H), ``gates`` (T, B, 4H) activations and ``tcs``
    (T, B, H) come from :func:`lstm_forward`; ``delta_h``, ``delta_c`` are the
    adjoints at step T-1 (the cell adjoint excludes the path through h_{T-1},
    which this kernel adds, as BPTT does). Both adjoints share one scale, so
    their ratio is exact.
    """
    T = hs.shape[0] - 1
    B, H = delta_h.shape
    dh = delta_h.copy()
    dc_carry = delta_c.copy()
    dz = np.empty((B, 4 * H), dh.dtype)
    dc = np.empty(H, dh.dtype)
    logs = np.zeros(B)
    out_h = np.empty((T, B))
    out_c = np.empty((T, B))
    for t in range(T - 1, -1, -1):
        for b in range(B):
            g = gates[t, b]
            tc = tcs[t, b]
            cp = cs[t, b]
            for j in range(H):
                dc[j] = dc_carry[b, j] + dh[b, j] * g[3 * H + j] * (1.0 - tc[j] * tc[j])
            nh = row_norm(dh[b])
            nc = row_norm(dc)
            out_h[t, b] = logs[b] + (math.log(nh) if nh > 0.0 else -math.inf)
            out_c[t, b] = logs[b] + (math.log(nc) if nc > 0.0 else -math.inf)
            s = max(nh, nc)
            if s > 0.0 and math.isfinite(s):
                logs[b] += math.log(s)
            else:
                s = 1.0
            zb = dz[b]
            for j in range(H):
                ig = g[j]
                fg = g[H + j]
                gg = g[2 * H + j]
                og = g[3 * H + j]
                d = dc[j] / s
                zb[j] = d * gg * ig * (1.0 - ig)
                zb[H + j] = d * cp[j] * fg * (1.0 - fg)
                zb[2 * H + j] = d * ig * (1.0 - gg * gg)
                zb[3 * H + j] = dh[b, j] / s * tc[j] * og * (1.0 - og)
                dc_carry[b, j] = d * fg
        matmul_into(dz, W_hh, dh, B)
    return out_h, out_c


@jit_entry
def gru_adjoint_lognorms(hs, gates, hgates, W_hh, delta):
    """ln||dL/dh_t|| for t = T-1..0 of a GRU given dL/dh_{T-1} = ``delta`` (B, H).

    ``hs`` (T+1, B, H), ``gates`` (T, B, 3H) activations (r, z, n) and
    ``hgates`` (whose n block holds W_hn h_{t-1} + b_hn) come from
    :func:`gradpath.kernels.gru.gru_states`. Returns (T, B) as
    :func:`rnn_adjoint_lognorms` does.
    """
    T = hs.shape[0] - 1
    B, H = delta.shape
    d = delta.copy()
    dah = np.empty((B, 3 * H), d.dtype)
    direct = np.empty((B, H), d.dtype)
    logs = np.zeros(B)
    out = np.empty((T, B))
    for t in range(T - 1, -1, -1):
        for b in range(B):
            lg = _renormalise(d[b], logs[b])
            out[t, b] = lg
            logs[b] = lg if math.isfinite(lg) else logs[b]
            g = gates[t, b]
            hn = hgates[t, b]
            hp = hs[t, b]
            for j in range(H):
                r = g[j]
                z = g[H + j]
                n = g[2 * H + j]
                dj = d[b, j]
                dan = dj * (1.0 - z) * (1.0 - n * n)
                dah[b, j] = dan * hn[2 * H + j] * r * (1.0 - r)
                dah[b, H + j] = dj * (hp[j] - n) * z * (1.0 - z)
                dah[b, 2 * H + j] = dan * r
                direct[b, j] = dj * z
        # dL/dh_{t-1} = (dL/dh_t) z + dL/d(W_hh h_{t-1}) W_hh
        matmul_into(dah, W_hh, d, B)
        for b in range(B):
            for j in range(H):
                d[b, j] += direct[b, j]
    return out
