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
all (t, b) after the loop.
"""

from __future__ import annotations

import numpy as np

from ..kernels.common import (
    ONE,
    add_drive,
    inject,
    renormalise,
    row_norm,
    sigmoid_,
    tanh_,
    weight_grad_arrays,
    weight_grads_block,
    weight_grads_done,
)
from ..kernels.fpenv import jit_entry
from ..kernels.gemm import pack, pack_recurrent, product
from ..kernels.jit import jit
from . import pipeline
from .base import Cell, Model
from .pipeline import Kernels, adjoints_h, no_parts, start_h, step_done, step_product


@jit
def cell_row(gx, gh, hp, b_hn, h):
    """One GRU update for one row.

    On entry ``gx`` (3H) holds W_ih x_t + b and ``gh`` (3H) holds W_hh h_{t-1}
    (blocks r, z, n); ``hp`` = h_{t-1}. On exit ``gx`` holds the activations
    (r, z, n), ``gh``'s n block holds W_hn h_{t-1} + b_hn (what BPTT needs)
    and h = (1 - z) n + z hp, with n = tanh(x_n + r (W_hn hp + b_hn)).
    """
    H = h.shape[0]
    for j in range(H):
        r = sigmoid_(gx[j] + gh[j])
        z = sigmoid_(gx[H + j] + gh[H + j])
        hn = gh[2 * H + j] + b_hn[j]
        gh[2 * H + j] = hn
        gx[j] = r
        gx[H + j] = z
        rr = gx[j]  # as stored (float32-rounded), as the backward pass sees it
        n = tanh_(gx[2 * H + j] + rr * gh[2 * H + j])
        gx[2 * H + j] = n
        zz = gx[H + j]
        # (1 - z) n + z h as n + z (h - n): one fused multiply-add whatever
        # the compiler contracts (a*b + c*d has two ways: see fma_)
        h[j] = n + zz * (hp[j] - n)


@jit
def cell_row_backward(dx, dh_, d, ch, hp):
    """One GRU backward step for one row; returns ||dL/dh_t||.

    On entry ``dx`` (3H) holds the activations (r, z, n), ``dh_``'s n block
    W_hn h_{t-1} + b_hn, ``d`` the direct dL/dh_t, ``ch`` the carry from step
    t+1 and ``hp`` = h_{t-1}. On exit ``dx`` holds dL/d(W_ih x_t + b) and
    ``dh_`` dL/d(W_hh h_{t-1} + [0, 0, b_hn]) (they differ in the n block by
    the factor r), and ``ch`` the direct part dL/dh_t * z of dL/dh_{t-1}.
    """
    H = d.shape[0]
    for j in range(H):
        d[j] += ch[j]
    nh = row_norm(d)
    for j in range(H):
        r = dx[j]
        z = dx[H + j]
        n = dx[2 * H + j]
        hn = dh_[2 * H + j]
        g = d[j]
        dan = g * (ONE - z) * (ONE - n * n)
        dar = dan * hn * r * (ONE - r)
        daz = g * (hp[j] - n) * z * (ONE - z)
        dx[j] = dar
        dx[H + j] = daz
        dx[2 * H + j] = dan
        dh_[j] = dar
        dh_[H + j] = daz
        dh_[2 * H + j] = dan * r
        ch[j] = g * z
    return nh


@jit
def prepare(rec):
    """(W_hh.T packed, W_ih.T, b, W_hh packed, b_hn), as
    :func:`gradpath.cells.pipeline.prepare_dense` with b_hn."""
    W_ih, W_hh, b, b_hn = rec
    fwd, bwd = pack_recurrent(W_hh)
    return fwd, np.ascontiguousarray(W_ih.T), b, bwd, b_hn


@jit
def forward_rows(x, lengths, act, w, st, cols, b0, b1):
    """Every step of the forward pass for batch rows ``b0 <= b < b1``: states
    hs (T+1, B, H), gate activations ``gates`` (T, B, 3H) and the recurrent
    products ``hgates`` (n block: W_hn h + b_hn)."""
    w_t, w_ih_t, b, _, b_hn = w
    hs, gates, hgates = st
    T, B, _ = x.shape
    G = gates.shape[2]
    tmp = np.empty((b1 - b0, G), x.dtype)
    passed = 0
    for t in range(T):
        gx = gates[t, b0:b1]
        passed = step_product(hs[t], w_t, hgates[t], cols, passed, t)
        gx[:] = 0.0
        add_drive(gx, x[t, b0:b1], w_ih_t, b, tmp, B)
        for bb in range(b0, b1):
            h = hs[t + 1, bb]
            if t >= lengths[bb]:
                h[:] = 0.0
                gates[t, bb] = 0.0
                hgates[t, bb] = 0.0
                continue
            cell_row(gates[t, bb], hgates[t, bb], hs[t, bb], b_hn, h)


@jit
def backward_rows(dy, W_out, x, lengths, act, w, st, carry, norms, part, cols, b0, b1):
    """BPTT for batch rows ``b0 <= b < b1``: ``gates[t]`` and ``hgates[t]``
    become the gradients of the input and recurrent products; ``carry[0]``
    ends as dL/dh0."""
    W_hh = w[3]  # packed
    hs, gates, hgates = st
    c = carry[0]
    gnorm = norms[0]
    H = hs.shape[2]
    dt = gates.dtype
    d = np.empty(H, dt)
    direct = np.empty((b1 - b0, H), dt)
    passed = 0
    for t in range(gates.shape[0] - 1, -1, -1):
        for bb in range(b0, b1):
            if t >= lengths[bb]:
                gates[t, bb] = 0.0
                hgates[t, bb] = 0.0
                c[bb] = 0.0
                continue
            inject(d, dy[t, bb], W_out)
            gnorm[t, bb] = cell_row_backward(gates[t, bb], hgates[t, bb], d, c[bb], hs[t, bb])
        # dL/dh_{t-1} = (dL/dh_t) z + dL/d(W_hh h_{t-1}) W_hh
        direct[:] = c[b0:b1]
        passed = step_product(hgates[t], W_hh, c, cols, passed, t)
        for r in range(b1 - b0):
            cr = c[b0 + r]
            dr = direct[r]
            for j in range(H):
                cr[j] += dr[j]
        step_done(cols)


@jit
def grad_arrays(x, st):
    gates = st[1]
    return weight_grad_arrays(gates, st[0], x), gates.shape[2]


@jit
def grad_columns(x, st, acc, g0, g1, t0, t1):
    weight_grads_block(st[1], st[2], st[0], acc, g0, g1, t0, t1)


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
def grads_done(x, st, acc, part):
    return weight_grads_done(acc) + (_bias_grad(st[2]),)


@jit
def serial(x, rec, init, W_out, b_out, lengths, target_f, target_i, act, loss_code, score, st,
           dy, acc, G, sync):
    return pipeline.serial(prepare, start_h, forward_rows, adjoints_h, no_parts, backward_rows,
                           grad_columns, grads_done, x, rec, init, W_out, b_out, lengths, target_f,
                           target_i, act, loss_code, score, st, dy, acc, G, sync)


@jit
def block(x, lengths, act, w, st, head, out, carry, norms, acc, phase, part, fcols, bcols, c, g0,
          g1, parties, p0, p1, b0, b1):
    pipeline.block(forward_rows, backward_rows, grad_columns, x, lengths, act, w, st, head, out,
                   carry, norms, acc, phase, part, fcols, bcols, c, g0, g1, parties, p0, p1, b0,
                   b1)


@jit
def trail(x, st, acc, G, sync):
    pipeline.trail(grad_columns, x, st, acc, G, sync)


KERNELS = Kernels(prepare, start_h, forward_rows, adjoints_h, no_parts, backward_rows,
                  grad_arrays, grad_columns, grads_done, serial, block, trail)


@jit_entry
def adjoint_lognorms(hs, gates, hgates, W_hh, delta):
    """ln||dL/dh_t|| for t = T-1..0 of a GRU given dL/dh_{T-1} = ``delta`` (B, H).

    ``hs`` (T+1, B, H), ``gates`` (T, B, 3H) activations (r, z, n) and
    ``hgates`` (whose n block holds W_hn h_{t-1} + b_hn) come from the
    forward pass. Returns (T, B) as the RNN's does.
    """
    T = hs.shape[0] - 1
    B, H = delta.shape
    d = delta.copy()
    dah = np.empty((B, 3 * H), d.dtype)
    direct = np.empty((B, H), d.dtype)
    P = pack(W_hh, 1)
    logs = np.zeros(B)
    out = np.empty((T, B))
    for t in range(T - 1, -1, -1):
        for b in range(B):
            out[t, b] = renormalise(d[b], logs, b)
            g = gates[t, b]
            hn = hgates[t, b]
            hp = hs[t, b]
            for j in range(H):
                r = g[j]
                z = g[H + j]
                n = g[2 * H + j]
                dj = d[b, j]
                dan = dj * (1.0 - z) * (1.0 - n * n)
                dah[b, j] = dan * hn[2 * H + j] * r * (1.0 - r)
                dah[b, H + j] = dj * (hp[j] - n) * z * (1.0 - z)
                dah[b, 2 * H + j] = dan * r
                direct[b, j] = dj * z
        # dL/dh_{t-1} = (dL/dh_t) z + dL/d(W_hh h_{t-1}) W_hh
        product(dah, P, d)
        for b in range(B):
            for j in range(H):
                d[b, j] += direct[b, j]
    return out


class GRU(Cell):
    """GRU with gate blocks stacked r, z, n in W_ih, W_hh and b; exactly
    ``torch.nn.GRU`` with ``bias_ih = b`` and ``bias_hh = [0, 0, b_hn]``.

    ``r = sigmoid(W_ir x + W_hr h + b_r)``, ``z = sigmoid(W_iz x + W_hz h + b_z)``,
    ``n = tanh(W_in x + b_n + r * (W_hn h + b_hn))``, ``h' = (1 - z) n + z h``;
    read-out ``y_t = W_out h_t + b_out``.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        D, H and O.
    """

    name = "gru"
    gates = 3
    models = (Model("gru", "gru", "tanh", "GRU"),)
    kernels = KERNELS
    stored_per_step = 7
    probe_time_factor = 3.8

    def param_shapes(self):
        D, H, O = self.input_size, self.hidden_size, self.output_size
        return {"W_ih": (3 * H, D), "W_hh": (3 * H, H), "b": (3 * H,), "b_hn": (H,),
                "W_out": (O, H), "b_out": (O,)}

    def state_shapes(self, T, B):
        H = self.hidden_size
        return (T + 1, B, H), (T, B, 3 * H), (T, B, 3 * H)

    def _biases(self, params, rng, forget_bias, update_bias):
        params = super()._biases(params, rng, forget_bias, update_bias)
        H = self.hidden_size
        params["b"][H : 2 * H] = update_bias
        params["b_hn"] = np.zeros(H)
        return params

    def adjoint_lognorms(self, st, p, delta):
        return adjoint_lognorms(*st, p["W_hh"], delta), None

    def step_jacobian(self, st, p):
        """diag(z) + diag((1 - z)(1 - n^2)) [diag(r) W_hn + diag(hn r (1 - r)) W_hr]
        + diag((h_{t-1} - n) z (1 - z)) W_hz."""
        hs, gates, hgates = (s[:, 0] for s in st)
        W_hh = p["W_hh"]
        H = self.hidden_size
        Wr, Wz, Wn = (W_hh[j * H:(j + 1) * H] for j in range(3))

        def apply(t: int, q: np.ndarray) -> np.ndarray:
            r, z, n = (gates[t, j * H:(j + 1) * H] for j in range(3))
            hn, hp = hgates[t, 2 * H:], hs[t]
            dn = ((1 - z) * (1 - n * n))[:, None] * (r[:, None] * (Wn @ q)
                                                     + (hn * r * (1 - r))[:, None] * (Wr @ q))
            return z[:, None] * q + dn + ((hp - n) * z * (1 - z))[:, None] * (Wz @ q)

        return H, gates.shape[0], apply
