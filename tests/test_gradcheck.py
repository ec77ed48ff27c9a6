"""Every gradient of the kernels against central finite differences of the
twin's float64 forward loss (tests/naive.py :func:`loss_only`)."""

from __future__ import annotations

import naive
import numpy as np
import pytest
from problems import CELL_IDS, CELLS, LOSSES, SCORES, make_problem

#: Central-difference step and tolerance: max |fd - grad| <= RTOL * max |grad| + ATOL.
EPS = 1e-5
RTOL = 1e-6
ATOL = 1e-12
#: ReLU problems keep every pre-activation at least this far from the kink.
KINK_MARGIN = 1e-3


def central_differences(f, arr):
    """d f / d arr by central differences, perturbing ``arr`` in place (then restoring)."""
    grad = np.zeros_like(arr)
    for idx in np.ndindex(arr.shape):
        old = arr[idx]
        arr[idx] = old + EPS
        fp = f()
        arr[idx] = old - EPS
        fm = f()
        arr[idx] = old
        grad[idx] = (fp - fm) / (2 * EPS)
    return grad


def assert_fd_close(fd, grad, name):
    err = float(np.max(np.abs(fd - grad)))
    scale = float(np.max(np.abs(grad)))
    assert scale > 0.0, f"{name}: gradient identically zero, the check would be vacuous"
    assert err <= RTOL * scale + ATOL, (
        f"{name}: max |fd - grad| = {err:.3e}, max |grad| = {scale:.3e}, "
        f"relative {err / scale:.3e} > {RTOL:.0e}"
    )


def relu_safe_problem(**kw):
    """A ReLU-RNN problem whose pre-activations all stay clear of 0 (so central
    differences never straddle the kink), with both active and dead units.

    Draws seeds in order from ``kw["seed"]`` until one qualifies.
    """
    seed = kw.pop("seed")
    for s in range(seed, seed + 200):
        prob = make_problem(seed=s, **kw)
        T, B = prob.x.shape[:2]
        _, pre = naive.rnn_forward(prob.params, prob.x, "relu", prob.lengths, prob.h0)
        alive = naive.alive_mask(prob.lengths, T, B)
        a = pre[alive]
        if np.min(np.abs(a)) > KINK_MARGIN and (a > 0).any() and (a < 0).any():
            return prob
    raise AssertionError("no kink-free ReLU problem found")  # pragma: no cover


def build(cell, activation, loss, score, ragged, **kw):
    kw = dict(cell=cell, activation=activation, loss=loss, score=score, T=6, B=3, D=2, H=4,
              O=3, ragged=ragged, gain=0.95, seed=21) | kw
    if cell == "rnn" and activation == "relu":
        return relu_safe_problem(**kw)
    return make_problem(**kw)


@pytest.mark.parametrize("ragged", [False, True], ids=["full", "ragged"])
@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_param_grads_match_finite_differences(cell, activation, loss, score, ragged):
    prob = build(cell, activation, loss, score, ragged)
    res = prob.kernel()
    params = {k: v.copy() for k, v in prob.params.items()}
    for k in params:
        fd = central_differences(lambda: prob.loss_only(params=params), params[k])
        assert_fd_close(fd, res.grads[k], f"grads[{k!r}]")
    # and the loss itself is the forward loss
    assert abs(res.loss - prob.loss_only()) <= 1e-12 * abs(res.loss)


@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_initial_state_grads_match_finite_differences(cell, activation, score):
    prob = build(cell, activation, "mse", score, True)
    res = prob.kernel()
    h0 = prob.h0.copy()
    fd = central_differences(lambda: prob.loss_only(h0=h0), h0)
    assert_fd_close(fd, res.h0_grad, "h0_grad")
    if cell == "lstm":
        c0 = prob.c0.copy()
        fd = central_differences(lambda: prob.loss_only(c0=c0), c0)
        assert_fd_close(fd, res.c0_grad, "c0_grad")


@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_grads_match_finite_differences_longer_sequences(cell, activation):
    """Longer sequences, identity init (IRNN-style for ReLU), xent scored at every step."""
    prob = build(cell, activation, "xent", "all", True, T=15, B=2, D=3, H=5, O=4,
                 init="identity", gain=1.0, seed=40)
    res = prob.kernel()
    params = {k: v.copy() for k, v in prob.params.items()}
    for k in ("W_ih", "W_hh", "b"):
        fd = central_differences(lambda: prob.loss_only(params=params), params[k])
        assert_fd_close(fd, res.grads[k], f"grads[{k!r}]")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_twin_grads_match_finite_differences(cell):
    """The oracle itself is checked too (the gated cells, the most intricate twins)."""
    prob = make_problem(cell, loss="xent", score="all", T=5, B=2, D=2, H=3, O=3,
                        ragged=True, seed=9)
    twin = prob.twin()
    params = {k: v.copy() for k, v in prob.params.items()}
    for k in params:
        fd = central_differences(lambda: prob.loss_only(params=params), params[k])
        assert_fd_close(fd, twin["grads"][k], f"twin grads[{k!r}]")


def test_finite_difference_check_detects_a_wrong_gradient():
    """Guard against a vacuous check: a gradient off by 1e-4 relative fails it."""
    prob = make_problem("rnn", "tanh", T=4, B=2, H=3)
    res = prob.kernel()
    params = {k: v.copy() for k, v in prob.params.items()}
    fd = central_differences(lambda: prob.loss_only(params=params), params["W_hh"])
    wrong = res.grads["W_hh"].copy()
    wrong.flat[0] += 1e-4 * np.max(np.abs(wrong))
    with pytest.raises(AssertionError):
        assert_fd_close(fd, wrong, "W_hh")
