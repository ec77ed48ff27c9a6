"""IndRNN (Li, Li, Cook, Zhu & Gao 2018): h_t = phi(W_ih x_t + u * h_{t-1} + b).

The recurrent weight is a vector u (H,): every unit sees only its own past
state (``*`` is the elementwise product), so the step Jacobian is the
diagonal matrix diag(phi'(a_t) u) and a unit's gradient through time is the
product of its own u_j phi'(a_{t,j}) (the paper's Sec. 3.1). phi is ReLU by
default (the paper's choice) or tanh.

Source: S. Li, W. Li, C. Cook, C. Zhu, Y. Gao, "Independently Recurrent
Neural Network (IndRNN): Building A Longer and Deeper RNN", CVPR 2018,
https://arxiv.org/abs/1803.04831; the authors' code,
https://github.com/Sunnydreamrain/IndRNN_Theano_Lasagne (``adding/adding.py``
and the README's "Considerations in implementation").

The kernels (the roles of :mod:`gradpath.cells.pipeline`), built like the
vanilla RNN's (:mod:`gradpath.cells.rnn`): the forward pass keeps the states
h_t (T+1, B, H) and nothing else; the backward pass injects dL/dh_t from
dL/dy_t step by step and accumulates the gradients per row block during the
loop: du and db elementwise, row by row, and dW_ih a chunk of steps at a
time (one GEMM per chunk, from small ring buffers).
"""

from __future__ import annotations

import math

import numpy as np

from ..checks import integer as _positive_int
from ..kernels.common import (
    activate_row,
    activation_grad,
    add_drive,
    add_norm_scale,
    inject,
    renormalise,
)
from ..kernels.fpenv import jit_entry
from ..kernels.gemm import grad_product
from ..kernels.jit import jit
from . import pipeline
from .base import (
    ACTIVATIONS,
    Cell,
    Model,
)
from .pipeline import Kernels, adjoints_h, no_arrays, no_columns, parts_done, start_h

#: Rows (steps x block rows) per dW_ih GEMM in the backward pass, and the most
#: steps a chunk may hold as a share of T (as in :mod:`gradpath.cells.rnn`).
CHUNK_ROWS = 256
CHUNK_SHARE = 16

#: The paper's MAG: the most a unit's gradient may grow over the T steps of a
#: sequence through its recurrent weight alone, |u_j|^T <= MAG, i.e.
#: |u_j| <= MAG**(1/T). The paper's adding problem (Sec. 4.1) constrains
#: |u_n| to (0, 2**(1/T)); the authors' code (``adding.py``, ``--MAG 2``)
#: clips u to [-2**(1/T), 2**(1/T)] before every training step.
U_MAGNITUDE = 2.0
#: tanh's extra headroom in the authors' code: ``U_bound = (MAG /
#: 0.9**(T/10))**(1/T)``, i.e. 0.9**(-1/10) = 1.0106 times ReLU's bound
#: (tanh' < 1 shrinks the gradient on top of u).
TANH_HEADROOM = 0.9 ** -0.1


@jit
def prepare(rec):
    """(W_ih.T C-contiguous (D, H), b, u) from rec = (W_ih, u, b)."""
    W_ih, u, b = rec
    return np.ascontiguousarray(W_ih.T), b, u


@jit
def _recur_row(a, u, hp):
    """``a += u * hp`` for one row: the recurrent input, elementwise."""
    for j in range(a.shape[0]):
        a[j] += u[j] * hp[j]


@jit
def forward_rows(x, lengths, act, w, st, cols, b0, b1):
    """Every step of the forward pass for batch rows ``b0 <= b < b1``."""
    w_ih_t, b, u = w
    hs = st[0]
    T, B, _ = x.shape
    H = u.shape[0]
    n = b1 - b0
    a = np.empty((n, H), x.dtype)
    tmp = np.empty((n, H), x.dtype)
    for t in range(T):
        a[:] = 0.0
        add_drive(a, x[t, b0:b1], w_ih_t, b, tmp, B)
        for r in range(n):
            bb = b0 + r
            h = hs[t + 1, bb]
            if t < lengths[bb]:
                _recur_row(a[r], u, hs[t, bb])
                activate_row(a[r], h, act)
            else:
                h[:] = 0.0


@jit
def grad_parts(x, st):
    """A row block's own dW_ih (H, D), du (H,), db (H,), accumulated during its
    backward pass."""
    H = st[0].shape[2]
    D = x.shape[2]
    return np.zeros((H, D), x.dtype), np.zeros(H, x.dtype), np.zeros(H, x.dtype)


@jit
def _row_grads(d, c, hp, u, du, db):
    """One row's step of BPTT after ``d`` became dL/da_t: ``du += d * h_{t-1}``,
    ``db += d``, and the carry ``c = d * u`` (dL/dh_{t-1} through the recurrence)."""
    for j in range(d.shape[0]):
        dj = d[j]
        du[j] += dj * hp[j]
        db[j] += dj
        c[j] = dj * u[j]


@jit
def _accumulate(dbuf, xbuf, k, dW_ih):
    """Add the first ``k`` buffered steps to dW_ih (one product)."""
    _, n, H = dbuf.shape
    D = xbuf.shape[2]
    grad_product(dbuf.reshape(-1, H)[:k * n], xbuf.reshape(-1, D)[:k * n], dW_ih, 0, H,
                 0, D)


@jit
def backward_rows(dy, W_out, x, lengths, act, w, st, carry, norms, part, cols, b0, b1):
    """BPTT for batch rows ``b0 <= b < b1``: ``carry[0]`` ends as dL/dh0; this
    block's dL/dW_ih (H, D), dL/du and dL/db are added to ``part``.

    A row's carry stays zero at the steps past its length (it starts zero and
    is first written at t = length - 1), so its state there takes no gradient.
    """
    u = w[2]
    hs = st[0]
    c = carry[0]
    gnorm = norms[0]
    dW_ih, du, db = part
    T, B, D = x.shape
    H = u.shape[0]
    n = b1 - b0
    K = max(1, min(-(-CHUNK_ROWS // n), T // CHUNK_SHARE))
    dbuf = np.empty((K, n, H), x.dtype)  # dL/da for K steps
    xbuf = np.empty((K, n, D), x.dtype)  # x_t of the same steps
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
            gnorm[t, bb] = add_norm_scale(d, c[bb], hs[t + 1, bb], act)
            _row_grads(d, c[bb], hs[t, bb], u, du, db)
        xbuf[k] = x[t, b0:b1]
        k += 1
        if k == K or t == 0:
            _accumulate(dbuf, xbuf, k, dW_ih)
            k = 0


@jit
def serial(x, rec, init, W_out, b_out, lengths, target_f, target_i, act, loss_code, score, st,
           dy, acc, G, sync):
    return pipeline.serial(prepare, start_h, forward_rows, adjoints_h, grad_parts, backward_rows,
                           no_columns, parts_done, x, rec, init, W_out, b_out, lengths, target_f,
                           target_i, act, loss_code, score, st, dy, acc, G, sync)


@jit
def block(x, lengths, act, w, st, head, out, carry, norms, acc, phase, part, fcols, bcols, c, g0,
          g1, parties, p0, p1, b0, b1):
    pipeline.block(forward_rows, backward_rows, no_columns, x, lengths, act, w, st, head, out,
                   carry, norms, acc, phase, part, fcols, bcols, c, g0, g1, parties, p0, p1, b0,
                   b1)


KERNELS = Kernels(prepare, start_h, forward_rows, adjoints_h, grad_parts, backward_rows,
                  no_arrays, no_columns, parts_done, serial, block, dense=False)


@jit_entry(blas=False)
def adjoint_lognorms(hs, u, act, delta):
    """ln||dL/dh_t|| for t = T-1..0 given dL/dh_{T-1} = ``delta`` (B, H),
    renormalised every step (:func:`gradpath.kernels.common.renormalise`):
    dL/dh_{t-1} = dL/dh_t * phi'(a_t) * u.

    ``hs`` is (T+1, B, H) from the forward pass. Returns (T, B); row t holds
    ln||delta_t||, with row T-1 = ln||delta||.
    """
    T = hs.shape[0] - 1
    B, H = delta.shape
    d = delta.copy()
    logs = np.zeros(B)
    out = np.empty((T, B))
    for t in range(T - 1, -1, -1):
        for b in range(B):
            db = d[b]
            out[t, b] = renormalise(db, logs, b)
            h = hs[t + 1, b]
            for i in range(H):
                db[i] = db[i] * activation_grad(h[i], act) * u[i]
    return out


def _u_bound_arg(value) -> float | None:
    """``u_bound``: None (the paper's bound for each T) or a positive number (inf: none)."""
    if value is None:
        return None
    ok = (not isinstance(value, bool)
          and isinstance(value, int | float | np.integer | np.floating)
          and value > 0)  # NaN fails this too
    if not ok:
        raise ValueError(f"u_bound: expected None or a positive number, got {value!r}")
    return float(value)


class IndRNN(Cell):
    """Independently recurrent network: ``h_t = phi(W_ih x_t + u * h_{t-1} + b)``
    with a recurrent weight vector u (H,) (``*`` elementwise), read-out
    ``y_t = W_out h_t + b_out``.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        D, H and O.
    activation : {"relu", "tanh"}
        phi; ReLU is the paper's.
    u_bound : float or None
        The bound of :meth:`project`, |u_j| <= u_bound for every sequence
        length; None (default): the paper's bound for the length T at hand,
        ``2**(1/T)`` for ReLU (Sec. 4.1, adding problem) and the authors'
        ``(2 / 0.9**(T/10))**(1/T)`` for tanh (:meth:`max_abs`); ``math.inf``:
        no bound.

    Notes
    -----
    The constraint is a projection after each parameter update, not part of
    the model: call :meth:`project` after every optimiser step (the authors'
    code clips u before every training step, which is the same sequence of
    parameters from the second step on). The kernels and the gradients do
    not look at the bound.
    """

    name = "indrnn"
    gates = 1
    activations = ("relu", "tanh")
    models = (Model("indrnn", "indrnn", "relu", "IndRNN"),)
    kernels = KERNELS
    stored_per_step = 1
    dtype_param = "u"
    recurrent_blocks = 0
    block_parts = True

    def __init__(self, input_size: int, hidden_size: int, output_size: int,
                 activation: str = "relu", u_bound: float | None = None) -> None:
        super().__init__(input_size, hidden_size, output_size, activation)
        self.u_bound = _u_bound_arg(u_bound)

    def __repr__(self) -> str:
        bound = "" if self.u_bound is None else f", u_bound={self.u_bound!r}"
        return (f"{type(self).__name__}(input_size={self.input_size}, "
                f"hidden_size={self.hidden_size}, output_size={self.output_size}, "
                f"activation={self.activation!r}{bound})")

    def param_shapes(self):
        D, H, O = self.input_size, self.hidden_size, self.output_size
        return {"W_ih": (H, D), "u": (H,), "b": (H,), "W_out": (O, H), "b_out": (O,)}

    def _recurrent_init(self, init, gain, rng):
        """u, drawn first (:meth:`Cell.init_params` draws the rest, so with
        ``"identity"`` W_ih and W_out are the vanilla RNN's draws). The
        suite's recurrent initialisations map onto u as follows (``gain``
        scales each):

        * ``"identity"``: ``u = gain`` for every unit (no draw): diag(u) is
          gain * I, the IRNN's start (Le, Jaitly & Hinton 2015) and the
          authors' advice for the last IndRNN layer of a task read out at the
          last step ("all 1", README of IndRNN_Theano_Lasagne).
        * ``"gaussian"``: the paper's random start, ``u_j ~ gain * U(0, 1)``
          i.i.d. (the authors' README: "For relu, Uniform(0,1) is used to make
          different neurons keep different kinds of memory"; their adding
          problem draws U(0, 2**(1/T)), the upper end the bound of
          :meth:`project`). For the dense cells this init draws i.i.d.
          entries; for a diagonal the entries are the eigenvalues, so a
          Gaussian N(0, gain**2/H) would start every unit near 0 (no
          memory): the paper's law stands in for it.
        * ``"orthogonal"``: ``u_j = gain * s_j`` with random signs s_j = +-1.
          The diagonal orthogonal matrices are exactly diag(+-1), so this is
          gain * Q restricted to diagonals: every |u_j| = gain, like every
          singular value of gain * Q.

        W_ih is LeCun-scaled as every cell's (the authors' code draws
        N(0, 0.001**2): ``w_ih_std``); the forget and update biases are
        unused (checked like the gated cells').
        """
        H = self.hidden_size
        if init == "identity":
            return {"u": np.full(H, float(gain))}
        if init == "gaussian":
            return {"u": gain * rng.uniform(0.0, 1.0, H)}
        return {"u": gain * np.where(rng.random(H) < 0.5, -1.0, 1.0)}

    # -- the constraint on |u| ----------------------------------------------
    def max_abs(self, seq_len: int) -> float:
        """The bound on |u_j| for sequences of ``seq_len`` steps: ``u_bound``
        if given, else the paper's ``MAG**(1/T)`` with MAG = 2
        (:data:`U_MAGNITUDE`; Sec. 4.1: |u_n| in (0, 2**(1/T)) for the adding
        problem), times :data:`TANH_HEADROOM` for tanh (the authors' code)."""
        T = _positive_int(seq_len, "seq_len")
        if self.u_bound is not None:
            return self.u_bound
        bound = U_MAGNITUDE ** (1.0 / T)
        return bound * TANH_HEADROOM if self.activation == "tanh" else bound

    def project(self, params: dict, seq_len: int) -> dict:
        """Clip ``params["u"]`` in place to ``|u_j| <= max_abs(seq_len)``
        (:meth:`max_abs`); return ``params``.

        Meant to run after every parameter update of a training run on
        sequences of ``seq_len`` steps (the longest of a ragged batch). In
        float32 the bound is rounded down to a float32, so the clipped
        entries never exceed it. Raises ValueError if ``params["u"]`` is not a
        writeable float array of shape (H,) with finite entries.
        """
        bound = self.max_abs(seq_len)
        if not isinstance(params, dict) or "u" not in params:
            raise ValueError("params: expected a dict with key 'u'")
        u = params["u"]
        H = self.hidden_size
        if not isinstance(u, np.ndarray) or u.shape != (H,) \
                or u.dtype not in (np.float32, np.float64):
            got = (f"{type(u).__name__} {getattr(u, 'shape', '')} "
                   f"{getattr(u, 'dtype', '')}").strip()
            raise ValueError(f"params['u']: expected a float32 or float64 array of shape "
                             f"({H},), got {got}")
        if not u.flags.writeable:
            raise ValueError("params['u']: expected a writeable array (clipped in place)")
        if not np.isfinite(u).all():
            raise ValueError("params['u']: contains NaN or Inf")
        if math.isinf(bound):
            return params
        m = u.dtype.type(bound)
        if float(m) > bound:  # rounded up: take the next one down (compared in float64)
            m = np.nextafter(m, u.dtype.type(0))
        np.clip(u, -m, m, out=u)
        return params

    # -- the probe ------------------------------------------------------------
    def adjoint_lognorms(self, st, p, delta):
        return adjoint_lognorms(st[0], p["u"], self._act, delta), None

    def step_jacobian(self, st, p):
        """J_t = diag(phi'(a_t) * u), applied as a row scaling."""
        # the derivative taken in float64 from the (possibly float32) states
        hs = st[0][:, 0].astype(np.float64)
        u = p["u"].astype(np.float64)
        relu = self._act == ACTIVATIONS["relu"]

        def apply(t: int, q: np.ndarray) -> np.ndarray:
            h = hs[t + 1]
            d = (h > 0).astype(h.dtype) if relu else 1.0 - h * h
            return (d * u)[:, None] * q

        return self.hidden_size, hs.shape[0] - 1, apply
