"""LSTM (gates i, f, g, o), forward and exact BPTT.

    z_t = W_ih x_t + W_hh h_{t-1} + b,  split into blocks i, f, g, o of size H
    i, f, o = sigmoid(.), g = tanh(.)
    c_t = f * c_{t-1} + i * g,  h_t = o * tanh(c_t)
"""

from __future__ import annotations

import numpy as np

from .common import (
    input_projection,
    matmul_into,
    output_head,
    row_norm,
    scored_positions,
    sigmoid_,
    tanh_,
    weight_grads,
)
from .jit import jit


@jit
def lstm_forward(x, W_ih, W_hh, b, h0, c0, lengths):
    """States of an LSTM pass.

    Returns ``hs`` and ``cs`` (T+1, B, H) with index t+1 holding step t (zero
    past a sequence's length), the gate activations (T, B, 4H) and tanh(c_t)
    (T, B, H), which is everything the backward pass needs.
    """
    T, B, _ = x.shape
    H = W_hh.shape[1]
    dt = x.dtype
    hs = np.empty((T + 1, B, H), dt)
    cs = np.empty((T + 1, B, H), dt)
    tcs = np.zeros((T, B, H), dt)
    hs[0] = h0
    cs[0] = c0
    gates = input_projection(x, W_ih, b)  # becomes the gate activations in place
    w_t = np.ascontiguousarray(W_hh.T)
    z = np.empty((B, 4 * H), dt)
    for t in range(T):
        matmul_into(hs[t], w_t, z)
        for bb in range(B):
            h = hs[t + 1, bb]
            c = cs[t + 1, bb]
            gt = gates[t, bb]
            if t >= lengths[bb]:
                h[:] = 0.0
                c[:] = 0.0
                gt[:] = 0.0
                continue
            zb = z[bb]
            cp = cs[t, bb]
            tc = tcs[t, bb]
            for j in range(H):
                ig = sigmoid_(zb[j] + gt[j])
                fg = sigmoid_(zb[H + j] + gt[H + j])
                gg = tanh_(zb[2 * H + j] + gt[2 * H + j])
                og = sigmoid_(zb[3 * H + j] + gt[3 * H + j])
                gt[j] = ig
                gt[H + j] = fg
                gt[2 * H + j] = gg
                gt[3 * H + j] = og
                cn = fg * cp[j] + ig * gg
                c[j] = cn
                tc[j] = tanh_(cn)
                h[j] = og * tc[j]
    return hs, cs, gates, tcs


@jit
def lstm_loss_and_grads(x, W_ih, W_hh, b, W_out, b_out, h0, c0, lengths,
                        target_f, target_i, loss_code, score):
    """Loss, gradients, dL/dh0, dL/dc0, ||dL/dh_t|| and ||dL/dc_t|| (T, B)."""
    T, B, _ = x.shape
    H = W_hh.shape[1]
    dt = x.dtype
    hs, cs, gates, tcs = lstm_forward(x, W_ih, W_hh, b, h0, c0, lengths)
    ts, bs, rows = scored_positions(lengths, T, score)
    loss, dW_out, db_out, dh = output_head(hs, ts, bs, rows, W_out, b_out,
                                           target_f, target_i, loss_code)
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
            d = dh[t, bb]
            ch = carry_h[bb]
            cc = carry_c[bb]
            tc = tcs[t, bb]
            cp = cs[t, bb]
            for j in range(H):
                dhb[j] = d[j] + ch[j]
            gnorm[t, bb] = row_norm(dhb)
            for j in range(H):
                og = dz[3 * H + j]
                dcb[j] = cc[j] + dhb[j] * og * (1.0 - tc[j] * tc[j])
            cnorm[t, bb] = row_norm(dcb)
            for j in range(H):
                ig = dz[j]
                fg = dz[H + j]
                gg = dz[2 * H + j]
                og = dz[3 * H + j]
                dc = dcb[j]
                cc[j] = dc * fg
                dz[j] = dc * gg * ig * (1.0 - ig)
                dz[H + j] = dc * cp[j] * fg * (1.0 - fg)
                dz[2 * H + j] = dc * ig * (1.0 - gg * gg)
                dz[3 * H + j] = dhb[j] * tc[j] * og * (1.0 - og)
        matmul_into(gates[t], W_hh, carry_h)
    dW_ih, dW_hh, db = weight_grads(gates, hs, x)
    return loss, dW_ih, dW_hh, db, dW_out, db_out, carry_h, carry_c, gnorm, cnorm
