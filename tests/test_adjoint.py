"""The adjoint kernels (``adjoint_lognorms`` of :mod:`gradpath.cells.rnn`,
:mod:`gradpath.cells.lstm` and :mod:`gradpath.cells.gru`) against their numpy
twins (``tests/naive_adjoint.py``), and the twins against explicit products
of finite-difference Jacobians.

The trajectories come from the forward kernels (the models' ``states``), as
in :func:`gradpath.probe.probe`. Several cases leave
float64's range (ln||dL/dh_t|| below -745 or above 709 at the far lags): an
adjoint propagated without renormalisation would be 0 or inf there.

Adding a cell: write a ``_<cell>`` function returning ``{path: (kernel, twin)}``
like :func:`_rnn` and :func:`_lstm`, register it in :data:`CELLS`, and add
rows to :data:`CASES`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import naive_adjoint as na
import numpy as np
import pytest

import gradpath as gp
from gradpath.cells.base import Cell
from gradpath.cells.gru import adjoint_lognorms as gru_adjoint_lognorms
from gradpath.cells.lstm import adjoint_lognorms as lstm_adjoint_lognorms
from gradpath.cells.rnn import adjoint_lognorms as rnn_adjoint_lognorms
from gradpath.kernels.jit import ACT_RELU, ACT_TANH

ACT = {"tanh": ACT_TANH, "relu": ACT_RELU}

#: ln of the largest finite float64 and of the smallest subnormal one.
LN_MAX = math.log(np.finfo(np.float64).max)  # 709.78
LN_MIN = math.log(np.finfo(np.float64).smallest_subnormal)  # -744.44

#: Kernel against twin, in ln||.||, where finite.
ATOL = 1e-10


@dataclass(frozen=True)
class Case:
    """One network and trajectory.

    W_hh = gain * N(0, 1) / sqrt(H) (all gate blocks), W_ih = input_std *
    N(0, 1), x ~ N(0, 1) (T, B, D), bias ~ 0.1 N(0, 1) + ``bias`` (for the LSTM
    ``forget_bias`` is added to the forget gate's block).
    """

    cell: str
    H: int
    B: int
    T: int
    gain: float
    seed: int
    activation: str = "tanh"
    D: int = 2
    input_std: float = 1.0
    bias: float = 0.0
    forget_bias: float = 0.0
    #: ReLU: this many units get bias -50, so they never fire.
    dead_units: int = 0
    #: ReLU: at this step an input of -1e3 (through positive weights, the input
    #: being 0 at the other steps) silences every unit, so the adjoint is
    #: exactly 0 at every earlier step.
    kill_at: int | None = None
    #: LSTM: a nonzero delta_c (the probe passes zeros).
    delta_c: bool = False
    #: "underflow" / "overflow": the case's log norms must leave float64's range.
    expect: str = ""

    @property
    def id(self) -> str:
        act = f"-{self.activation}" if self.cell == "rnn" else ""
        tags = [t for t in (self.expect, "dead" if self.dead_units else "",
                            "killed" if self.kill_at is not None else "",
                            "delta_c" if self.delta_c else "") if t]
        return (f"{self.cell}{act}-H{self.H}-B{self.B}-T{self.T}-g{self.gain}-s{self.seed}"
                + "".join(f"-{t}" for t in tags))


def _states(model: Cell, x: np.ndarray, init: tuple, **rec: np.ndarray) -> tuple:
    """The forward kernels' state arrays of ``model`` (every sequence T long)
    from its recurrent parameters ``rec`` (a zero read-out completes them)."""
    T, B, _ = x.shape
    O, H = model.output_size, model.hidden_size
    p = model.check_params({**rec, "W_out": np.zeros((O, H)), "b_out": np.zeros(O)})
    return model.states(p, x, np.full(B, T, np.int64), init)


def _inputs(case: Case, G: int, rng: np.random.Generator):
    """(x, W_ih, W_hh, b) for a cell with G = gates * H pre-activations."""
    H, D = case.H, case.D
    W_ih = case.input_std * rng.standard_normal((G, D))
    W_hh = case.gain * rng.standard_normal((G, H)) / math.sqrt(H)
    b = case.bias + 0.1 * rng.standard_normal(G)
    x = rng.standard_normal((case.T, case.B, D))
    return x, W_ih, W_hh, b


def _rnn(case: Case) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(case.seed)
    x, W_ih, W_hh, b = _inputs(case, case.H, rng)
    delta = rng.standard_normal((case.B, case.H))
    b[:case.dead_units] = -50.0
    if case.kill_at is not None:
        W_ih[:, 0] = np.abs(W_ih[:, 0]) + 0.5
        x[:, :, 0] = 0.0
        x[case.kill_at, :, 0] = -1e3
    act = ACT[case.activation]
    hs, = _states(gp.RNN(case.D, case.H, 1, case.activation), x, (np.zeros((case.B, case.H)),),
                  W_ih=W_ih, W_hh=W_hh, b=b)
    assert not hs[1:, :, :case.dead_units].any()  # the dead units never fire
    return {"h": (rnn_adjoint_lognorms(hs, W_hh, act, delta),
                  na.rnn_adjoint_lognorms(hs, W_hh, case.activation, delta))}


def _lstm(case: Case) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(case.seed)
    H, B = case.H, case.B
    x, W_ih, W_hh, b = _inputs(case, 4 * H, rng)
    b[H:2 * H] += case.forget_bias
    delta_h = rng.standard_normal((B, H))
    delta_c = rng.standard_normal((B, H)) if case.delta_c else np.zeros((B, H))
    zeros = np.zeros((B, H))
    states = _states(gp.LSTM(case.D, H, 1), x, (zeros, zeros), W_ih=W_ih, W_hh=W_hh, b=b)
    kh, kc = lstm_adjoint_lognorms(*states, W_hh, delta_h, delta_c)
    th, tc = na.lstm_adjoint_lognorms(*states, W_hh, delta_h, delta_c)
    return {"h": (kh, th), "c": (kc, tc)}


def _gru(case: Case) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(case.seed)
    H, B = case.H, case.B
    x, W_ih, W_hh, b = _inputs(case, 3 * H, rng)
    b[H:2 * H] += case.forget_bias  # the update gate plays the forget gate's part
    b_hn = 0.1 * rng.standard_normal(H)
    delta = rng.standard_normal((B, H))
    states = _states(gp.GRU(case.D, H, 1), x, (np.zeros((B, H)),), W_ih=W_ih, W_hh=W_hh, b=b,
                     b_hn=b_hn)
    return {"h": (gru_adjoint_lognorms(*states, W_hh, delta),
                  na.gru_adjoint_lognorms(*states, W_hh, delta))}


#: cell -> function of a case giving {adjoint path: (kernel, twin)} log norms.
CELLS: dict[str, Callable[[Case], dict[str, tuple[np.ndarray, np.ndarray]]]] = {
    "rnn": _rnn,
    "lstm": _lstm,
    "gru": _gru,
}

CASES = [
    # tanh RNN: one unit, small, explicit-loop and BLAS products, both range edges
    Case("rnn", H=1, B=1, T=50, gain=0.9, seed=0),
    Case("rnn", H=5, B=3, T=300, gain=1.0, seed=1),
    Case("rnn", H=40, B=2, T=500, gain=1.0, seed=3),
    Case("rnn", H=16, B=3, T=2000, gain=0.2, seed=2, expect="underflow"),
    Case("rnn", H=64, B=2, T=3000, gain=3.0, seed=1, input_std=0.1, expect="overflow"),
    # ReLU RNN: vanishing, dead units, sparse firing (windows where every unit
    # is off), and every unit silenced at one step
    Case("rnn", H=16, B=3, T=2000, gain=0.2, seed=4, activation="relu", expect="underflow"),
    Case("rnn", H=12, B=3, T=300, gain=1.0, seed=5, activation="relu", bias=1.0,
         dead_units=6),
    Case("rnn", H=12, B=3, T=300, gain=1.0, seed=6, activation="relu", bias=-1.0),
    Case("rnn", H=8, B=2, T=100, gain=1.0, seed=7, activation="relu", bias=0.5, kill_at=40),
    # LSTM: h and c paths
    Case("lstm", H=1, B=1, T=50, gain=1.0, seed=0),
    Case("lstm", H=5, B=3, T=300, gain=1.0, seed=1, delta_c=True),
    Case("lstm", H=40, B=2, T=300, gain=1.0, seed=8),
    Case("lstm", H=8, B=2, T=2000, gain=1.0, seed=5, expect="underflow"),
    Case("lstm", H=8, B=2, T=2000, gain=1.0, seed=5, delta_c=True, expect="underflow"),
    Case("lstm", H=32, B=2, T=2000, gain=16.0, seed=1, input_std=0.1, forget_bias=2.0,
         delta_c=True, expect="overflow"),
    # GRU (forget_bias: the update gate's): loop and BLAS products, both range edges
    Case("gru", H=1, B=1, T=50, gain=1.0, seed=0),
    Case("gru", H=5, B=3, T=300, gain=1.0, seed=1),
    Case("gru", H=40, B=2, T=300, gain=1.0, seed=8),
    Case("gru", H=8, B=2, T=2000, gain=0.3, seed=5, forget_bias=-3.0, expect="underflow"),
    Case("gru", H=32, B=2, T=2000, gain=16.0, seed=1, forget_bias=-3.0, expect="overflow"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_kernel_matches_twin(case: Case) -> None:
    results = CELLS[case.cell](case)
    for path, (kernel, twin) in results.items():
        where = f"{case.id} ({path})"
        assert kernel.shape == twin.shape == (case.T, case.B), where
        finite = np.isfinite(twin)
        np.testing.assert_array_equal(np.isfinite(kernel), finite, err_msg=where)
        np.testing.assert_array_equal(kernel[~finite], twin[~finite], err_msg=where)
        np.testing.assert_allclose(kernel[finite], twin[finite], rtol=0, atol=ATOL,
                                   err_msg=where)
    h = results["h"][1]
    finite_h = h[np.isfinite(h)]
    if case.expect == "underflow":
        assert finite_h.min() < LN_MIN, f"{case.id}: never leaves float64's range"
    if case.expect == "overflow":
        assert finite_h.max() > LN_MAX, f"{case.id}: never leaves float64's range"
    if case.dead_units:
        assert np.isfinite(h).all(), case.id  # the other units carry the adjoint
    if case.kill_at is not None:
        assert np.isneginf(h[:case.kill_at]).all(), case.id
        assert np.isfinite(h[case.kill_at:]).all(), case.id
    if case.activation == "relu" and case.bias < 0:
        assert np.isneginf(h).any(), f"{case.id}: no step with every unit off"


def test_last_row_is_the_initial_delta() -> None:
    """Row T-1 is ln||delta|| (the probe reverses the rows into lags)."""
    rng = np.random.default_rng(0)
    W_hh = rng.standard_normal((5, 5))
    hs = np.tanh(rng.standard_normal((21, 3, 5)))
    delta = 7.0 * rng.standard_normal((3, 5))
    out = rnn_adjoint_lognorms(hs, W_hh, ACT_TANH, delta)
    assert out.shape == (20, 3)
    np.testing.assert_allclose(out[-1], np.log(np.linalg.norm(delta, axis=1)), rtol=0,
                               atol=1e-14)


# ---------------------------------------------------------------------------
# the twins themselves, on tiny cases: explicit products of Jacobians, the
# Jacobians by central finite differences of a numpy step
# ---------------------------------------------------------------------------
def _rnn_step(W_ih, W_hh, b, activation):
    def step(state, x_t):
        a = W_ih @ x_t + W_hh @ state + b
        return np.tanh(a) if activation == "tanh" else np.maximum(a, 0.0)
    return step


def _lstm_step(W_ih, W_hh, b):
    H = W_hh.shape[1]

    def sigmoid(z):
        return 1.0 / (1.0 + np.exp(-z))

    def step(state, x_t):
        h, c = state[:H], state[H:]
        z = W_ih @ x_t + W_hh @ h + b
        i, f, g, o = sigmoid(z[:H]), sigmoid(z[H:2 * H]), np.tanh(z[2 * H:3 * H]), \
            sigmoid(z[3 * H:])
        c_new = f * c + i * g
        return np.concatenate([o * np.tanh(c_new), c_new])
    return step


def _fd_jacobian(f, s, eps=1e-6):
    """Central-difference Jacobian of f at s."""
    cols = []
    for k in range(s.shape[0]):
        e = np.zeros_like(s)
        e[k] = eps
        cols.append((f(s + e) - f(s - e)) / (2 * eps))
    return np.stack(cols, axis=1)


def _explicit_adjoints(jacobians, delta):
    """lambda_t = (J_{T-1} @ ... @ J_{t+1})^T delta for t = 0..T-1, by full matrix
    products (no renormalisation: tiny cases only)."""
    T = len(jacobians)
    out = [None] * T
    M = np.eye(delta.shape[0])  # J_{T-1} @ ... @ J_{t+1}
    for t in range(T - 1, -1, -1):
        out[t] = M.T @ delta
        M = M @ jacobians[t]
    return out


def _log_norms(vectors):
    return np.array([math.log(np.linalg.norm(v)) for v in vectors])


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_rnn_twin_against_explicit_jacobian_products(activation: str) -> None:
    rng = np.random.default_rng(3)
    T, B, H, D = 7, 2, 3, 2
    W_ih = rng.standard_normal((H, D))
    W_hh = 1.5 * rng.standard_normal((H, H)) / math.sqrt(H)
    b = 0.5 + 0.1 * rng.standard_normal(H)  # ReLU: most units on, the kinks far away
    x = rng.standard_normal((T, B, D))
    delta = rng.standard_normal((B, H))
    hs, = _states(gp.RNN(D, H, 1, activation), x, (np.zeros((B, H)),), W_ih=W_ih, W_hh=W_hh,
                  b=b)
    step = _rnn_step(W_ih, W_hh, b, activation)
    twin = na.rnn_adjoint_lognorms(hs, W_hh, activation, delta)
    for bb in range(B):
        fd, analytic = [], []
        for t in range(T):
            np.testing.assert_allclose(step(hs[t, bb], x[t, bb]), hs[t + 1, bb], rtol=0,
                                       atol=1e-14)
            a = W_ih @ x[t, bb] + W_hh @ hs[t, bb] + b
            assert np.abs(a).min() > 1e-3  # finite differences are exact off the ReLU kink
            fd.append(_fd_jacobian(lambda s, xt=x[t, bb]: step(s, xt), hs[t, bb]))
            analytic.append(na.rnn_jacobian(hs[t + 1, bb], W_hh, activation))
            np.testing.assert_allclose(analytic[-1], fd[-1], rtol=0, atol=1e-8)
        if activation == "relu":
            assert any((J == 0).all(axis=1).any() for J in analytic)  # some unit off
        np.testing.assert_allclose(twin[:, bb], _log_norms(_explicit_adjoints(fd, delta[bb])),
                                   rtol=0, atol=1e-8)
        np.testing.assert_allclose(twin[:, bb],
                                   _log_norms(_explicit_adjoints(analytic, delta[bb])),
                                   rtol=0, atol=1e-13)


def test_lstm_twin_against_explicit_jacobian_products() -> None:
    rng = np.random.default_rng(4)
    T, B, H, D = 7, 2, 3, 2
    W_ih = rng.standard_normal((4 * H, D))
    W_hh = 1.5 * rng.standard_normal((4 * H, H)) / math.sqrt(H)
    b = 0.3 * rng.standard_normal(4 * H)
    x = rng.standard_normal((T, B, D))
    delta_h = rng.standard_normal((B, H))
    delta_c = rng.standard_normal((B, H))
    zeros = np.zeros((B, H))
    hs, cs, gates, tcs = _states(gp.LSTM(D, H, 1), x, (zeros, zeros), W_ih=W_ih, W_hh=W_hh,
                                 b=b)
    step = _lstm_step(W_ih, W_hh, b)
    twin_h, twin_c = na.lstm_adjoint_lognorms(hs, cs, gates, tcs, W_hh, delta_h, delta_c)
    for bb in range(B):
        states = [np.concatenate([hs[t, bb], cs[t, bb]]) for t in range(T + 1)]
        fd, analytic, through_h = [], [], []
        for t in range(T):
            np.testing.assert_allclose(step(states[t], x[t, bb]), states[t + 1], rtol=0,
                                       atol=1e-14)
            fd.append(_fd_jacobian(lambda s, xt=x[t, bb]: step(s, xt), states[t]))
            analytic.append(na.lstm_jacobian(gates[t, bb], tcs[t, bb], cs[t, bb], W_hh))
            np.testing.assert_allclose(analytic[-1], fd[-1], rtol=0, atol=1e-8)
            # c_t reaches the loss through c_{t+1} and through h_t = o_t tanh(c_t)
            # (o_t fixed): d(h_t, c_t)/dc_t
            o = gates[t, bb, 3 * H:]
            through_h.append(_fd_jacobian(lambda c, o=o: np.concatenate([o * np.tanh(c), c]),
                                          cs[t + 1, bb]))
        lam_T = np.concatenate([delta_h[bb], delta_c[bb]])
        for jac, atol in ((fd, 1e-8), (analytic, 1e-13)):
            lams = _explicit_adjoints(jac, lam_T)  # (dL/dh_t, dL/dc_t through c_{t+1})
            np.testing.assert_allclose(twin_h[:, bb], _log_norms([lam[:H] for lam in lams]),
                                       rtol=0, atol=atol)
            np.testing.assert_allclose(
                twin_c[:, bb], _log_norms([E.T @ lam for E, lam in zip(through_h, lams,
                                                                         strict=True)]),
                rtol=0, atol=1e-8)


def _gru_step(W_ih, W_hh, b, b_hn):
    H = W_hh.shape[1]

    def sigmoid(z):
        return 1.0 / (1.0 + np.exp(-z))

    def step(h, x_t):
        ax, ah = W_ih @ x_t + b, W_hh @ h
        r, z = sigmoid(ax[:H] + ah[:H]), sigmoid(ax[H:2 * H] + ah[H:2 * H])
        n = np.tanh(ax[2 * H:] + r * (ah[2 * H:] + b_hn))
        return (1.0 - z) * n + z * h
    return step


def test_gru_twin_against_explicit_jacobian_products() -> None:
    rng = np.random.default_rng(5)
    T, B, H, D = 7, 2, 3, 2
    W_ih = rng.standard_normal((3 * H, D))
    W_hh = 1.5 * rng.standard_normal((3 * H, H)) / math.sqrt(H)
    b = 0.3 * rng.standard_normal(3 * H)
    b_hn = 0.3 * rng.standard_normal(H)
    x = rng.standard_normal((T, B, D))
    delta = rng.standard_normal((B, H))
    hs, gates, hgates = _states(gp.GRU(D, H, 1), x, (np.zeros((B, H)),), W_ih=W_ih, W_hh=W_hh,
                                b=b, b_hn=b_hn)
    step = _gru_step(W_ih, W_hh, b, b_hn)
    twin = na.gru_adjoint_lognorms(hs, gates, hgates, W_hh, delta)
    for bb in range(B):
        fd, analytic = [], []
        for t in range(T):
            np.testing.assert_allclose(step(hs[t, bb], x[t, bb]), hs[t + 1, bb], rtol=0,
                                       atol=1e-14)
            fd.append(_fd_jacobian(lambda s, xt=x[t, bb]: step(s, xt), hs[t, bb]))
            analytic.append(na.gru_jacobian(gates[t, bb], hgates[t, bb, 2 * H:], hs[t, bb],
                                            W_hh))
            np.testing.assert_allclose(analytic[-1], fd[-1], rtol=0, atol=1e-8)
        np.testing.assert_allclose(twin[:, bb], _log_norms(_explicit_adjoints(fd, delta[bb])),
                                   rtol=0, atol=1e-8)
        np.testing.assert_allclose(twin[:, bb],
                                   _log_norms(_explicit_adjoints(analytic, delta[bb])),
                                   rtol=0, atol=1e-13)
