"""Vanilla RNN: h_t = phi(W_ih x_t + W_hh h_{t-1} + b), forward and exact BPTT.

The passes are written per block of batch rows (``_forward_rows``,
``_backward_rows``); a call runs them over all rows in one compiled function
(``_serial``), or, with enough work, over row blocks on several threads
(:mod:`gradpath.kernels.parallel`). Both give the same bits.
"""

from __future__ import annotations

import numpy as np

from .common import (
    activate_row,
    add_drive,
    add_norm_scale,
    matmul_into,
    output_head,
    scored_positions,
    weight_grad_arrays,
    weight_grads,
    weight_grads_block,
    weight_grads_done,
)
from .fpenv import entry
from .jit import jit
from .parallel import n_blocks, n_column_blocks, run_blocks


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
def _backward_rows(dh, hs, W_hh, lengths, act, carry, gnorm, b0, b1):
    """BPTT for batch rows ``b0 <= b < b1``: ``dh[t]`` becomes the total
    dL/dh_t, then dL/da_t in place; ``carry`` ends as dL/dh0."""
    for t in range(dh.shape[0] - 1, -1, -1):
        for bb in range(b0, b1):
            d = dh[t, bb]
            if t >= lengths[bb]:
                d[:] = 0.0
                continue
            gnorm[t, bb] = add_norm_scale(d, carry[bb], hs[t + 1, bb], act)
        matmul_into(dh[t, b0:b1], W_hh, carry[b0:b1], dh.shape[1])


@jit
def _transposed(W_ih, W_hh):
    return np.ascontiguousarray(W_hh.T), np.ascontiguousarray(W_ih.T)


@jit
def _head(hs, lengths, score, W_out, b_out, target_f, target_i, loss_code, dh):
    """Loss, dW_out, db_out; ``dh`` gets dL/dh_t at the scored steps."""
    ts, bs, rows = scored_positions(lengths, hs.shape[0] - 1, score)
    return output_head(hs, ts, bs, rows, W_out, b_out, target_f, target_i, loss_code, dh)


@jit
def _serial(x, W_ih, W_hh, b, W_out, b_out, h0, lengths, target_f, target_i, act,
            loss_code, score, hs, dh):
    """The whole call on the calling thread (the sequence of :func:`rnn_loss_and_grads`)."""
    T, B, _ = x.shape
    H = W_hh.shape[0]
    hs[0] = h0
    w_t, w_ih_t = _transposed(W_ih, W_hh)
    _forward_rows(x, w_t, w_ih_t, b, lengths, act, hs, 0, B)
    loss, dW_out, db_out = _head(hs, lengths, score, W_out, b_out, target_f, target_i,
                                 loss_code, dh)
    gnorm = np.zeros((T, B), x.dtype)
    carry = np.zeros((B, H), x.dtype)
    _backward_rows(dh, hs, W_hh, lengths, act, carry, gnorm, 0, B)
    dW_ih, dW_hh, db = weight_grads(dh, hs, x)
    return loss, dW_ih, dW_hh, db, dW_out, db_out, carry, gnorm


@entry
def rnn_loss_and_grads(x, W_ih, W_hh, b, W_out, b_out, h0, lengths,
                       target_f, target_i, act, loss_code, score, hs, dh):
    """Loss, every parameter's gradient, dL/dh0 and ||dL/dh_t|| (T, B).

    ``hs`` (T+1, B, H) and ``dh`` (T, B, H) are scratch space.
    """
    T, B, _ = x.shape
    H = W_hh.shape[0]
    nb = n_blocks(T, B, H, H)
    if nb == 1:
        return _serial(x, W_ih, W_hh, b, W_out, b_out, h0, lengths, target_f, target_i, act,
                       loss_code, score, hs, dh)
    hs[0] = h0
    w_t, w_ih_t = _transposed(W_ih, W_hh)
    run_blocks(_forward_rows, nb, B, x, w_t, w_ih_t, b, lengths, act, hs)
    loss, dW_out, db_out = _head(hs, lengths, score, W_out, b_out, target_f, target_i,
                                 loss_code, dh)
    gnorm = np.zeros((T, B), x.dtype)
    carry = np.zeros((B, H), x.dtype)
    run_blocks(_backward_rows, nb, B, dh, hs, W_hh, lengths, act, carry, gnorm)
    dW_ih, dW_hh, db = weight_grad_arrays(dh, hs, x)
    G = dh.shape[2]
    run_blocks(weight_grads_block, n_column_blocks(nb, G), G, dh, hs, x, dW_ih, dW_hh, db)
    dW_ih = weight_grads_done(dW_ih, x)
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
