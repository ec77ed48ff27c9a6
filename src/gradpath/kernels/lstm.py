"""LSTM (gates i, f, g, o), forward and exact BPTT.

    z_t = W_ih x_t + W_hh h_{t-1} + b,  split into blocks i, f, g, o of size H
    i, f, o = sigmoid(.), g = tanh(.)
    c_t = f * c_{t-1} + i * g,  h_t = o * tanh(c_t)

As for the RNN (:mod:`gradpath.kernels.rnn`), the passes are written per
block of batch rows and run in one compiled function or over several threads,
and the loss's dL/dh_t is injected step by step from dL/dy_t. What is stored
for the backward pass is what it needs (h, c, the four gates, tanh c); the
gates are overwritten by dL/dz in place and the weight gradients are one GEMM
over all (t, b) after the loop.
"""

from __future__ import annotations

import numpy as np

from .common import (
    add_drive,
    inject,
    lstm_cell_row,
    lstm_cell_row_backward,
    matmul_into,
    output_head,
    weight_grad_arrays,
    weight_grads,
    weight_grads_block,
    weight_grads_done,
)
from .fpenv import entry
from .jit import jit
from .parallel import n_blocks, n_column_blocks, run_blocks
from .rnn import _transposed


@jit
def _forward_rows(x, w_t, w_ih_t, b, lengths, hs, cs, gates, tcs, b0, b1):
    """Every step of the forward pass for batch rows ``b0 <= b < b1``: states
    ``hs``, ``cs`` (T+1, B, H), gate activations ``gates`` (T, B, 4H) and
    tanh(c_t) ``tcs`` (T, B, H), everything the backward pass needs."""
    T, B, _ = x.shape
    G = w_t.shape[1]
    tmp = np.empty((b1 - b0, G), x.dtype)
    for t in range(T):
        z = gates[t, b0:b1]  # pre-activations, turned into gate activations in place
        matmul_into(hs[t, b0:b1], w_t, z, B)
        add_drive(z, x[t, b0:b1], w_ih_t, b, tmp, B)
        for bb in range(b0, b1):
            h = hs[t + 1, bb]
            c = cs[t + 1, bb]
            gt = gates[t, bb]
            if t >= lengths[bb]:
                h[:] = 0.0
                c[:] = 0.0
                gt[:] = 0.0
                tcs[t, bb] = 0.0
                continue
            lstm_cell_row(gt, cs[t, bb], c, tcs[t, bb], h)


@jit
def _backward_rows(dy, W_out, cs, gates, tcs, W_hh, lengths, carry_h, carry_c, gnorm, cnorm,
                   b0, b1):
    """BPTT for batch rows ``b0 <= b < b1``: ``gates[t]`` becomes dL/dz_t;
    the carries end as dL/dh0 and dL/dc0."""
    H = W_hh.shape[1]
    B = gates.shape[1]
    dt = gates.dtype
    d = np.empty(H, dt)
    dhb = np.empty(H, dt)
    dcb = np.empty(H, dt)
    for t in range(gates.shape[0] - 1, -1, -1):
        for bb in range(b0, b1):
            dz = gates[t, bb]  # gate activations, overwritten by dL/dz_t
            if t >= lengths[bb]:
                dz[:] = 0.0
                carry_c[bb, :] = 0.0
                continue
            inject(d, dy[t, bb], W_out)
            gnorm[t, bb], cnorm[t, bb] = lstm_cell_row_backward(
                dz, d, carry_h[bb], carry_c[bb], tcs[t, bb], cs[t, bb], dhb, dcb)
        matmul_into(gates[t, b0:b1], W_hh, carry_h[b0:b1], B)


@jit
def _serial(x, W_ih, W_hh, b, W_out, b_out, h0, c0, lengths, target_f, target_i,
            loss_code, score, hs, cs, gates, tcs, dy):
    """The whole call on the calling thread (the sequence of :func:`lstm_loss_and_grads`)."""
    T, B, _ = x.shape
    H = W_hh.shape[1]
    dt = x.dtype
    hs[0] = h0
    cs[0] = c0
    w_t, w_ih_t = _transposed(W_ih, W_hh)
    _forward_rows(x, w_t, w_ih_t, b, lengths, hs, cs, gates, tcs, 0, B)
    loss, dW_out, db_out = output_head(hs, lengths, score, W_out, b_out, target_f, target_i,
                                       loss_code, dy)
    gnorm = np.zeros((T, B), dt)
    cnorm = np.zeros((T, B), dt)
    carry_h = np.zeros((B, H), dt)
    carry_c = np.zeros((B, H), dt)
    _backward_rows(dy, W_out, cs, gates, tcs, W_hh, lengths, carry_h, carry_c, gnorm, cnorm,
                   0, B)
    dW_ih, dW_hh, db = weight_grads(gates, gates, hs, x)
    return loss, dW_ih, dW_hh, db, dW_out, db_out, carry_h, carry_c, gnorm, cnorm


@entry
def lstm_loss_and_grads(x, W_ih, W_hh, b, W_out, b_out, h0, c0, lengths,
                        target_f, target_i, loss_code, score, hs, cs, gates, tcs, dy):
    """Loss, gradients, dL/dh0, dL/dc0, ||dL/dh_t|| and ||dL/dc_t|| (T, B).

    ``hs``, ``cs`` (T+1, B, H), ``gates`` (T, B, 4H), ``tcs`` (T, B, H) and
    ``dy`` (T, B, O) are scratch space.
    """
    T, B, _ = x.shape
    H = W_hh.shape[1]
    nb = n_blocks(T, B, H, 4 * H)
    if nb == 1:
        return _serial(x, W_ih, W_hh, b, W_out, b_out, h0, c0, lengths, target_f, target_i,
                       loss_code, score, hs, cs, gates, tcs, dy)
    dt = x.dtype
    hs[0] = h0
    cs[0] = c0
    w_t, w_ih_t = _transposed(W_ih, W_hh)
    run_blocks(_forward_rows, nb, B, x, w_t, w_ih_t, b, lengths, hs, cs, gates, tcs)
    loss, dW_out, db_out = output_head(hs, lengths, score, W_out, b_out, target_f, target_i,
                                       loss_code, dy)
    gnorm = np.zeros((T, B), dt)
    cnorm = np.zeros((T, B), dt)
    carry_h = np.zeros((B, H), dt)
    carry_c = np.zeros((B, H), dt)
    run_blocks(_backward_rows, nb, B, dy, W_out, cs, gates, tcs, W_hh, lengths, carry_h,
               carry_c, gnorm, cnorm)
    dW_ih, dW_hh, db = weight_grad_arrays(gates, hs, x)
    G = gates.shape[2]
    run_blocks(weight_grads_block, n_column_blocks(nb, G), G, gates, gates, hs, x, dW_ih, dW_hh,
               db)
    dW_ih = weight_grads_done(dW_ih, x)
    return loss, dW_ih, dW_hh, db, dW_out, db_out, carry_h, carry_c, gnorm, cnorm


@entry
def lstm_states(x, W_ih, W_hh, b, h0, c0, lengths):
    """The forward pass into fresh arrays: (hs, cs, gates, tcs) as in ``_forward_rows``."""
    T, B, _ = x.shape
    H = W_hh.shape[1]
    hs = np.empty((T + 1, B, H), x.dtype)
    cs = np.empty((T + 1, B, H), x.dtype)
    gates = np.empty((T, B, 4 * H), x.dtype)
    tcs = np.empty((T, B, H), x.dtype)
    hs[0] = h0
    cs[0] = c0
    w_t, w_ih_t = _transposed(W_ih, W_hh)
    run_blocks(_forward_rows, n_blocks(T, B, H, 4 * H), B, x, w_t, w_ih_t, b, lengths,
             hs, cs, gates, tcs)
    return hs, cs, gates, tcs
