"""Plain-numpy twins of the adjoint kernels (``adjoint_lognorms`` of
:mod:`gradpath.cells.rnn`, :mod:`gradpath.cells.lstm` and :mod:`gradpath.cells.gru`).

Written to be read, not to be fast: float64 throughout, one batch row at a
time, one step at a time, and every step an explicit Jacobian matrix of the
cell and its transpose applied to the adjoint. The adjoint is renormalised
to unit norm after every step and the log of the scale accumulated, so
ln||dL/dh_t|| is exact at any lag, however far it lies outside float64's range.

Conventions (those of the kernels):

* The states come from the forward kernels (the models' ``states``): ``hs``
  (T+1, B, H) with ``hs[t + 1] = h_t`` and ``hs[0] = h_0``; for the LSTM also
  ``cs`` (T+1, B, H) likewise, ``gates`` (T, B, 4H) the gate activations
  (i, f, g, o) of step t and ``tcs`` (T, B, H) = tanh(c_t).
* ``delta`` is dL/dh_{T-1}; the returned arrays are (T, B) in time order:
  row t holds the log norm of the adjoint at step t, so row T-1 is
  ln||delta||. A zero adjoint gives -inf from that step back.
* RNN: h_t = phi(W_ih x_t + W_hh h_{t-1} + b), so
  dh_t/dh_{t-1} = diag(phi'_t) W_hh with phi' = 1 - h_t^2 (tanh) or
  [h_t > 0] (ReLU), both written in terms of h_t.
* LSTM: the state is (h_t, c_t); ``delta_c`` is dL/dc_{T-1} through the later
  cells only (not through h_{T-1}). The reported cell norm is that of the
  total dL/dc_t = lambda^c_t + o_t (1 - tanh^2 c_t) lambda^h_t (through c_{t+1}
  and through h_t), as BPTT computes it.
* GRU: ``gates`` (T, B, 3H) the activations (r, z, n) of step t and ``hgates``
  (T, B, 3H) whose n block is W_hn h_{t-1} + b_hn, as the GRU's forward
  kernel stores them; h_t = (1 - z) n + z h_{t-1}.
"""

from __future__ import annotations

import math

import numpy as np


def _log_norm(v: np.ndarray) -> float:
    n = float(np.linalg.norm(v))
    return math.log(n) if n > 0.0 else -math.inf


def _renormalised(v: np.ndarray, logscale: float) -> tuple[np.ndarray, float]:
    """v / ||v|| and logscale + ln||v|| (v unchanged when it is zero)."""
    n = float(np.linalg.norm(v))
    if n == 0.0:
        return v, logscale
    return v / n, logscale + math.log(n)


# ---------------------------------------------------------------------------
# one-step Jacobians
# ---------------------------------------------------------------------------
def rnn_jacobian(h: np.ndarray, W_hh: np.ndarray, activation: str) -> np.ndarray:
    """dh_t/dh_{t-1} (H, H) at the step whose new state is ``h`` = h_t."""
    if activation == "tanh":
        dphi = 1.0 - h * h
    elif activation == "relu":
        dphi = (h > 0.0).astype(np.float64)
    else:
        raise ValueError(f"activation: unknown {activation!r}")
    return dphi[:, None] * W_hh


def lstm_jacobian(gates: np.ndarray, tc: np.ndarray, c_prev: np.ndarray,
                  W_hh: np.ndarray) -> np.ndarray:
    """d(h_t, c_t)/d(h_{t-1}, c_{t-1}) (2H, 2H), blocks [[dh/dh, dh/dc], [dc/dh, dc/dc]].

    ``gates`` (4H) are the activations i, f, g, o of step t, ``tc`` = tanh(c_t),
    ``c_prev`` = c_{t-1}.
    """
    H = tc.shape[0]
    i, f, g, o = (gates[k * H:(k + 1) * H] for k in range(4))
    W_i, W_f, W_g, W_o = (W_hh[k * H:(k + 1) * H] for k in range(4))
    # z_t = W_ih x_t + W_hh h_{t-1} + b; every gate depends on h_{t-1} through it.
    di_dh = (i * (1.0 - i))[:, None] * W_i
    df_dh = (f * (1.0 - f))[:, None] * W_f
    dg_dh = (1.0 - g * g)[:, None] * W_g
    do_dh = (o * (1.0 - o))[:, None] * W_o
    # c_t = f * c_{t-1} + i * g
    dc_dh = c_prev[:, None] * df_dh + g[:, None] * di_dh + i[:, None] * dg_dh
    dc_dc = np.diag(f)
    # h_t = o * tanh(c_t)
    dh_dc_t = np.diag(o * (1.0 - tc * tc))  # dh_t/dc_t at fixed o
    dh_dh = tc[:, None] * do_dh + dh_dc_t @ dc_dh
    dh_dc = dh_dc_t @ dc_dc
    return np.block([[dh_dh, dh_dc], [dc_dh, dc_dc]])


def gru_jacobian(gates: np.ndarray, hn: np.ndarray, h_prev: np.ndarray,
                 W_hh: np.ndarray) -> np.ndarray:
    """dh_t/dh_{t-1} (H, H) of a GRU step: ``gates`` (3H) the activations r, z,
    n of step t, ``hn`` = W_hn h_{t-1} + b_hn, ``h_prev`` = h_{t-1}."""
    H = h_prev.shape[0]
    r, z, n = (gates[k * H:(k + 1) * H] for k in range(3))
    W_r, W_z, W_n = (W_hh[k * H:(k + 1) * H] for k in range(3))
    dr_dh = (r * (1.0 - r))[:, None] * W_r
    dz_dh = (z * (1.0 - z))[:, None] * W_z
    # n = tanh(x_n + r * hn): through r and through hn = W_n h + b_hn
    dn_dh = (1.0 - n * n)[:, None] * (hn[:, None] * dr_dh + r[:, None] * W_n)
    # h_t = (1 - z) n + z h_{t-1}
    return np.diag(z) + (h_prev - n)[:, None] * dz_dh + (1.0 - z)[:, None] * dn_dh


def lstm_cell_total(lam: np.ndarray, o: np.ndarray, tc: np.ndarray) -> np.ndarray:
    """Total dL/dc_t from the state adjoint ``lam`` = (dL/dh_t, dL/dc_t through c_{t+1})."""
    H = tc.shape[0]
    return lam[H:] + (o * (1.0 - tc * tc)) * lam[:H]


# ---------------------------------------------------------------------------
# the twins
# ---------------------------------------------------------------------------
def rnn_adjoint_lognorms(hs, W_hh, activation, delta):
    """ln||dL/dh_t|| (T, B) for t = 0..T-1 given dL/dh_{T-1} = ``delta`` (B, H)."""
    hs = np.asarray(hs, np.float64)
    W_hh = np.asarray(W_hh, np.float64)
    delta = np.asarray(delta, np.float64)
    T = hs.shape[0] - 1
    B = delta.shape[0]
    out = np.empty((T, B))
    for b in range(B):
        lam, logscale = delta[b], 0.0  # lam * exp(logscale) = dL/dh_t
        for t in range(T - 1, -1, -1):
            out[t, b] = logscale + _log_norm(lam)
            lam, logscale = _renormalised(lam, logscale)
            J = rnn_jacobian(hs[t + 1, b], W_hh, activation)  # dh_t/dh_{t-1}
            lam = J.T @ lam
    return out


def lstm_adjoint_lognorms(hs, cs, gates, tcs, W_hh, delta_h, delta_c):
    """(ln||dL/dh_t||, ln||dL/dc_t||), each (T, B) for t = 0..T-1, of an LSTM
    given dL/dh_{T-1} = ``delta_h`` and dL/dc_{T-1} through the later cells
    = ``delta_c`` (both (B, H))."""
    cs, gates, tcs, W_hh = (np.asarray(a, np.float64) for a in (cs, gates, tcs, W_hh))
    delta_h = np.asarray(delta_h, np.float64)
    delta_c = np.asarray(delta_c, np.float64)
    T = gates.shape[0]
    B, H = delta_h.shape
    out_h = np.empty((T, B))
    out_c = np.empty((T, B))
    for b in range(B):
        lam, logscale = np.concatenate([delta_h[b], delta_c[b]]), 0.0
        for t in range(T - 1, -1, -1):
            g, tc = gates[t, b], tcs[t, b]
            out_h[t, b] = logscale + _log_norm(lam[:H])
            out_c[t, b] = logscale + _log_norm(lstm_cell_total(lam, g[3 * H:], tc))
            lam, logscale = _renormalised(lam, logscale)
            J = lstm_jacobian(g, tc, cs[t, b], W_hh)  # d(h_t, c_t)/d(h_{t-1}, c_{t-1})
            lam = J.T @ lam
    return out_h, out_c


def gru_adjoint_lognorms(hs, gates, hgates, W_hh, delta):
    """ln||dL/dh_t|| (T, B) for t = 0..T-1 of a GRU given dL/dh_{T-1} = ``delta``."""
    hs, gates, hgates, W_hh = (np.asarray(a, np.float64) for a in (hs, gates, hgates, W_hh))
    delta = np.asarray(delta, np.float64)
    T = gates.shape[0]
    B, H = delta.shape
    out = np.empty((T, B))
    for b in range(B):
        lam, logscale = delta[b], 0.0
        for t in range(T - 1, -1, -1):
            out[t, b] = logscale + _log_norm(lam)
            lam, logscale = _renormalised(lam, logscale)
            J = gru_jacobian(gates[t, b], hgates[t, b, 2 * H:], hs[t, b], W_hh)
            lam = J.T @ lam
    return out
