"""Plain-numpy twins of the gradpath kernels: the test oracle.

Written to be read, not to be fast (min-char-rnn style): one loop over time
forward, one loop backward, one numpy operation per line. Every array is
computed in the dtype of the inputs, so a float32 twin exists too.

Conventions (README, "The Python API"):

* ``x`` is (T, B, D), time-major.
* RNN:  ``h_t = phi(W_ih x_t + W_hh h_{t-1} + b)``.
* LSTM: ``z_t = W_ih x_t + W_hh h_{t-1} + b`` split into gate blocks i, f, g, o;
  ``c_t = f * c_{t-1} + i * g``, ``h_t = o * tanh(c_t)``.
* GRU: blocks r, z, n of ``W_ih``, ``W_hh``, ``b``;
  ``r = sigmoid(W_ir x_t + W_hr h + b_r)``, ``z = sigmoid(W_iz x_t + W_hz h + b_z)``,
  ``n = tanh(W_in x_t + b_n + r * (W_hn h + b_hn))``, ``h_t = (1 - z) * n + z * h``.
* Read-out ``y_t = W_out h_t + b_out``.
* ``loss`` = mean over the scored (t, b) of ``0.5 * ||y - target||^2`` ("mse")
  or ``-log softmax(y)[target]`` ("xent").
* ``score="last"`` scores t = lengths[b] - 1 against target[b];
  ``score="all"`` scores every t < lengths[b] against target[t, b].
* Ragged lengths: sequence b is alive at t < lengths[b]; its states are zero
  after that (mask m_t = [t < lengths[b]] multiplies h_t and c_t).
* ``grad_norms[t, b]`` = ||dL/dh_t|| (total derivative, including what flows
  back from later steps), ``cell_grad_norms[t, b]`` = ||dL/dc_t||, both 0 at
  t >= lengths[b].
"""

from __future__ import annotations

import importlib

import numpy as np

PARAM_KEYS = ("W_ih", "W_hh", "b", "W_out", "b_out")


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------
def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def phi(a, name):
    """The RNN activation: tanh or ReLU."""
    if name == "tanh":
        return np.tanh(a)
    if name == "relu":
        return np.maximum(a, 0.0)
    raise ValueError(f"activation: unknown {name!r}")


def phi_grad(a, h, name):
    """phi'(a) for the pre-activation a with h = phi(a)."""
    if name == "tanh":
        return 1.0 - h * h
    if name == "relu":
        return (a > 0.0).astype(a.dtype)
    raise ValueError(f"activation: unknown {name!r}")


def alive_mask(lengths, T, B):
    """(T, B) bool: sequence b is alive at step t iff t < lengths[b]."""
    if lengths is None:
        lengths = np.full(B, T)
    lengths = np.asarray(lengths)
    return np.arange(T)[:, None] < lengths[None, :]


def scored_mask(lengths, T, B, score):
    """(T, B) bool: which (t, b) enter the loss."""
    alive = alive_mask(lengths, T, B)
    if score == "all":
        return alive
    if score == "last":
        if lengths is None:
            lengths = np.full(B, T)
        return np.arange(T)[:, None] == (np.asarray(lengths) - 1)[None, :]
    raise ValueError(f"score: unknown {score!r}")


def target_at(target, t, score):
    """The target rows compared with y_t: target[b] ("last") or target[t, b] ("all")."""
    return target if score == "last" else target[t]


def step_loss(y, target, loss, scored):
    """Per-sequence loss at one step and its gradient dl/dy, (B,) and (B, O).

    Unscored rows get loss 0 and gradient 0 (their targets may be garbage).
    """
    B, O = y.shape
    if loss == "mse":
        tgt = np.where(scored[:, None], target, 0.0).astype(y.dtype)
        err = y - tgt
        l = 0.5 * np.sum(err * err, axis=1)
        dy = err
    elif loss == "xent":
        cls = np.where(scored, target, 0)
        m = np.max(y, axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.sum(np.exp(y - m), axis=1))
        l = lse - y[np.arange(B), cls]
        p = np.exp(y - lse[:, None])  # softmax
        dy = p.copy()
        dy[np.arange(B), cls] -= 1.0
    else:
        raise ValueError(f"loss: unknown {loss!r}")
    l = np.where(scored, l, 0.0)
    dy = np.where(scored[:, None], dy, 0.0).astype(y.dtype)
    return l, dy


def _unpack(params):
    return tuple(params[k] for k in PARAM_KEYS)


# ---------------------------------------------------------------------------
# vanilla RNN
# ---------------------------------------------------------------------------
def rnn_forward(params, x, activation="tanh", lengths=None, h0=None):
    """Hidden states (T, B, H) and pre-activations (T, B, H); zero past a length."""
    W_ih, W_hh, b, W_out, b_out = _unpack(params)
    T, B, D = x.shape
    H = W_hh.shape[0]
    alive = alive_mask(lengths, T, B)
    h = np.zeros((B, H), x.dtype) if h0 is None else h0.copy()
    hs = np.zeros((T, B, H), x.dtype)
    pre = np.zeros((T, B, H), x.dtype)
    for t in range(T):
        m = alive[t][:, None]
        a = x[t] @ W_ih.T + h @ W_hh.T + b
        h = phi(a, activation) * m
        hs[t] = h
        pre[t] = a
    return hs, pre


def rnn_loss_and_grads(params, x, target, activation="tanh", loss="mse", score="last",
                       lengths=None, h0=None):
    """Loss, parameter gradients, dL/dh0 and ||dL/dh_t|| of a vanilla RNN."""
    W_ih, W_hh, b, W_out, b_out = _unpack(params)
    T, B, D = x.shape
    H = W_hh.shape[0]
    dt = x.dtype
    alive = alive_mask(lengths, T, B)
    scored = scored_mask(lengths, T, B, score)
    n = int(scored.sum())

    # forward
    h = np.zeros((B, H), dt) if h0 is None else h0.copy()
    hs, as_, dys = {-1: h}, {}, {}  # hs[-1] is h0: hs[t - 1] is the previous state
    total = 0.0
    for t in range(T):
        m = alive[t][:, None]
        a = x[t] @ W_ih.T + hs[t - 1] @ W_hh.T + b
        hs[t] = phi(a, activation) * m
        as_[t] = a
        y = hs[t] @ W_out.T + b_out
        l, dy = step_loss(y, target_at(target, t, score), loss, scored[t])
        total += float(np.sum(l))
        dys[t] = dy / n

    # backward
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    grad_norms = np.zeros((T, B), dt)
    dh_next = np.zeros((B, H), dt)  # dL/dh_t arriving from step t+1
    for t in reversed(range(T)):
        m = alive[t][:, None]
        grads["W_out"] += dys[t].T @ hs[t]
        grads["b_out"] += dys[t].sum(axis=0)
        dh = (dys[t] @ W_out + dh_next) * m
        grad_norms[t] = np.linalg.norm(dh.astype(np.float64), axis=1)
        da = dh * phi_grad(as_[t], hs[t], activation)
        grads["W_ih"] += da.T @ x[t]
        grads["W_hh"] += da.T @ hs[t - 1]
        grads["b"] += da.sum(axis=0)
        dh_next = da @ W_hh

    return {
        "loss": total / n,
        "grads": grads,
        "grad_norms": grad_norms,
        "cell_grad_norms": None,
        "h0_grad": dh_next,
        "c0_grad": None,
    }


# ---------------------------------------------------------------------------
# LSTM
# ---------------------------------------------------------------------------
def lstm_forward(params, x, lengths=None, h0=None, c0=None):
    """Hidden and cell states, (T, B, H) each; zero past a length."""
    W_ih, W_hh, b, W_out, b_out = _unpack(params)
    T, B, D = x.shape
    H = W_hh.shape[1]
    alive = alive_mask(lengths, T, B)
    h = np.zeros((B, H), x.dtype) if h0 is None else h0.copy()
    c = np.zeros((B, H), x.dtype) if c0 is None else c0.copy()
    hs = np.zeros((T, B, H), x.dtype)
    cs = np.zeros((T, B, H), x.dtype)
    for t in range(T):
        m = alive[t][:, None]
        z = x[t] @ W_ih.T + h @ W_hh.T + b
        i = sigmoid(z[:, 0 * H:1 * H])
        f = sigmoid(z[:, 1 * H:2 * H])
        g = np.tanh(z[:, 2 * H:3 * H])
        o = sigmoid(z[:, 3 * H:4 * H])
        c = (f * c + i * g) * m
        h = (o * np.tanh(c)) * m
        hs[t] = h
        cs[t] = c
    return hs, cs


def lstm_loss_and_grads(params, x, target, loss="mse", score="last", lengths=None,
                        h0=None, c0=None):
    """Loss, parameter gradients, dL/dh0, dL/dc0, ||dL/dh_t|| and ||dL/dc_t||."""
    W_ih, W_hh, b, W_out, b_out = _unpack(params)
    T, B, D = x.shape
    H = W_hh.shape[1]
    dt = x.dtype
    alive = alive_mask(lengths, T, B)
    scored = scored_mask(lengths, T, B, score)
    n = int(scored.sum())

    # forward
    h = np.zeros((B, H), dt) if h0 is None else h0.copy()
    c = np.zeros((B, H), dt) if c0 is None else c0.copy()
    hs, cs = {-1: h}, {-1: c}  # hs[-1], cs[-1] are h0, c0
    i_s, f_s, g_s, o_s, tanh_cs, dys = {}, {}, {}, {}, {}, {}
    total = 0.0
    for t in range(T):
        m = alive[t][:, None]
        z = x[t] @ W_ih.T + hs[t - 1] @ W_hh.T + b
        i_s[t] = sigmoid(z[:, 0 * H:1 * H])
        f_s[t] = sigmoid(z[:, 1 * H:2 * H])
        g_s[t] = np.tanh(z[:, 2 * H:3 * H])
        o_s[t] = sigmoid(z[:, 3 * H:4 * H])
        cs[t] = (f_s[t] * cs[t - 1] + i_s[t] * g_s[t]) * m
        tanh_cs[t] = np.tanh(cs[t])
        hs[t] = (o_s[t] * tanh_cs[t]) * m
        y = hs[t] @ W_out.T + b_out
        l, dy = step_loss(y, target_at(target, t, score), loss, scored[t])
        total += float(np.sum(l))
        dys[t] = dy / n

    # backward
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    grad_norms = np.zeros((T, B), dt)
    cell_grad_norms = np.zeros((T, B), dt)
    dh_next = np.zeros((B, H), dt)  # dL/dh_t arriving from step t+1
    dc_next = np.zeros((B, H), dt)  # dL/dc_t arriving from step t+1
    for t in reversed(range(T)):
        m = alive[t][:, None]
        i, f, g, o = i_s[t], f_s[t], g_s[t], o_s[t]
        grads["W_out"] += dys[t].T @ hs[t]
        grads["b_out"] += dys[t].sum(axis=0)
        dh = (dys[t] @ W_out + dh_next) * m
        dc = (dc_next + dh * o * (1.0 - tanh_cs[t] ** 2)) * m
        grad_norms[t] = np.linalg.norm(dh.astype(np.float64), axis=1)
        cell_grad_norms[t] = np.linalg.norm(dc.astype(np.float64), axis=1)
        di = dc * g
        df = dc * cs[t - 1]
        dg = dc * i
        do = dh * tanh_cs[t]
        dz = np.concatenate([
            di * i * (1.0 - i),
            df * f * (1.0 - f),
            dg * (1.0 - g * g),
            do * o * (1.0 - o),
        ], axis=1)
        grads["W_ih"] += dz.T @ x[t]
        grads["W_hh"] += dz.T @ hs[t - 1]
        grads["b"] += dz.sum(axis=0)
        dh_next = dz @ W_hh
        dc_next = dc * f

    return {
        "loss": total / n,
        "grads": grads,
        "grad_norms": grad_norms,
        "cell_grad_norms": cell_grad_norms,
        "h0_grad": dh_next,
        "c0_grad": dc_next,
    }


# ---------------------------------------------------------------------------
# GRU
# ---------------------------------------------------------------------------
def gru_forward(params, x, lengths=None, h0=None):
    """Hidden states (T, B, H); zero past a length."""
    W_ih, W_hh, b, b_hn = params["W_ih"], params["W_hh"], params["b"], params["b_hn"]
    T, B, D = x.shape
    H = W_hh.shape[1]
    alive = alive_mask(lengths, T, B)
    h = np.zeros((B, H), x.dtype) if h0 is None else h0.copy()
    hs = np.zeros((T, B, H), x.dtype)
    for t in range(T):
        m = alive[t][:, None]
        ax = x[t] @ W_ih.T + b
        ah = h @ W_hh.T
        r = sigmoid(ax[:, :H] + ah[:, :H])
        z = sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H])
        n = np.tanh(ax[:, 2 * H:] + r * (ah[:, 2 * H:] + b_hn))
        h = ((1.0 - z) * n + z * h) * m
        hs[t] = h
    return hs


def gru_loss_and_grads(params, x, target, loss="mse", score="last", lengths=None, h0=None):
    """Loss, parameter gradients (b_hn included), dL/dh0 and ||dL/dh_t||."""
    W_ih, W_hh, b, b_hn = params["W_ih"], params["W_hh"], params["b"], params["b_hn"]
    W_out, b_out = params["W_out"], params["b_out"]
    T, B, D = x.shape
    H = W_hh.shape[1]
    dt = x.dtype
    alive = alive_mask(lengths, T, B)
    scored = scored_mask(lengths, T, B, score)
    n_scored = int(scored.sum())

    # forward
    hs = {-1: np.zeros((B, H), dt) if h0 is None else h0.copy()}
    r_s, z_s, n_s, hn_s, dys = {}, {}, {}, {}, {}
    total = 0.0
    for t in range(T):
        m = alive[t][:, None]
        ax = x[t] @ W_ih.T + b
        ah = hs[t - 1] @ W_hh.T
        r_s[t] = sigmoid(ax[:, :H] + ah[:, :H])
        z_s[t] = sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H])
        hn_s[t] = ah[:, 2 * H:] + b_hn
        n_s[t] = np.tanh(ax[:, 2 * H:] + r_s[t] * hn_s[t])
        hs[t] = ((1.0 - z_s[t]) * n_s[t] + z_s[t] * hs[t - 1]) * m
        y = hs[t] @ W_out.T + b_out
        l, dy = step_loss(y, target_at(target, t, score), loss, scored[t])
        total += float(np.sum(l))
        dys[t] = dy / n_scored

    # backward
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    grad_norms = np.zeros((T, B), dt)
    dh_next = np.zeros((B, H), dt)  # dL/dh_t arriving from step t+1
    for t in reversed(range(T)):
        m = alive[t][:, None]
        r, z, n, hn = r_s[t], z_s[t], n_s[t], hn_s[t]
        grads["W_out"] += dys[t].T @ hs[t]
        grads["b_out"] += dys[t].sum(axis=0)
        dh = (dys[t] @ W_out + dh_next) * m
        grad_norms[t] = np.linalg.norm(dh.astype(np.float64), axis=1)
        dn = dh * (1.0 - z)
        dz = dh * (hs[t - 1] - n)
        dan = dn * (1.0 - n * n)  # dL/d(pre-activation of n)
        dr = dan * hn
        dar = dr * r * (1.0 - r)
        daz = dz * z * (1.0 - z)
        dax = np.concatenate([dar, daz, dan], axis=1)  # dL/d(W_ih x_t + b)
        dah = np.concatenate([dar, daz, dan * r], axis=1)  # dL/d(W_hh h_{t-1} + [0,0,b_hn])
        grads["W_ih"] += dax.T @ x[t]
        grads["b"] += dax.sum(axis=0)
        grads["W_hh"] += dah.T @ hs[t - 1]
        grads["b_hn"] += dah[:, 2 * H:].sum(axis=0)
        dh_next = dh * z + dah @ W_hh

    return {
        "loss": total / n_scored,
        "grads": grads,
        "grad_norms": grad_norms,
        "cell_grad_norms": None,
        "h0_grad": dh_next,
        "c0_grad": None,
    }


# ---------------------------------------------------------------------------
# forward-only loss for finite differences
# ---------------------------------------------------------------------------
def loss_only(cell, params, x, target, activation="tanh", loss="mse", score="last",
              lengths=None, h0=None, c0=None):
    """The loss alone, in float64, for central finite differences.

    ``cell`` is "rnn", "lstm" or "gru"; ``activation`` is ignored for the
    gated cells.
    """
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    x = np.asarray(x, dtype=np.float64)
    T, B, _ = x.shape
    if cell == "rnn":
        hs, _ = rnn_forward(p, x, activation, lengths,
                            None if h0 is None else np.asarray(h0, np.float64))
    elif cell == "lstm":
        hs, _ = lstm_forward(p, x, lengths,
                             None if h0 is None else np.asarray(h0, np.float64),
                             None if c0 is None else np.asarray(c0, np.float64))
    elif cell == "gru":
        hs = gru_forward(p, x, lengths, None if h0 is None else np.asarray(h0, np.float64))
    else:
        raise ValueError(f"cell: unknown {cell!r}")
    scored = scored_mask(lengths, T, B, score)
    total = 0.0
    for t in range(T):
        y = hs[t] @ p["W_out"].T + p["b_out"]
        l, _ = step_loss(y, target_at(target, t, score), loss, scored[t])
        total += float(np.sum(l))
    return total / int(scored.sum())


def loss_and_grads(cell, params, x, target, activation="tanh", loss="mse", score="last",
                   lengths=None, h0=None, c0=None):
    """Dispatch to the twin of ``cell``: this module's for the first cells, a
    later cell's in ``tests/naive_<cell>.py`` (its ``loss_and_grads``, with
    the same arguments but ``c0``)."""
    if cell == "rnn":
        return rnn_loss_and_grads(params, x, target, activation, loss, score, lengths, h0)
    if cell == "lstm":
        return lstm_loss_and_grads(params, x, target, loss, score, lengths, h0, c0)
    if cell == "gru":
        return gru_loss_and_grads(params, x, target, loss, score, lengths, h0)
    try:
        twin = importlib.import_module(f"naive_{cell}")
    except ModuleNotFoundError:
        raise ValueError(f"cell: no numpy twin of {cell!r} (tests/naive_{cell}.py)") from None
    return twin.loss_and_grads(params, x, target, activation, loss, score, lengths, h0)
