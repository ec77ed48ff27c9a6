"""LSTM (gates i, f, g, o), forward and exact BPTT.

    z_t = W_ih x_t + W_hh h_{t-1} + b,  split into blocks i, f, g, o of size H
    i, f, o = sigmoid(.), g = tanh(.)
    c_t = f * c_{t-1} + i * g,  h_t = o * tanh(c_t)

What is stored for the backward pass is what it needs (h, c, the four gates,
tanh c); the gates are overwritten by dL/dz in place and the weight gradients
are one GEMM over all (t, b) after the loop (the roles of
:mod:`gradpath.cells.pipeline`).
"""

from __future__ import annotations

import math

import numpy as np

from ..kernels.common import (
    ONE,
    add_drive,
    fma_,
    inject,
    row_norm,
    sigmoid_,
    tanh_,
    weight_grad_arrays,
    weight_grads_block,
    weight_grads_done,
)
from ..kernels.fpenv import jit_entry
from ..kernels.gemm import pack, product
from ..kernels.jit import jit
from . import pipeline
from .base import Cell, Model
from .pipeline import Kernels, no_parts, prepare_dense, start_h, step_done, step_product


@jit
def cell_row(gt, cp, c, tc, h):
    """One LSTM cell update for one row, gate pre-activations ``gt`` (4H) in place.

    gt becomes the activations (i, f, g, o); c = f*cp + i*g; tc = tanh(c);
    h = o*tc.
    """
    H = h.shape[0]
    for j in range(H):
        ig = sigmoid_(gt[j])
        fg = sigmoid_(gt[H + j])
        gg = tanh_(gt[2 * H + j])
        og = sigmoid_(gt[3 * H + j])
        gt[j] = ig
        gt[H + j] = fg
        gt[2 * H + j] = gg
        gt[3 * H + j] = og
        c[j] = fma_(fg, cp[j], ig * gg)  # not a*b + c*d: see fma_
        tj = tanh_(c[j])  # of the stored (float32-rounded) cell state
        tc[j] = tj
        h[j] = og * tj


@jit
def cell_row_backward(dz, d, ch, cc, tc, cp, dhb, dcb):
    """One LSTM backward step for one row; returns (||dL/dh_t||, ||dL/dc_t||).

    On entry ``dz`` (4H) holds the gate activations, ``d`` the direct dL/dh_t,
    ``ch``/``cc`` the carries from step t+1 (dL/dh_t through h_{t+1}, and
    dL/dc_t through c_{t+1}); ``tc`` = tanh(c_t), ``cp`` = c_{t-1}. On exit
    ``dz`` holds dL/dz_t and ``cc`` the cell carry dL/dc_{t-1} (= dc * f).
    ``dhb``, ``dcb`` are H-sized scratch.
    """
    H = d.shape[0]
    for j in range(H):
        dhb[j] = d[j] + ch[j]
    nh = row_norm(dhb)
    for j in range(H):
        dcb[j] = cc[j] + dhb[j] * dz[3 * H + j] * (ONE - tc[j] * tc[j])
    nc = row_norm(dcb)
    for j in range(H):
        ig = dz[j]
        fg = dz[H + j]
        gg = dz[2 * H + j]
        og = dz[3 * H + j]
        dc = dcb[j]
        cc[j] = dc * fg
        dz[j] = dc * gg * ig * (ONE - ig)
        dz[H + j] = dc * cp[j] * fg * (ONE - fg)
        dz[2 * H + j] = dc * ig * (ONE - gg * gg)
        dz[3 * H + j] = dhb[j] * tc[j] * og * (ONE - og)
    return nh, nc


@jit
def start_hc(st, init):
    start_h(st, init)
    st[1][0] = init[1]


@jit
def forward_rows(x, lengths, act, w, st, cols, b0, b1):
    """Every step of the forward pass for batch rows ``b0 <= b < b1``: states
    hs, cs (T+1, B, H), gate activations (T, B, 4H) and tanh(c_t) (T, B, H),
    everything the backward pass needs."""
    w_t, w_ih_t, b, _ = w
    hs, cs, gates, tcs = st
    T, B, _ = x.shape
    G = gates.shape[2]
    tmp = np.empty((b1 - b0, G), x.dtype)
    passed = 0
    for t in range(T):
        z = gates[t, b0:b1]  # pre-activations, turned into gate activations in place
        passed = step_product(hs[t], w_t, gates[t], cols, passed, t)
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
            cell_row(gt, cs[t, bb], c, tcs[t, bb], h)


@jit
def adjoints(x, st):
    T, B, _ = x.shape
    H = st[0].shape[2]
    return ((np.zeros((B, H), x.dtype), np.zeros((B, H), x.dtype)),
            (np.zeros((T, B), x.dtype), np.zeros((T, B), x.dtype)))


@jit
def backward_rows(dy, W_out, x, lengths, act, w, st, carry, norms, part, cols, b0, b1):
    """BPTT for batch rows ``b0 <= b < b1``: the gates of step t become
    dL/dz_t; the carries end as dL/dh0 and dL/dc0."""
    W_hh = w[3]  # packed
    _, cs, gates, tcs = st
    carry_h, carry_c = carry
    gnorm, cnorm = norms
    H = cs.shape[2]
    dt = gates.dtype
    d = np.empty(H, dt)
    dhb = np.empty(H, dt)
    dcb = np.empty(H, dt)
    passed = 0
    for t in range(gates.shape[0] - 1, -1, -1):
        for bb in range(b0, b1):
            dz = gates[t, bb]  # gate activations, overwritten by dL/dz_t
            if t >= lengths[bb]:
                dz[:] = 0.0
                carry_c[bb, :] = 0.0
                continue
            inject(d, dy[t, bb], W_out)
            gnorm[t, bb], cnorm[t, bb] = cell_row_backward(
                dz, d, carry_h[bb], carry_c[bb], tcs[t, bb], cs[t, bb], dhb, dcb)
        passed = step_product(gates[t], W_hh, carry_h, cols, passed, t)
        step_done(cols)


@jit
def grad_arrays(x, st):
    """The weight gradients' arrays (:func:`weight_grad_arrays`), zeroed; dL/dz
    is the gates after the backward pass."""
    gates = st[2]
    return weight_grad_arrays(gates, st[0], x), gates.shape[2]


@jit
def grad_columns(x, st, acc, g0, g1, t0, t1):
    weight_grads_block(st[2], st[2], st[0], acc, g0, g1, t0, t1)


@jit
def grads_done(x, st, acc, part):
    return weight_grads_done(acc)


@jit
def serial(x, rec, init, W_out, b_out, lengths, target_f, target_i, act, loss_code, score, st,
           dy, acc, G, sync):
    return pipeline.serial(prepare_dense, start_hc, forward_rows, adjoints, no_parts,
                           backward_rows, grad_columns, grads_done, x, rec, init, W_out, b_out,
                           lengths, target_f, target_i, act, loss_code, score, st, dy, acc, G, sync)


@jit
def block(x, lengths, act, w, st, head, out, carry, norms, acc, phase, part, fcols, bcols, c, g0,
          g1, parties, p0, p1, b0, b1):
    pipeline.block(forward_rows, backward_rows, grad_columns, x, lengths, act, w, st, head, out,
                   carry, norms, acc, phase, part, fcols, bcols, c, g0, g1, parties, p0, p1, b0,
                   b1)


@jit
def trail(x, st, acc, G, sync):
    pipeline.trail(grad_columns, x, st, acc, G, sync)


KERNELS = Kernels(prepare_dense, start_hc, forward_rows, adjoints, no_parts, backward_rows,
                  grad_arrays, grad_columns, grads_done, serial, block, trail)


@jit_entry
def adjoint_lognorms(hs, cs, gates, tcs, W_hh, delta_h, delta_c):
    """ln||dL/dh_t|| and ln||dL/dc_t|| for t = T-1..0 of an LSTM.

    The states come from the forward pass; ``delta_h``, ``delta_c`` are the
    adjoints at step T-1 (the cell adjoint excludes the path through h_{T-1},
    which this kernel adds, as BPTT does). Both adjoints share one scale, so
    their ratio is exact.
    """
    T = hs.shape[0] - 1
    B, H = delta_h.shape
    dh = delta_h.copy()
    dc_carry = delta_c.copy()
    dz = np.empty((B, 4 * H), dh.dtype)
    dc = np.empty(H, dh.dtype)
    P = pack(W_hh, 1)
    logs = np.zeros(B)
    out_h = np.empty((T, B))
    out_c = np.empty((T, B))
    for t in range(T - 1, -1, -1):
        for b in range(B):
            g = gates[t, b]
            tc = tcs[t, b]
            cp = cs[t, b]
            for j in range(H):
                dc[j] = dc_carry[b, j] + dh[b, j] * g[3 * H + j] * (1.0 - tc[j] * tc[j])
            nh = row_norm(dh[b])
            nc = row_norm(dc)
            out_h[t, b] = logs[b] + (math.log(nh) if nh > 0.0 else -math.inf)
            out_c[t, b] = logs[b] + (math.log(nc) if nc > 0.0 else -math.inf)
            s = max(nh, nc)
            if s > 0.0 and math.isfinite(s):
                logs[b] += math.log(s)
            else:
                s = 1.0
            zb = dz[b]
            for j in range(H):
                ig = g[j]
                fg = g[H + j]
                gg = g[2 * H + j]
                og = g[3 * H + j]
                d = dc[j] / s
                zb[j] = d * gg * ig * (1.0 - ig)
                zb[H + j] = d * cp[j] * fg * (1.0 - fg)
                zb[2 * H + j] = d * ig * (1.0 - gg * gg)
                zb[3 * H + j] = dh[b, j] / s * tc[j] * og * (1.0 - og)
                dc_carry[b, j] = d * fg
        product(dz, P, dh)
    return out_h, out_c


class LSTM(Cell):
    """LSTM with gate blocks stacked i, f, g, o in W_ih, W_hh and b.

    ``c_t = f * c_{t-1} + i * g``, ``h_t = o * tanh(c_t)``, read-out
    ``y_t = W_out h_t + b_out``.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        D, H and O.
    """

    name = "lstm"
    gates = 4
    models = (Model("lstm", "lstm", "tanh", "LSTM"),)
    kernels = KERNELS
    initial_states = ("h0", "c0")
    cell_state = 1
    stored_per_step = 7
    state_blocks = 2
    probe_time_factor = 4.5

    def state_shapes(self, T, B):
        H = self.hidden_size
        return (T + 1, B, H), (T + 1, B, H), (T, B, 4 * H), (T, B, H)

    def _biases(self, params, rng, forget_bias, update_bias):
        params = super()._biases(params, rng, forget_bias, update_bias)
        H = self.hidden_size
        params["b"][H : 2 * H] = forget_bias
        return params

    def loss_and_grads(self, params, x, target, loss: str = "mse", score: str = "last",
                       lengths=None, h0=None, c0=None):
        """Loss and exact BPTT gradients; as :meth:`RNN.loss_and_grads`, plus
        ``c0`` (initial cell state, zeros by default) and ``cell_grad_norms``."""
        return self._loss_and_grads(params, x, target, loss, score, lengths,
                                    {"h0": h0, "c0": c0})

    def forward(self, params, x, lengths=None, h0=None, c0=None):
        """Run the network forward; see :class:`Forward`."""
        return self._forward(params, x, lengths, {"h0": h0, "c0": c0})

    def adjoint_lognorms(self, st, p, delta):
        return adjoint_lognorms(*st, p["W_hh"], delta, np.zeros_like(delta))

    def step_jacobian(self, st, p):
        """The Jacobian of the state (h, c), 2H-dimensional."""
        _, cs, gates, tcs = (s[:, 0] for s in st)
        W_hh = p["W_hh"]
        H = self.hidden_size
        Wi, Wf, Wg, Wo = (W_hh[j * H:(j + 1) * H] for j in range(4))

        def apply(t: int, q: np.ndarray) -> np.ndarray:
            i, f, g, o = (gates[t, j * H:(j + 1) * H] for j in range(4))
            tc, cp = tcs[t], cs[t]
            qh, qc = q[:H], q[H:]
            dc = ((cp * f * (1 - f))[:, None] * (Wf @ qh) + (g * i * (1 - i))[:, None] * (Wi @ qh)
                  + (i * (1 - g * g))[:, None] * (Wg @ qh) + f[:, None] * qc)
            dh = (tc * o * (1 - o))[:, None] * (Wo @ qh) + (o * (1 - tc * tc))[:, None] * dc
            return np.vstack([dh, dc])

        return 2 * H, gates.shape[0], apply
