"""expRNN (Lezcano-Casado & Martinez-Rubio 2019): an orthogonal RNN by the
exponential map, h_t = modReLU(W_ih x_t + W_hh h_{t-1}; b), W_hh = expm(A - A^T).

A - A^T is skew-symmetric, so W_hh = expm(A - A^T) is orthogonal (in SO(H))
for every A: the constraint holds by construction, and A is trained without
any projection. The nonlinearity is modReLU (Arjovsky, Shah & Bengio 2016,
the real case): phi(z)_i = sign(z_i) relu(|z_i| + b_i), its bias b
the cell's only bias (the pre-activation has none). Its derivatives follow
from h = phi(z) alone: dphi_i/dz_i = [h_i != 0] and dphi_i/db_i =
sign(h_i) [h_i != 0], so the kernels keep only the states h_t, like the
vanilla RNN's.

Sources: M. Lezcano-Casado, D. Martinez-Rubio, "Cheap Orthogonal Constraints
in Neural Networks: A Simple Parametrization of the Orthogonal and Unitary
Group", ICML 2019, https://arxiv.org/abs/1901.08428; the authors' code,
https://github.com/Lezcano/expRNN (``orthogonal.py``: ``OrthogonalRNN``,
``Orthogonal.retraction``, ``modrelu``; ``initialization.py``:
``henaff_init_``, ``cayley_init_``; ``1_copying.py``: the two optimisers).
M. Arjovsky, A. Shah, Y. Bengio, "Unitary Evolution Recurrent Neural
Networks", ICML 2016, https://arxiv.org/abs/1511.06464 (modReLU).

The kernels (the roles of :mod:`gradpath.cells.pipeline`) are the vanilla
RNN's (:mod:`gradpath.cells.rnn`) with modReLU in place of tanh/ReLU: they
take rec = (W_ih, W_hh, b) with W_hh computed from A by :meth:`ExpRNN.kernel_params`
(in float64 from the eigendecomposition of the skew A - A^T, rounded to the
parameters' dtype), and return dL/dW_ih, dL/dW_hh and dL/db summed per row
block during the backward pass. :meth:`ExpRNN.param_grads` maps dL/dW_hh to
dL/dA through the adjoint of the Frechet derivative of the exponential
(:func:`grad_A`; the tests hold both against scipy's Pade-based ``expm`` and
``expm_frechet``).

Cost: every call (loss and gradients, forward, probe) computes expm(A - A^T)
afresh, and every gradient call the Frechet adjoint as well: one complex
eigendecomposition and a few H x H products each, nothing cached between
calls. They dominate small batches of short sequences at large H.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..kernels.common import (
    ZERO,
    add_drive,
    inject,
    norm_from,
    renormalise,
    sum_squares,
)
from ..kernels.fpenv import jit_entry
from ..kernels.gemm import grad_product, pack, pack_recurrent, product
from ..kernels.jit import jit
from . import pipeline
from .base import Cell, Model
from .pipeline import (
    Kernels,
    adjoints_h,
    no_arrays,
    no_columns,
    parts_done,
    start_h,
    step_product,
)

#: Rows (steps x block rows) per weight-gradient GEMM in the backward pass,
#: and the most steps a chunk may hold as a share of T (as in :mod:`gradpath.cells.rnn`).
CHUNK_ROWS = 256
CHUNK_SHARE = 16

#: modReLU's bias at initialisation: U(-MODRELU_BIAS, MODRELU_BIAS), the
#: authors' ``modrelu.reset_parameters`` (``uniform_(-0.01, 0.01)``).
MODRELU_BIAS = 0.01

#: The authors' commands reproducing the paper's experiments (README of
#: https://github.com/Lezcano/expRNN at commit 26658bc, the ICML 2019 release,
#: "Commands to Reproduce the Experiments"): (task, H) -> (init, lr, lr_orth),
#: RMSprop for both groups (lr for every parameter but A, lr_orth for A; see
#: :attr:`ExpRNN.lr_groups`), always lr_orth = lr / 10.
PAPER_LEARNING_RATES: dict[tuple[str, int], tuple[str, float, float]] = {
    ("copy", 190): ("henaff", 2e-4, 2e-5),  # L = 1000 and L = 2000
    ("mnist", 170): ("cayley", 7e-4, 7e-5),
    ("mnist", 360): ("cayley", 5e-4, 5e-5),
    ("mnist", 512): ("cayley", 3e-4, 3e-5),
    ("pmnist", 170): ("cayley", 1e-3, 1e-4),
    ("pmnist", 360): ("cayley", 7e-4, 7e-5),
    ("pmnist", 512): ("cayley", 5e-4, 5e-5),
    ("timit", 224): ("henaff", 1e-3, 1e-4),
    ("timit", 322): ("henaff", 7e-4, 7e-5),
    ("timit", 425): ("henaff", 7e-4, 7e-5),
}


# -- the kernels -----------------------------------------------------------------


@jit
def prepare(rec):
    """(W_hh.T packed, W_ih.T (C-contiguous), a zero drive bias, b, W_hh
    packed) from rec = (W_ih, W_hh, b): the pre-activation has no additive
    bias (b is modReLU's), so the shared input product adds zeros."""
    W_ih, W_hh, b = rec
    fwd, bwd = pack_recurrent(W_hh)
    return fwd, np.ascontiguousarray(W_ih.T), np.zeros(b.shape[0], b.dtype), b, bwd


@jit
def modrelu_row(z, b, h):
    """``h[:] = sign(z) relu(|z| + b)`` for one row (NaN stays NaN; sign(0) = 0)."""
    for i in range(h.shape[0]):
        v = z[i]
        m = abs(v) + b[i]
        if m > 0.0:
            h[i] = m if v > 0.0 else (-m if v < 0.0 else ZERO * m)
        elif m <= 0.0:
            h[i] = 0.0
        else:
            h[i] = m  # NaN


@jit
def forward_rows(x, lengths, act, w, st, cols, b0, b1):
    """Every step of the forward pass for batch rows ``b0 <= b < b1`` (the
    recurrent product: ``cols``' share, :func:`pipeline.step_product`)."""
    w_t, w_ih_t, zero, b, _ = w
    hs = st[0]
    T, B, _ = x.shape
    n = b1 - b0
    shared = cols[6]  # the pre-activations (B, H)
    a = shared[b0:b1]
    tmp = np.empty_like(a)
    passed = 0
    for t in range(T):
        passed = step_product(hs[t], w_t, shared, cols, passed, t)
        add_drive(a, x[t, b0:b1], w_ih_t, zero, tmp, B)
        for r in range(n):
            bb = b0 + r
            h = hs[t + 1, bb]
            if t < lengths[bb]:
                modrelu_row(a[r], b, h)
            else:
                h[:] = 0.0


@jit
def grad_parts(x, st):
    """A row block's own dW_ih (H, D), dW_hh (H, H) and db (H,), accumulated
    during its backward pass."""
    H = st[0].shape[2]
    D = x.shape[2]
    return np.zeros((H, D), x.dtype), np.zeros((H, H), x.dtype), np.zeros(H, x.dtype)


@jit
def _row_step(d, c, h, db):
    """One BPTT step of a row: ``d += c`` makes d the total dL/dh_t; return
    ||d||; then ``d *= [h != 0]`` (dL/dz_t) and ``db += d * sign(h)``."""
    H = d.shape[0]
    for i in range(H):
        d[i] += c[i]
    n = norm_from(d, sum_squares(d))
    for j in range(H):
        hj = h[j]
        dj = d[j] if hj != 0.0 else ZERO * d[j]  # 0 * NaN stays NaN
        d[j] = dj
        db[j] += dj if hj > 0.0 else -dj
    return n


@jit
def _accumulate(dbuf, hbuf, xbuf, k, dW_ih, dW_hh):
    """Add the first ``k`` buffered steps to dW_hh and dW_ih (one product each)."""
    _, n, H = dbuf.shape
    D = xbuf.shape[2]
    rows = k * n
    d2 = dbuf.reshape(-1, H)
    grad_product(d2[:rows], hbuf.reshape(-1, H)[:rows], dW_hh, 0, H, 0, H)
    grad_product(d2[:rows], xbuf.reshape(-1, D)[:rows], dW_ih, 0, H, 0, D)


@jit
def backward_rows(dy, W_out, x, lengths, act, w, st, carry, norms, part, cols, b0, b1):
    """BPTT for batch rows ``b0 <= b < b1``: ``carry[0]`` ends as dL/dh0; this
    block's dL/dW_ih (H, D), dL/dW_hh (H, H) and dL/db are added to ``part``.
    dL/dz_t of every row meets in ``cols``' shared array for the product."""
    W_hh = w[4]  # packed
    hs = st[0]
    c = carry[0]
    gnorm = norms[0]
    dW_ih, dW_hh, db = part
    T, B, D = x.shape
    H = hs.shape[2]
    n = b1 - b0
    K = max(1, min(-(-CHUNK_ROWS // n), T // CHUNK_SHARE))
    dbuf = np.empty((K, n, H), x.dtype)  # dL/dz for K steps
    hbuf = np.empty((K, n, H), x.dtype)  # h_{t-1} of the same steps
    xbuf = np.empty((K, n, D), x.dtype)
    shared = cols[6]
    dpre = shared[b0:b1]  # dL/dz_t of this block's rows
    k = 0
    passed = 0
    for t in range(T - 1, -1, -1):
        for r in range(n):
            bb = b0 + r
            d = dpre[r]
            if t >= lengths[bb]:
                d[:] = 0.0
                continue
            inject(d, dy[t, bb], W_out)
            gnorm[t, bb] = _row_step(d, c[bb], hs[t + 1, bb], db)
        dbuf[k] = dpre
        hbuf[k] = hs[t, b0:b1]
        xbuf[k] = x[t, b0:b1]
        passed = step_product(shared, W_hh, c, cols, passed, t)
        k += 1
        if k == K or t == 0:
            _accumulate(dbuf, hbuf, xbuf, k, dW_ih, dW_hh)
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
                  no_arrays, no_columns, parts_done, serial, block)


@jit_entry
def adjoint_lognorms(hs, W_hh, delta):
    """ln||dL/dh_t|| for t = T-1..0 given dL/dh_{T-1} = ``delta`` (B, H),
    renormalised every step (:func:`gradpath.kernels.common.renormalise`):
    dL/dh_{t-1} = W_hh^T ([h_t != 0] * dL/dh_t).

    ``hs`` is (T+1, B, H) from the forward pass. Returns (T, B); row t holds
    ln||delta_t||, with row T-1 = ln||delta||.
    """
    T = hs.shape[0] - 1
    B, H = delta.shape
    d = delta.copy()
    tmp = np.empty((B, H), d.dtype)
    P = pack(W_hh, 1)
    logs = np.zeros(B)
    out = np.empty((T, B))
    for t in range(T - 1, -1, -1):
        for b in range(B):
            out[t, b] = renormalise(d[b], logs, b)
            h = hs[t + 1, b]
            for i in range(H):
                tmp[b, i] = d[b, i] if h[i] != 0.0 else 0.0 * d[b, i]
        product(tmp, P, d)
    return out


# -- the exponential map and its adjoint -------------------------------------------


def skew(A: np.ndarray) -> np.ndarray:
    """X = A - A^T in float64."""
    A = np.asarray(A, np.float64)
    return A - A.T


def _eig_skew(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mu, V) with X = V diag(i mu) V^H, V unitary, for a real skew-symmetric
    X: the eigendecomposition of the Hermitian -iX (LAPACK's zheevd)."""
    return np.linalg.eigh(-1j * X)


def recurrent_weight(A: np.ndarray) -> np.ndarray:
    """W_hh = expm(A - A^T) in float64 (orthogonal to rounding), from the
    eigendecomposition of the skew X = A - A^T: V diag(e^{i mu}) V^H."""
    mu, V = _eig_skew(skew(A))
    return ((V * np.exp(1j * mu)) @ V.conj().T).real


def grad_A(A: np.ndarray, dW_hh: np.ndarray) -> np.ndarray:
    """dL/dA in float64 from G = dL/dW_hh, W_hh = expm(A - A^T).

    With X = A - A^T: dL/dX = L_exp(X^T, G), the adjoint (under the Frobenius
    inner product) of the Frechet derivative L_exp(X, .) of the exponential
    at X; then dL/dA = dL/dX - (dL/dX)^T. X is normal, so the Daleckii-Krein
    formula gives it from X^T's eigendecomposition: V (F o (V^H G V)) V^H
    with F the divided differences of exp at the eigenvalues i mu, written
    e^{i(a+c)/2} sin((a-c)/2) / ((a-c)/2) (no cancellation for close
    eigenvalues). One complex eigendecomposition and four products, a
    fraction of the Pade-based ``scipy.linalg.expm_frechet``'s cost.
    """
    mu, V = _eig_skew(skew(A).T)
    a, c = mu[:, None], mu[None, :]
    F = np.exp(0.5j * (a + c)) * np.sinc((a - c) / (2.0 * np.pi))
    Vh = V.conj().T
    dX = (V @ (F * (Vh @ np.asarray(dW_hh, np.float64) @ V)) @ Vh).real
    return dX - dX.T


def _paper_skew(init: str, H: int, rng: np.random.Generator) -> np.ndarray:
    """A of the authors' initialisations, as the transpose of their
    upper-triangular parameter (see :meth:`ExpRNN._recurrent_init`)."""
    A = np.zeros((H, H))
    k = H // 2
    if init == "identity" or k == 0:
        return A
    if init == "orthogonal":  # henaff_init_: angles U(-pi, pi)
        diag = rng.uniform(-np.pi, np.pi, k)
    else:  # cayley_init_: -sqrt((1 - cos s) / (1 + cos s)) = -tan(s / 2), s ~ U(0, pi/2)
        s = rng.uniform(0.0, np.pi / 2.0, k)
        diag = -np.sqrt((1.0 - np.cos(s)) / (1.0 + np.cos(s)))
    idx = 2 * np.arange(k)
    A[idx + 1, idx] = diag  # the paper's D[2i, 2i+1], transposed
    return A


class ExpRNN(Cell):
    """Orthogonal RNN by the exponential map:
    ``h_t = modReLU(W_ih x_t + W_hh h_{t-1}; b)`` with ``W_hh = expm(A - A^T)``
    and ``modReLU(z; b)_i = sign(z_i) relu(|z_i| + b_i)``; read-out
    ``y_t = W_out h_t + b_out``.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        D, H and O.
    activation : ignored
        The nonlinearity is fixed (modReLU); the argument is accepted like
        every fixed-nonlinearity cell's.

    Notes
    -----
    Parameters: ``W_ih`` (H, D), ``A`` (H, H), ``b`` (H,) (modReLU's bias),
    ``W_out`` (O, H), ``b_out`` (O,). Only the skew part of A matters:
    A and A + S (S symmetric) give the same network, and dL/dA is
    skew-symmetric, so gradient steps never change A's symmetric part.

    Learning rates (:attr:`lr_groups`): the paper trains A with its own
    learning rate ``lr_orth``, with RMSprop for both groups; the authors'
    README: "having the learning rate of the non-orthogonal parameters to be
    10 times that of the orthogonal parameters yields the best performance".
    Their settings (:data:`PAPER_LEARNING_RATES`): copying problem, H = 190,
    lr = 2e-4, lr_orth = 2e-5 (also ``1_copying.py``'s defaults); pixel MNIST
    7e-4 ... 3e-4; permuted MNIST 1e-3 ... 5e-4; TIMIT 1e-3 ... 7e-4 (each
    with lr_orth = lr / 10). Their code parametrises X = U - U^T by the
    strictly upper triangle U of A alone; here X = A - A^T over all of A, so
    an elementwise optimiser (SGD, momentum, RMSprop, Adam: the two
    entries (i, j) and (j, i) get opposite gradients and equal second
    moments) moves X exactly twice as fast for the same learning rate: use
    ``lr_orth / 2`` to follow the authors' trajectory of X.
    """

    name = "exprnn"
    gates = 1
    activations = ()
    fixed_activation = "modrelu"
    #: Kaiming-normal input weights (the authors'): N(0, 2 / D)
    input_var_gain = 2.0
    models = (Model("exprnn", "exprnn", "modrelu", "expRNN"),)
    kernels = KERNELS
    stored_per_step = 1
    dtype_param = "A"
    block_parts = True
    #: Parameters trained with another learning rate than ``lr``: A with
    #: ``lr_orth`` (the paper's separate optimiser for the skew parameter).
    lr_groups: ClassVar[dict[str, str]] = {"A": "lr_orth"}

    def __init__(self, input_size: int, hidden_size: int, output_size: int,
                 activation: str | None = None) -> None:
        super().__init__(input_size, hidden_size, output_size)

    def param_shapes(self):
        D, H, O = self.input_size, self.hidden_size, self.output_size
        return {"W_ih": (H, D), "A": (H, H), "b": (H,), "W_out": (O, H), "b_out": (O,)}

    def kernel_params(self, p):
        """rec = (W_ih, W_hh, b) with W_hh = expm(A - A^T), computed in float64
        and rounded to the parameters' dtype (afresh on every call)."""
        return p["W_ih"], self.recurrent_weight(p), p["b"]

    def recurrent_weight(self, p) -> np.ndarray:
        """W_hh = expm(A - A^T) in the dtype of ``p["A"]``, C-contiguous and writeable."""
        A = p["A"]
        return np.require(recurrent_weight(A), dtype=A.dtype, requirements=["C", "W"])

    def param_grads(self, p, rec_grads, dW_out, db_out):
        """dL/dW_ih and dL/db as the kernels give them; dL/dA from dL/dW_hh
        (:func:`grad_A`, in float64, rounded to the parameters' dtype)."""
        dW_ih, dW_hh, db = rec_grads
        dA = np.ascontiguousarray(grad_A(p["A"], dW_hh), dtype=p["A"].dtype)
        return {"W_ih": dW_ih, "A": dA, "b": db, "W_out": dW_out, "b_out": db_out}

    def _recurrent_init(self, init, gain, rng):
        """The skew parameter A, drawn first. The suite's recurrent
        initialisations map onto the authors' initialisations of the skew
        parameter (``initialization.py``), both block-diagonal: rotations by
        angles theta_i in the planes of the coordinate pairs (2i, 2i+1),
        i < H // 2 (for odd H the last unit is left alone):

        * ``"orthogonal"``: ``henaff_init_``, theta_i ~ U(-pi, pi) (Henaff,
          Szlam & LeCun 2016); the authors' default. (Their ICML 2019
          release, commit 26658bc, drew U(-pi, 0): the same eigenvalues
          exp(+-i theta_i) in distribution.)
        * ``"gaussian"``: ``cayley_init_``, theta_i = -tan(s_i / 2) with
          s_i ~ U(0, pi/2), i.e. theta_i in [-1, 0] (the skew matrix of the
          scaled-Cayley RNN's initialisation, Helfrich et al. 2018, used as
          the exponential's argument).
        * ``"identity"``: A = 0, so W_hh = I (no draw).

        A holds the angles below its diagonal, ``A[2i+1, 2i] = theta_i``: the
        transpose of the authors' upper-triangular parameter, because their
        layer computes ``h @ B`` (row vectors), so their recurrent matrix is
        ``B^T``; with A so, ``expm(A - A^T)`` is exactly that matrix.

        ``gain`` is checked and otherwise unused: W_hh = expm(A - A^T) is
        orthogonal for every A, every singular value 1, and no scale of it
        stays in the group (scaling A would scale rotation angles, not the
        spectrum, and is not the authors' initialisation). A grid over
        ``gain`` repeats one expRNN network. W_ih is the authors'
        Kaiming-normal input kernel, ``N(0, 2 input_scale**2 / D)``
        (:attr:`input_var_gain`); W_out the suite's read-out, ``N(0, 1/H)``
        (the authors' is Kaiming-normal, N(0, 2/H): ``w_out_std``). The
        forget and update biases are unused (checked like the gated cells').
        """
        return {"A": _paper_skew(init, self.hidden_size, rng)}

    def _biases(self, params, rng, forget_bias, update_bias):
        """modReLU's bias b ~ U(-0.01, 0.01), as the authors' ``modrelu``,
        drawn last (after W_out; with ``"identity"``, no angles, W_out is the
        vanilla RNN's draw and W_ih sqrt(2) times it)."""
        params = super()._biases(params, rng, forget_bias, update_bias)
        params["b"] = rng.uniform(-MODRELU_BIAS, MODRELU_BIAS, self.hidden_size)
        return params

    # -- the probe ------------------------------------------------------------
    def adjoint_lognorms(self, st, p, delta):
        return adjoint_lognorms(st[0], self.recurrent_weight(p), delta), None

    def step_jacobian(self, st, p):
        """J_t = diag([h_t != 0]) W_hh, W_hh as the forward pass used it."""
        # the derivative taken in float64 from the (possibly float32) states
        hs = st[0][:, 0].astype(np.float64)
        W_hh = self.recurrent_weight(p).astype(np.float64)

        def apply(t: int, q: np.ndarray) -> np.ndarray:
            d = (hs[t + 1] != 0).astype(np.float64)
            return d[:, None] * (W_hh @ q)

        return self.hidden_size, hs.shape[0] - 1, apply
