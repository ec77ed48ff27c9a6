"""Vanilla RNN: h_t = phi(W_ih x_t + W_hh h_{t-1} + b), forward and exact BPTT.

The passes are written per block of batch rows (``_forward_rows``,
``_backward_rows``); a call runs them over all rows in one compiled function
(``_serial``), or, with enough work, over fixed row blocks on several threads
(:mod:`gradpath.kernels.parallel`); the blocks depend on the shape only, so
the bits do not depend on the thread count.

Memory: the forward pass keeps the states h_t (T+1, B, H), what BPTT needs.
The loss's dL/dh_t is injected step by step from dL/dy_t (T, B, O), and the
weight gradients are accumulated during the backward pass, a chunk of steps
at a time, from small ring buffers: no other (T, B, H) array is stored.
"""

from __future__ import annotations

import numpy as np

from .blas import NO_TRANS, TRANS, gemm
from .common import (
    activate_row,
    add_drive,
    add_norm_scale,
    inject,
    matmul_into,
    output_head,
)
from .fpenv import entry
from .jit import jit
from .parallel import bounds, n_blocks, run_blocks, sum_parts

#: Rows (steps x block rows) per weight-gradient GEMM in the backward pass,
#: and the most steps a chunk may hold as a share of T (1/16: the ring buffers
#: stay small next to the stored states).
CHUNK_ROWS = 256
CHUNK_SHARE = 16


@jit
def _forward_rows(x, w_t, w_ih_t, b, lengths, act, hs, b0, b1):
    """Every step of the forward pass for batch rows ``b0 <= b < b1``;
    ``w_t``, ``w_ih_t`` are W_hh.T and W_ih.T (C-contiguous)."""
    T, B, _ = x.shape
    H = w_t.shape[1]
    n = b1 - b0
    a = np.empty((n, H), x.dtype)
    tmp = np.empty((n, H), x.dtype)
    for t in range(T):
        matmul_into(hs[t, b0:b1], w_t, a, B)
        add_drive(a, x[t, b0:b1], w_ih_t, b, tmp, B)
        for r in range(n):
            bb = b0 + r
            h = hs[t + 1, bb]
            if t < lengths[bb]:
                activate_row(a[r], h, act)
            else:
                h[:] = 0.0


@jit
def _accumulate(dbuf, hbuf, xbuf, k, dW_ih, dW_hh, db):
    """Add the first ``k`` buffered steps to the weight gradients (one GEMM each)."""
    _, n, H = dbuf.shape
    D = xbuf.shape[2]
    rows = k * n
    d2 = dbuf.reshape(-1, H)
    gemm(NO_TRANS, TRANS, H, H, rows, 1.0, hbuf.reshape(-1, H), 0, H, d2, 0, H, 1.0, dW_hh, 0, H)
    gemm(NO_TRANS, TRANS, D, H, rows, 1.0, xbuf.reshape(-1, D), 0, D, d2, 0, H, 1.0, dW_ih, 0, D)
    for r in range(rows):
        dr = d2[r]
        for j in range(H):
            db[j] += dr[j]


@jit
def _backward_rows(dy, W_out, hs, x, W_hh, lengths, act, carry, gnorm, dW_ih, dW_hh, db,
                   b0, b1):
    """BPTT for batch rows ``b0 <= b < b1``: ``carry`` ends as dL/dh0; this
    block's dL/dW_ih (H, D), dL/dW_hh (H, H) and dL/db are added to the given
    (zeroed) arrays."""
    T, B, D = x.shape
    H = W_hh.shape[0]
    n = b1 - b0
    K = max(1, min(-(-CHUNK_ROWS // n), T // CHUNK_SHARE))
    dbuf = np.empty((K, n, H), x.dtype)  # dL/da for K steps
    hbuf = np.empty((K, n, H), x.dtype)  # h_{t-1} of the same steps
    xbuf = np.empty((K, n, D), x.dtype)
    k = 0
    for t in range(T - 1, -1, -1):
        dpre = dbuf[k]
        for r in range(n):
            bb = b0 + r
            d = dpre[r]
            if t >= lengths[bb]:
                d[:] = 0.0
                continue
            inject(d, dy[t, bb], W_out)
            gnorm[t, bb] = add_norm_scale(d, carry[bb], hs[t + 1, bb], act)
        hbuf[k] = hs[t, b0:b1]
        xbuf[k] = x[t, b0:b1]
        matmul_into(dpre, W_hh, carry[b0:b1], B)
        k += 1
        if k == K or t == 0:
            _accumulate(dbuf, hbuf, xbuf, k, dW_ih, dW_hh, db)
            k = 0


@jit
def _transposed(W_ih, W_hh):
    return np.ascontiguousarray(W_hh.T), np.ascontiguousarray(W_ih.T)


@jit
def _serial(x, W_ih, W_hh, b, W_out, b_out, h0, lengths, target_f, target_i, act,
            loss_code, score, hs, dy):
    """The whole call on the calling thread (the sequence of :func:`rnn_loss_and_grads`)."""
    T, B, D = x.shape
    H = W_hh.shape[0]
    dt = x.dtype
    hs[0] = h0
    w_t, w_ih_t = _transposed(W_ih, W_hh)
    _forward_rows(x, w_t, w_ih_t, b, lengths, act, hs, 0, B)
    loss, dW_out, db_out = output_head(hs, lengths, score, W_out, b_out, target_f, target_i,
                                       loss_code, dy)
    gnorm = np.zeros((T, B), dt)
    carry = np.zeros((B, H), dt)
    dW_ih = np.zeros((H, D), dt)
    dW_hh = np.zeros((H, H), dt)
    db = np.zeros(H, dt)
    _backward_rows(dy, W_out, hs, x, W_hh, lengths, act, carry, gnorm, dW_ih, dW_hh, db, 0, B)
    return loss, dW_ih, dW_hh, db, dW_out, db_out, carry, gnorm


@entry
def rnn_loss_and_grads(x, W_ih, W_hh, b, W_out, b_out, h0, lengths,
                       target_f, target_i, act, loss_code, score, hs, dy):
    """Loss, every parameter's gradient, dL/dh0 and ||dL/dh_t|| (T, B).

    ``hs`` (T+1, B, H) and ``dy`` (T, B, O) are scratch space.
    """
    T, B, D = x.shape
    H = W_hh.shape[0]
    nb = n_blocks(T, B, H, H)
    if nb == 1:
        return _serial(x, W_ih, W_hh, b, W_out, b_out, h0, lengths, target_f, target_i, act,
                       loss_code, score, hs, dy)
    dt = x.dtype
    hs[0] = h0
    w_t, w_ih_t = _transposed(W_ih, W_hh)
    run_blocks(_forward_rows, nb, B, x, w_t, w_ih_t, b, lengths, act, hs)
    loss, dW_out, db_out = output_head(hs, lengths, score, W_out, b_out, target_f, target_i,
                                       loss_code, dy)
    gnorm = np.zeros((T, B), dt)
    carry = np.zeros((B, H), dt)
    parts = [(np.zeros((H, D), dt), np.zeros((H, H), dt), np.zeros(H, dt))
             for _ in bounds(nb, B)]
    run_blocks(_backward_rows, nb, B, dy, W_out, hs, x, W_hh, lengths, act, carry, gnorm,
               per_block=parts)
    dW_ih, dW_hh, db = (sum_parts([p[i] for p in parts]) for i in range(3))
    return loss, dW_ih, dW_hh, db, dW_out, db_out, carry, gnorm


@entry
def rnn_states(x, W_ih, W_hh, b, h0, lengths, act):
    """The forward pass: ``hs`` (T+1, B, H) with ``hs[0] = h0``, ``hs[t+1] = h_t``
    (zero past a sequence's length)."""
    T, B, _ = x.shape
    H = W_hh.shape[0]
    hs = np.empty((T + 1, B, H), x.dtype)
    hs[0] = h0
    w_t, w_ih_t = _transposed(W_ih, W_hh)
    run_blocks(_forward_rows, n_blocks(T, B, H, H), B, x, w_t, w_ih_t, b, lengths, act, hs)
    return hs
