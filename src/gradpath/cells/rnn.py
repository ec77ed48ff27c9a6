"""Vanilla (Elman) RNN: h_t = phi(W_ih x_t + W_hh h_{t-1} + b), phi tanh or ReLU.

The kernels (the roles of :mod:`gradpath.cells.pipeline`): the forward pass
keeps the states h_t (T+1, B, H), what BPTT needs. The loss's dL/dh_t is
injected step by step from dL/dy_t (T, B, O), and the weight gradients are
accumulated during the backward pass, a chunk of steps at a time, from small
ring buffers, per row block: no other (T, B, H) array is stored.
"""

from __future__ import annotations

import numpy as np

from ..kernels.common import (
    activate_row,
    activation_grad,
    add_drive,
    add_norm_scale,
    inject,
    renormalise,
)
from ..kernels.fpenv import jit_entry
from ..kernels.gemm import grad_product, pack, product
from ..kernels.jit import jit
from . import pipeline
from .base import ACTIVATIONS, Cell, Model
from .pipeline import (
    Kernels,
    adjoints_h,
    no_arrays,
    no_columns,
    parts_done,
    prepare_dense,
    start_h,
    step_product,
)

#: Rows (steps x block rows) per weight-gradient GEMM in the backward pass,
#: and the most steps a chunk may hold as a share of T (1/16: the ring buffers
#: stay small next to the stored states).
CHUNK_ROWS = 256
CHUNK_SHARE = 16


@jit
def forward_rows(x, lengths, act, w, st, cols, b0, b1):
    """Every step of the forward pass for batch rows ``b0 <= b < b1`` (the
    recurrent product: ``cols``' share, :func:`pipeline.step_product`)."""
    w_t, w_ih_t, b, _ = w
    hs = st[0]
    T, B, _ = x.shape
    n = b1 - b0
    shared = cols[6]  # the pre-activations a_t (B, H)
    a = shared[b0:b1]
    tmp = np.empty_like(a)
    passed = 0
    for t in range(T):
        passed = step_product(hs[t], w_t, shared, cols, passed, t)
        add_drive(a, x[t, b0:b1], w_ih_t, b, tmp, B)
        for r in range(n):
            bb = b0 + r
            h = hs[t + 1, bb]
            if t < lengths[bb]:
                activate_row(a[r], h, act)
            else:
                h[:] = 0.0


@jit
def grad_parts(x, st):
    """A row block's own dW_ih, dW_hh, db, accumulated during its backward pass."""
    H = st[0].shape[2]
    D = x.shape[2]
    return np.zeros((H, D), x.dtype), np.zeros((H, H), x.dtype), np.zeros(H, x.dtype)


@jit
def _accumulate(dbuf, hbuf, xbuf, k, dW_ih, dW_hh, db):
    """Add the first ``k`` buffered steps to the weight gradients (one product each)."""
    _, n, H = dbuf.shape
    D = xbuf.shape[2]
    rows = k * n
    d2 = dbuf.reshape(-1, H)
    grad_product(d2[:rows], hbuf.reshape(-1, H)[:rows], dW_hh, 0, H, 0, H)
    grad_product(d2[:rows], xbuf.reshape(-1, D)[:rows], dW_ih, 0, H, 0, D)
    for r in range(rows):
        dr = d2[r]
        for j in range(H):
            db[j] += dr[j]


@jit
def backward_rows(dy, W_out, x, lengths, act, w, st, carry, norms, part, cols, b0, b1):
    """BPTT for batch rows ``b0 <= b < b1``: ``carry[0]`` ends as dL/dh0; this
    block's dL/dW_ih (H, D), dL/dW_hh (H, H) and dL/db are added to ``part``.
    dL/da_t of every row meets in ``cols``' shared array for the product."""
    W_hh = w[3]  # packed
    hs = st[0]
    c = carry[0]
    gnorm = norms[0]
    dW_ih, dW_hh, db = part
    T, B, D = x.shape
    H = hs.shape[2]
    n = b1 - b0
    K = max(1, min(-(-CHUNK_ROWS // n), T // CHUNK_SHARE))
    dbuf = np.empty((K, n, H), x.dtype)  # dL/da for K steps
    hbuf = np.empty((K, n, H), x.dtype)  # h_{t-1} of the same steps
    xbuf = np.empty((K, n, D), x.dtype)
    shared = cols[6]
    dpre = shared[b0:b1]  # dL/da_t of this block's rows
    k = 0
    passed = 0
    for t in range(T - 1, -1, -1):
        for r in range(n):
            bb = b0 + r
            d = dpre[r]
            if t >= lengths[bb]:
                d[:] = 0.0
                continue
            inject(d, dy[t, bb], W_out)
            gnorm[t, bb] = add_norm_scale(d, c[bb], hs[t + 1, bb], act)
        dbuf[k] = dpre
        hbuf[k] = hs[t, b0:b1]
        xbuf[k] = x[t, b0:b1]
        passed = step_product(shared, W_hh, c, cols, passed, t)
        k += 1
        if k == K or t == 0:
            _accumulate(dbuf, hbuf, xbuf, k, dW_ih, dW_hh, db)
            k = 0


@jit
def serial(x, rec, init, W_out, b_out, lengths, target_f, target_i, act, loss_code, score, st,
           dy, acc, G, sync):
    return pipeline.serial(prepare_dense, start_h, forward_rows, adjoints_h, grad_parts,
                           backward_rows, no_columns, parts_done, x, rec, init, W_out, b_out,
                           lengths, target_f, target_i, act, loss_code, score, st, dy, acc, G, sync)


@jit
def block(x, lengths, act, w, st, head, out, carry, norms, acc, phase, part, fcols, bcols, c, g0,
          g1, parties, p0, p1, b0, b1):
    pipeline.block(forward_rows, backward_rows, no_columns, x, lengths, act, w, st, head, out,
                   carry, norms, acc, phase, part, fcols, bcols, c, g0, g1, parties, p0, p1, b0,
                   b1)


KERNELS = Kernels(prepare_dense, start_h, forward_rows, adjoints_h, grad_parts, backward_rows,
                  no_arrays, no_columns, parts_done, serial, block)


@jit_entry
def adjoint_lognorms(hs, W_hh, act, delta):
    """ln||dL/dh_t|| for t = T-1..0 given dL/dh_{T-1} = ``delta`` (B, H),
    renormalised every step (:func:`gradpath.kernels.common.renormalise`).

    ``hs`` is (T+1, B, H) from the forward pass. Returns (T, B); row t holds
    ln||delta_t||, with row T-1 = ln||delta||.
    """
    T = hs.shape[0] - 1
    B, H = delta.shape
    d = delta.copy()
    tmp = np.empty((B, H), d.dtype)
    P = pack(W_hh, 1)
    logs = np.zeros(B)
    out = np.empty((T, B))
    for t in range(T - 1, -1, -1):
        for b in range(B):
            out[t, b] = renormalise(d[b], logs, b)
            h = hs[t + 1, b]
            for i in range(H):
                tmp[b, i] = d[b, i] * activation_grad(h[i], act)
        product(tmp, P, d)
    return out


class RNN(Cell):
    """Vanilla (Elman) RNN: ``h_t = phi(W_ih x_t + W_hh h_{t-1} + b)``,
    read-out ``y_t = W_out h_t + b_out``.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        D, H and O.
    activation : {"tanh", "relu"}
    """

    name = "rnn"
    gates = 1
    activations = ("tanh", "relu")
    models = (Model("rnn-tanh", "rnn", "tanh", "tanh RNN"),
              Model("rnn-relu", "rnn", "relu", "ReLU RNN"))
    kernels = KERNELS
    stored_per_step = 1
    block_parts = True

    def __init__(self, input_size: int, hidden_size: int, output_size: int,
                 activation: str = "tanh") -> None:
        super().__init__(input_size, hidden_size, output_size, activation)

    def adjoint_lognorms(self, st, p, delta):
        return adjoint_lognorms(st[0], p["W_hh"], self._act, delta), None

    def step_jacobian(self, st, p):
        # the derivative taken in float64 from the (possibly float32) states
        hs = st[0][:, 0].astype(np.float64)
        W_hh, relu = p["W_hh"], self._act == ACTIVATIONS["relu"]

        def apply(t: int, q: np.ndarray) -> np.ndarray:
            h = hs[t + 1]
            d = (h > 0).astype(h.dtype) if relu else 1.0 - h * h
            return d[:, None] * (W_hh @ q)

        return self.hidden_size, hs.shape[0] - 1, apply
