"""LSTM (gates i, f, g, o), forward and exact BPTT.

    z_t = W_ih x_t + W_hh h_{t-1} + b,  split into blocks i, f, g, o of size H
    i, f, o = sigmoid(.), g = tanh(.)
    c_t = f * c_{t-1} + i * g,  h_t = o * tanh(c_t)
"""

from __future__ import annotations

import numpy as np

from .common import (
    add_drive,
    lstm_cell_row,
    lstm_cell_row_backward,
    matmul_into,
    output_head,
    scored_positions,
    weight_grads,
)
from .jit import jit


@jit
def lstm_forward(x, W_ih, W_hh, b, h0, c0, lengths, hs, cs, gates, tcs):
    """Fill the states of an LSTM pass into caller-provided arrays.

    ``hs`` and ``cs`` (T+1, B, H) with index t+1 holding step t (zero past a
    sequence's length), the gate activations ``gates`` (T, B, 4H) and
    tanh(c_t) ``tcs`` (T, B, H): everything the backward pass needs.
    Returns them.
    """
    T, B, _ = x.shape
    H = W_hh.shape[1]
    dt = x.dtype
    hs[0] = h0
    cs[0] = c0
    w_t = np.ascontiguousarray(W_hh.T)
    w_ih_t = np.ascontiguousarray(W_ih.T)
    tmp = np.empty((B, 4 * H), dt)
    for t in range(T):
        z = gates[t]  # pre-activations, turned into gate activations in place
        matmul_into(hs[t], w_t, z)
        add_drive(z, x[t], w_ih_t, b, tmp)
        for bb in range(B):
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
    return hs, cs, gates, tcs


@jit
def lstm_loss_and_grads(x, W_ih, W_hh, b, W_out, b_out, h0, c0, lengths,
                        target_f, target_i, loss_code, score, hs, cs, gates, tcs, dh):
    """Loss, gradients, dL/dh0, dL/dc0, ||dL/dh_t|| and ||dL/dc_t|| (T, B).

    ``hs``, ``cs`` (T+1, B, H), ``gates`` (T, B, 4H), ``tcs`` and ``dh``
    (T, B, H) are scratch space.
    """
    T, B, _ = x.shape
    H = W_hh.shape[1]
    dt = x.dtype
    lstm_forward(x, W_ih, W_hh, b, h0, c0, lengths, hs, cs, gates, tcs)
    ts, bs, rows = scored_positions(lengths, T, score)
    loss, dW_out, db_out = output_head(hs, ts, bs, rows, W_out, b_out,
                                       target_f, target_i, loss_code, dh)
    gnorm = np.zeros((T, B), dt)
    cnorm = np.zeros((T, B), dt)
    carry_h = np.zeros((B, H), dt)
    carry_c = np.zeros((B, H), dt)
    dhb = np.empty(H, dt)
    dcb = np.empty(H, dt)
    for t in range(T - 1, -1, -1):
        for bb in range(B):
            dz = gates[t, bb]  # gate activations, overwritten by dL/dz_t
            if t >= lengths[bb]:
                carry_c[bb, :] = 0.0
                continue
            gnorm[t, bb], cnorm[t, bb] = lstm_cell_row_backward(
                dz, dh[t, bb], carry_h[bb], carry_c[bb], tcs[t, bb], cs[t, bb], dhb, dcb)
        matmul_into(gates[t], W_hh, carry_h)
    dW_ih, dW_hh, db = weight_grads(gates, hs, x)
    return loss, dW_ih, dW_hh, db, dW_out, db_out, carry_h, carry_c, gnorm, cnorm


def lstm_states(x, W_ih, W_hh, b, h0, c0, lengths):
    """:func:`lstm_forward` into freshly allocated arrays: (hs, cs, gates, tcs)."""
    T, B, _ = x.shape
    H = W_hh.shape[1]
    hs = np.empty((T + 1, B, H), x.dtype)
    cs = np.empty((T + 1, B, H), x.dtype)
    gates = np.empty((T, B, 4 * H), x.dtype)
    tcs = np.empty((T, B, H), x.dtype)
    return lstm_forward(x, W_ih, W_hh, b, h0, c0, lengths, hs, cs, gates, tcs)
