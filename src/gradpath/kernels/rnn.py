"""Vanilla RNN: h_t = phi(W_ih x_t + W_hh h_{t-1} + b), forward and exact BPTT."""

from __future__ import annotations

import numpy as np

from .common import (
    activate,
    activation_grad,
    input_projection,
    matmul_into,
    output_head,
    row_norm,
    scored_positions,
    weight_grads,
)
from .jit import jit


@jit
def rnn_forward(x, W_ih, W_hh, b, h0, lengths, act):
    """Hidden states ``hs`` (T+1, B, H), ``hs[0] = h0``, ``hs[t+1] = h_t``.

    States past a sequence's length are zero.
    """
    T, B, _ = x.shape
    H = W_hh.shape[0]
    hs = np.empty((T + 1, B, H), x.dtype)
    hs[0] = h0
    pre = input_projection(x, W_ih, b)
    w_t = np.ascontiguousarray(W_hh.T)
    a = np.empty((B, H), x.dtype)
    for t in range(T):
        matmul_into(hs[t], w_t, a)
        for bb in range(B):
            h = hs[t + 1, bb]
            if t < lengths[bb]:
                p = pre[t, bb]
                ab = a[bb]
                for i in range(H):
                    h[i] = activate(ab[i] + p[i], act)
            else:
                h[:] = 0.0
    return hs

@jit
def rnn_loss_and_grads(x, W_ih, W_hh, b, W_out, b_out, h0, lengths,
                       target_f, target_i, act, loss_code, score):
    """Loss, every parameter's gradient, dL/dh0 and ||dL/dh_t|| (T, B)."""
    T, B, _ = x.shape
    H = W_hh.shape[0]
    hs = rnn_forward(x, W_ih, W_hh, b, h0, lengths, act)
    ts, bs, rows = scored_positions(lengths, T, score)
    loss, dW_out, db_out, dh = output_head(hs, ts, bs, rows, W_out, b_out,
                                           target_f, target_i, loss_code)
    # Backward: dh[t] becomes the total dL/dh_t, then dL/da_t in place.
    gnorm = np.zeros((T, B), x.dtype)
    carry = np.zeros((B, H), x.dtype)
    for t in range(T - 1, -1, -1):
        for bb in range(B):
            d = dh[t, bb]
            if t >= lengths[bb]:
                d[:] = 0.0
                continue
            c = carry[bb]
            h = hs[t + 1, bb]
            for i in range(H):
                d[i] += c[i]
            gnorm[t, bb] = row_norm(d)
            for i in range(H):
                d[i] *= activation_grad(h[i], act)
        matmul_into(dh[t], W_hh, carry)
    dW_ih, dW_hh, db = weight_grads(dh, hs, x)
    return loss, dW_ih, dW_hh, db, dW_out, db_out, carry, gnorm

