"""Vanilla RNN: h_t = phi(W_ih x_t + W_hh h_{t-1} + b), forward and exact BPTT."""

from __future__ import annotations

import numpy as np

from .common import (
    activate_row,
    add_drive,
    add_norm_scale,
    matmul_into,
    output_head,
    scored_positions,
    weight_grads,
)
from .jit import jit


@jit
def rnn_forward(x, W_ih, W_hh, b, h0, lengths, act, hs):
    """Fill and return ``hs`` (T+1, B, H): ``hs[0] = h0``, ``hs[t+1] = h_t``.

    States past a sequence's length are zero. ``hs`` is caller-provided so
    repeated calls reuse memory instead of page-faulting fresh arrays.
    """
    T, B, _ = x.shape
    H = W_hh.shape[0]
    hs[0] = h0
    w_t = np.ascontiguousarray(W_hh.T)
    w_ih_t = np.ascontiguousarray(W_ih.T)
    a = np.empty((B, H), x.dtype)
    tmp = np.empty((B, H), x.dtype)
    for t in range(T):
        matmul_into(hs[t], w_t, a)
        add_drive(a, x[t], w_ih_t, b, tmp)
        for bb in range(B):
            h = hs[t + 1, bb]
            if t < lengths[bb]:
                activate_row(a[bb], h, act)
            else:
                h[:] = 0.0
    return hs


@jit
def rnn_loss_and_grads(x, W_ih, W_hh, b, W_out, b_out, h0, lengths,
                       target_f, target_i, act, loss_code, score, hs, dh):
    """Loss, every parameter's gradient, dL/dh0 and ||dL/dh_t|| (T, B).

    ``hs`` (T+1, B, H) and ``dh`` (T, B, H) are scratch space.
    """
    T, B, _ = x.shape
    H = W_hh.shape[0]
    rnn_forward(x, W_ih, W_hh, b, h0, lengths, act, hs)
    ts, bs, rows = scored_positions(lengths, T, score)
    loss, dW_out, db_out = output_head(hs, ts, bs, rows, W_out, b_out,
                                       target_f, target_i, loss_code, dh)
    # Backward: dh[t] becomes the total dL/dh_t, then dL/da_t in place.
    gnorm = np.zeros((T, B), x.dtype)
    carry = np.zeros((B, H), x.dtype)
    for t in range(T - 1, -1, -1):
        for bb in range(B):
            d = dh[t, bb]
            if t >= lengths[bb]:
                d[:] = 0.0
                continue
            gnorm[t, bb] = add_norm_scale(d, carry[bb], hs[t + 1, bb], act)
        matmul_into(dh[t], W_hh, carry)
    dW_ih, dW_hh, db = weight_grads(dh, hs, x)
    return loss, dW_ih, dW_hh, db, dW_out, db_out, carry, gnorm



def rnn_states(x, W_ih, W_hh, b, h0, lengths, act):
    """:func:`rnn_forward` into a freshly allocated ``hs`` (T+1, B, H)."""
    T, B, _ = x.shape
    hs = np.empty((T + 1, B, W_hh.shape[0]), x.dtype)
    return rnn_forward(x, W_ih, W_hh, b, h0, lengths, act, hs)
