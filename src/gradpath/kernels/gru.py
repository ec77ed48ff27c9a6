"""GRU (gates r, z, n), forward and exact BPTT; the convention of ``torch.nn.GRU``.

    r = sigmoid(W_ir x + W_hr h + b_r),  z = sigmoid(W_iz x + W_hz h + b_z)
    n = tanh(W_in x + b_n + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h

``W_ih``, ``W_hh`` and ``b`` stack the blocks r, z, n; ``b_hn`` is the bias
inside the reset product (torch's ``bias_hh`` is [0, 0, b_hn] here). Unlike
the RNN and the LSTM, the cell needs the recurrent product apart from the
input's (r multiplies only its n block), so both are kept: ``gates`` (T, B,
3H) holds the input side and ``hgates`` the recurrent side. BPTT overwrites
them in place with the gradients of the two products, which differ in the n
block only (by the factor r), and the weight gradients are one GEMM each over
all (t, b) after the loop. Rows run in blocks as for the other cells
(:mod:`gradpath.kernels.parallel`).
"""

from __future__ import annotations

import numpy as np

from .common import (
    add_drive,
    gru_cell_row,
    gru_cell_row_backward,
    inject,
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
def _forward_rows(x, w_t, w_ih_t, b, b_hn, lengths, hs, gates, hgates, b0, b1):
    """Every step of the forward pass for batch rows ``b0 <= b < b1``: states
    ``hs`` (T+1, B, H), gate activations ``gates`` (T, B, 3H) and the
    recurrent products ``hgates`` (n block: W_hn h + b_hn)."""
    T, B, _ = x.shape
    G = w_t.shape[1]
    tmp = np.empty((b1 - b0, G), x.dtype)
    for t in range(T):
        gx = gates[t, b0:b1]
        gh = hgates[t, b0:b1]
        matmul_into(hs[t, b0:b1], w_t, gh, B)
        gx[:] = 0.0
        add_drive(gx, x[t, b0:b1], w_ih_t, b, tmp, B)
        for bb in range(b0, b1):
            h = hs[t + 1, bb]
            if t >= lengths[bb]:
                h[:] = 0.0
                gates[t, bb] = 0.0
                hgates[t, bb] = 0.0
                continue
            gru_cell_row(gates[t, bb], hgates[t, bb], hs[t, bb], b_hn, h)


@jit
def _backward_rows(dy, W_out, hs, gates, hgates, W_hh, lengths, carry, gnorm, b0, b1):
    """BPTT for batch rows ``b0 <= b < b1``: ``gates[t]`` and ``hgates[t]``
    become the gradients of the input and recurrent products; ``carry`` ends
    as dL/dh0."""
    H = W_hh.shape[1]
    B = gates.shape[1]
    dt = gates.dtype
    d = np.empty(H, dt)
    direct = np.empty((b1 - b0, H), dt)
    for t in range(gates.shape[0] - 1, -1, -1):
        for bb in range(b0, b1):
            if t >= lengths[bb]:
                gates[t, bb] = 0.0
                hgates[t, bb] = 0.0
                carry[bb] = 0.0
                continue
            inject(d, dy[t, bb], W_out)
            gnorm[t, bb] = gru_cell_row_backward(gates[t, bb], hgates[t, bb], d, carry[bb],
                                                 hs[t, bb])
        # dL/dh_{t-1} = (dL/dh_t) z + dL/d(W_hh h_{t-1}) W_hh
        direct[:] = carry[b0:b1]
        matmul_into(hgates[t, b0:b1], W_hh, carry[b0:b1], B)
        for r in range(b1 - b0):
            c = carry[b0 + r]
            dr = direct[r]
            for j in range(H):
                c[j] += dr[j]


@jit
def _bias_grad(hgates):
    """dL/db_hn: the sum over (t, b) of the recurrent product's n block."""
    T, B, G = hgates.shape
    H = G // 3
    db = np.zeros(H, hgates.dtype)
    for t in range(T):
        for bb in range(B):
            g = hgates[t, bb]
            for j in range(H):
                db[j] += g[2 * H + j]
    return db


@jit
def _serial(x, W_ih, W_hh, b, b_hn, W_out, b_out, h0, lengths, target_f, target_i,
            loss_code, score, hs, gates, hgates, dy):
    """The whole call on the calling thread (the sequence of :func:`gru_loss_and_grads`)."""
    T, B, _ = x.shape
    H = W_hh.shape[1]
    dt = x.dtype
    hs[0] = h0
    w_t, w_ih_t = _transposed(W_ih, W_hh)
    _forward_rows(x, w_t, w_ih_t, b, b_hn, lengths, hs, gates, hgates, 0, B)
    loss, dW_out, db_out = output_head(hs, lengths, score, W_out, b_out, target_f, target_i,
                                       loss_code, dy)
    gnorm = np.zeros((T, B), dt)
    carry = np.zeros((B, H), dt)
    _backward_rows(dy, W_out, hs, gates, hgates, W_hh, lengths, carry, gnorm, 0, B)
    dW_ih, dW_hh, db = weight_grads(gates, hgates, hs, x)
    return loss, dW_ih, dW_hh, db, _bias_grad(hgates), dW_out, db_out, carry, gnorm


@entry
def gru_loss_and_grads(x, W_ih, W_hh, b, b_hn, W_out, b_out, h0, lengths,
                       target_f, target_i, loss_code, score, hs, gates, hgates, dy):
    """Loss, gradients (W_ih, W_hh, b, b_hn, W_out, b_out), dL/dh0 and
    ||dL/dh_t|| (T, B).

    ``hs`` (T+1, B, H), ``gates``, ``hgates`` (T, B, 3H) and ``dy`` (T, B, O)
    are scratch space.
    """
    T, B, _ = x.shape
    H = W_hh.shape[1]
    nb = n_blocks(T, B, H, 3 * H)
    if nb == 1:
        return _serial(x, W_ih, W_hh, b, b_hn, W_out, b_out, h0, lengths, target_f, target_i,
                       loss_code, score, hs, gates, hgates, dy)
    dt = x.dtype
    hs[0] = h0
    w_t, w_ih_t = _transposed(W_ih, W_hh)
    run_blocks(_forward_rows, nb, B, x, w_t, w_ih_t, b, b_hn, lengths, hs, gates, hgates)
    loss, dW_out, db_out = output_head(hs, lengths, score, W_out, b_out, target_f, target_i,
                                       loss_code, dy)
    gnorm = np.zeros((T, B), dt)
    carry = np.zeros((B, H), dt)
    run_blocks(_backward_rows, nb, B, dy, W_out, hs, gates, hgates, W_hh, lengths, carry,
               gnorm)
    dW_ih, dW_hh, db = weight_grad_arrays(gates, hs, x)
    G = gates.shape[2]
    run_blocks(weight_grads_block, n_column_blocks(nb, G), G, gates, hgates, hs, x, dW_ih,
               dW_hh, db)
    dW_ih = weight_grads_done(dW_ih, x)
    return loss, dW_ih, dW_hh, db, _bias_grad(hgates), dW_out, db_out, carry, gnorm


@entry
def gru_states(x, W_ih, W_hh, b, b_hn, h0, lengths):
    """The forward pass into fresh arrays: (hs, gates, hgates) as in ``_forward_rows``."""
    T, B, _ = x.shape
    H = W_hh.shape[1]
    hs = np.empty((T + 1, B, H), x.dtype)
    gates = np.empty((T, B, 3 * H), x.dtype)
    hgates = np.empty((T, B, 3 * H), x.dtype)
    hs[0] = h0
    w_t, w_ih_t = _transposed(W_ih, W_hh)
    run_blocks(_forward_rows, n_blocks(T, B, H, 3 * H), B, x, w_t, w_ih_t, b, b_hn, lengths,
               hs, gates, hgates)
    return hs, gates, hgates
