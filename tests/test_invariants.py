"""Exact structural properties of the gradients."""

from __future__ import annotations

import numpy as np
import pytest
from problems import CELL_IDS, CELLS, make_model

import gradpath as gp


def irnn_problem(T, B, D, H, O, lengths=None, seed=0):
    """ReLU RNN with W_hh = I (gain 1) and every unit active at every step:
    positive inputs, positive input weights and a positive bias."""
    model = gp.RNN(D, H, O, activation="relu")
    params = model.init_params(init="identity", gain=1.0, seed=seed)
    params["W_ih"] = np.abs(params["W_ih"])
    params["b"] = np.full(H, 0.5)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.1, 1.0, size=(T, B, D))
    target = rng.standard_normal((B, O))
    return model, params, x, target, lengths


# (T, B, D, H, O): the loop matmul and the BLAS matmul (see SMALL_MATMUL_FLOPS)
@pytest.mark.parametrize("shape", [(40, 3, 2, 6, 2), (25, 16, 3, 128, 3)],
                         ids=["loop", "blas"])
@pytest.mark.parametrize("ragged", [False, True], ids=["full", "ragged"])
@pytest.mark.parametrize("loss", ["mse", "xent"])
def test_irnn_gradient_norm_constant_in_time(shape, ragged, loss):
    """With ReLU, W_hh = I and all units active, dL/dh_{t-1} = W_hh^T dL/dh_t = dL/dh_t:
    scored at the last step only, ||dL/dh_t|| is the same at every t (Le et al. 2015)."""
    T, B, D, H, O = shape
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, T + 1, size=B) if ragged else None
    model, params, x, target, lengths = irnn_problem(T, B, D, H, O, lengths)
    if loss == "xent":
        target = rng.integers(0, O, size=B)
    fwd = model.forward(params, x, lengths=lengths)
    ell = np.full(B, T) if lengths is None else lengths
    alive = np.arange(T)[:, None] < ell[None, :]
    assert (fwd.h[alive] > 0).all(), "precondition: every unit active"
    res = model.loss_and_grads(params, x, target, loss=loss, score="last", lengths=lengths)
    g = res.grad_norms
    for b in range(B):
        last = g[ell[b] - 1, b]
        assert last > 0
        np.testing.assert_allclose(g[: ell[b], b], last, rtol=1e-12, atol=0)
        np.testing.assert_array_equal(g[ell[b]:, b], 0.0)
        np.testing.assert_allclose(np.linalg.norm(res.h0_grad[b]), last, rtol=1e-12)


def test_irnn_gain_below_one_decays_geometrically():
    """W_hh = gain * I, all units active: ||dL/dh_t|| = gain^(L-1-t) ||dL/dh_{L-1}||."""
    T, B, D, H, O = 30, 2, 2, 5, 2
    model, params, x, target, _ = irnn_problem(T, B, D, H, O)
    gain = 0.9
    params["W_hh"] = gain * np.eye(H)
    assert (model.forward(params, x).h > 0).all()
    res = model.loss_and_grads(params, x, target)
    expected = res.grad_norms[-1][None, :] * gain ** np.arange(T - 1, -1, -1)[:, None]
    np.testing.assert_allclose(res.grad_norms, expected, rtol=1e-12)


@pytest.mark.parametrize("score", ["last", "all"])
@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_zeros_past_length(cell, activation, score):
    T, B, D, H, O = 9, 4, 2, 5, 3
    lengths = np.array([9, 1, 4, 7])
    model = make_model(cell, D, H, O, activation)
    params = model.init_params(init="orthogonal", gain=0.9, seed=4)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((T, B, D))
    target = rng.standard_normal((B, O) if score == "last" else (T, B, O))
    res = model.loss_and_grads(params, x, target, score=score, lengths=lengths)
    past = np.arange(T)[:, None] >= lengths[None, :]
    norms = [res.grad_norms] + ([res.cell_grad_norms] if cell == "lstm" else [])
    for n in norms:
        np.testing.assert_array_equal(n[past], 0.0)
        assert (n[~past] > 0).all()
    fwd = model.forward(params, x, lengths=lengths)
    np.testing.assert_array_equal(fwd.h[past], 0.0)
    if cell == "lstm":
        np.testing.assert_array_equal(fwd.c[past], 0.0)


@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_score_last_norm_at_last_step_is_head_gradient(cell, activation):
    """At t = L-1 nothing flows back from later steps: dL/dh = W_out^T dL/dy exactly."""
    T, B, D, H, O = 6, 3, 2, 4, 3
    lengths = np.array([6, 2, 4])
    model = make_model(cell, D, H, O, activation)
    params = model.init_params(seed=2)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((T, B, D))
    target = rng.standard_normal((B, O))
    res = model.loss_and_grads(params, x, target, lengths=lengths)
    y = model.forward(params, x, lengths=lengths).y[lengths - 1, np.arange(B)]
    dh = ((y - target) / B) @ params["W_out"]
    np.testing.assert_allclose(res.grad_norms[lengths - 1, np.arange(B)],
                               np.linalg.norm(dh, axis=1), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lstm_sequences_are_independent(dtype):
    """Sequence b's gradient norms do not depend on the other sequences in the batch."""
    T, B, D, H, O = 8, 3, 2, 4, 2
    model = gp.LSTM(D, H, O)
    params = model.init_params(seed=6, dtype=dtype)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    target = rng.standard_normal((T, B, O)).astype(dtype)
    lengths = np.array([8, 3, 5])
    full = model.loss_and_grads(params, x, target, score="all", lengths=lengths)
    n_scored = lengths.sum()
    for b in range(B):
        one = model.loss_and_grads(params, x[:, b:b + 1], target[:, b:b + 1], score="all",
                                   lengths=lengths[b:b + 1])
        # the batch loss is a mean over all scored steps: rescale the single-sequence one
        scale = lengths[b] / n_scored
        np.testing.assert_allclose(full.grad_norms[:, b], one.grad_norms[:, 0] * scale,
                                   rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_grad_norms_exact_when_sum_of_squares_overflows(cell, activation):
    """Scaling W_out by s = 2**332 scales dL/dh by s**2 ~ 1e200 exactly (powers of two,
    zero target and b_out): the norms, whose plain sum of squares overflows, must scale
    by s**2 and stay finite (the kernels' norms rescale instead of returning inf)."""
    T, B, D, H, O = 5, 2, 2, 4, 3
    model = make_model(cell, D, H, O, activation)
    params = model.init_params(seed=3, gain=0.9)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((T, B, D))
    target = np.zeros((T, B, O))
    ref = model.loss_and_grads(params, x, target, score="all")
    s = 2.0**332
    big = params | {"W_out": params["W_out"] * s}
    res = model.loss_and_grads(big, x, target, score="all")
    assert np.isfinite(res.grads["W_hh"]).all()
    assert np.max(res.grad_norms) > 1e160, "precondition: the sum of squares overflows"
    np.testing.assert_allclose(res.grad_norms, ref.grad_norms * s**2, rtol=1e-14)
    if cell == "lstm":
        np.testing.assert_allclose(res.cell_grad_norms, ref.cell_grad_norms * s**2,
                                   rtol=1e-14)


@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_overflow_is_data_not_a_crash(cell, activation):
    """Weights that blow the forward (ReLU) or backward (LSTM) pass up to Inf/NaN give
    a result with non-finite entries, not an exception, and clipping reports it."""
    T, B, D, H, O = 400, 2, 2, 3, 2
    model = make_model(cell, D, H, O, activation)
    params = model.init_params("identity", gain=10.0, seed=0)
    params["W_ih"] = np.abs(params["W_ih"])
    params["b"] = np.full_like(params["b"], 0.5)
    if cell == "lstm" or activation == "tanh":
        params["W_out"] = params["W_out"] * 1e300  # y and dL/dh overflow instead
    x = np.abs(np.random.default_rng(0).standard_normal((T, B, D)))
    res = model.loss_and_grads(params, x, np.zeros((T, B, O)), score="all")
    assert not all(np.isfinite(g).all() for g in res.grads.values())
    clipped = gp.clip_by_norm(res.grads, 1.0)
    assert clipped.finite is False and clipped.clipped is False
