"""The Numba kernels against the plain-numpy twin in tests/naive.py."""

from __future__ import annotations

import naive
import numpy as np
import pytest
from problems import (
    CELL_IDS,
    CELLS,
    LOSSES,
    SCORES,
    assert_rel_close,
    compare_results,
    make_problem,
)

import gradpath as gp
from gradpath.kernels.common import SMALL_MATMUL_FLOPS

#: float64 kernel vs float64 twin.
RTOL64 = 1e-12
#: float32 kernel vs float64 kernel (same parameters, cast), with an absolute
#: floor of a few float32 roundoffs of O(1) summands.
RTOL32 = 1e-4
ATOL32 = 1e-7

# (T, B, D, H, O) for each cell: a small hidden size (loop matmul), a wide hidden
# size with a tiny batch, and a larger batch (both on the BLAS path).
SIZES = {
    "rnn": {"small": (30, 3, 2, 5, 3), "wide": (12, 2, 3, 80, 4), "blas": (10, 16, 3, 128, 4)},
    "lstm": {"small": (30, 3, 2, 5, 3), "wide": (12, 2, 3, 80, 4), "blas": (10, 8, 3, 96, 4)},
    "gru": {"small": (30, 3, 2, 5, 3), "wide": (12, 2, 3, 80, 4), "blas": (10, 8, 3, 96, 4)},
}


def _flops(cell, B, H):
    return B * H * H * {"rnn": 1, "lstm": 4, "gru": 3}[cell]


def test_size_grid_hits_both_matmul_paths():
    for cell, sizes in SIZES.items():
        for name, (_, B, _, H, _) in sizes.items():
            uses_blas = _flops(cell, B, H) >= SMALL_MATMUL_FLOPS
            assert uses_blas == (name != "small"), (cell, name)
            assert (H > 64) == (name != "small"), (cell, name)


@pytest.mark.parametrize("size", ["small", "wide", "blas"])
@pytest.mark.parametrize("ragged", [False, True], ids=["full", "ragged"])
@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_kernel_matches_twin_float64(cell, activation, loss, score, ragged, size):
    T, B, D, H, O = SIZES[cell][size]
    gain = 1.0 if activation == "relu" else 0.95
    prob = make_problem(cell, activation, loss, score, T, B, D, H, O, ragged=ragged,
                        gain=gain, seed=11, with_h0=ragged)
    compare_results(prob.kernel(), prob.twin(), RTOL64, cell)


@pytest.mark.parametrize("init", ["identity", "gaussian", "orthogonal"])
@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_kernel_matches_twin_every_init(cell, activation, init):
    gain = 0.9 if init == "gaussian" else 1.0
    prob = make_problem(cell, activation, "mse", "all", T=20, B=4, D=3, H=7, O=2,
                        ragged=True, init=init, gain=gain, seed=3)
    compare_results(prob.kernel(), prob.twin(), RTOL64, cell)


@pytest.mark.parametrize("size", ["small", "blas"])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_float32_kernel_matches_float64_kernel(cell, activation, loss, size):
    T, B, D, H, O = SIZES[cell][size]
    prob64 = make_problem(cell, activation, loss, "all", T, B, D, H, O, ragged=True,
                          gain=0.9, seed=5)
    prob32 = prob64.astype(np.float32)
    res32 = prob32.kernel()
    for k, g in res32.grads.items():
        assert g.dtype == np.float32, k
    assert res32.h0_grad.dtype == np.float32
    compare_results(res32, prob64.kernel(), RTOL32, cell, ATOL32)


@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_float32_kernel_matches_float32_twin(cell, activation, score):
    prob = make_problem(cell, activation, "mse", score, T=15, B=3, D=2, H=6, O=2,
                        ragged=True, gain=0.9, seed=8).astype(np.float32)
    twin = prob.twin()
    assert twin["grads"]["W_hh"].dtype == np.float32  # the twin really runs in float32
    compare_results(prob.kernel(), twin, RTOL32, cell, ATOL32)


@pytest.mark.parametrize("size", ["small", "blas"])
@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_forward_matches_twin(cell, activation, size):
    T, B, D, H, O = SIZES[cell][size]
    prob = make_problem(cell, activation, T=T, B=B, D=D, H=H, O=O, ragged=True, seed=2)
    if cell == "rnn":
        fwd = prob.model.forward(prob.params, prob.x, lengths=prob.lengths, h0=prob.h0)
        hs, _ = naive.rnn_forward(prob.params, prob.x, activation, prob.lengths, prob.h0)
        assert fwd.c is None
    elif cell == "gru":
        fwd = prob.model.forward(prob.params, prob.x, lengths=prob.lengths, h0=prob.h0)
        hs = naive.gru_forward(prob.params, prob.x, prob.lengths, prob.h0)
        assert fwd.c is None
    else:
        fwd = prob.model.forward(prob.params, prob.x, lengths=prob.lengths, h0=prob.h0,
                                 c0=prob.c0)
        hs, cs = naive.lstm_forward(prob.params, prob.x, prob.lengths, prob.h0, prob.c0)
        assert_rel_close(fwd.c, cs, RTOL64, "c")
    assert_rel_close(fwd.h, hs, RTOL64, "h")
    y = hs @ prob.params["W_out"].T + prob.params["b_out"]
    assert_rel_close(fwd.y, y, RTOL64, "y")


@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_h0_none_means_zeros(cell, activation):
    prob = make_problem(cell, activation, T=5, B=2, H=3, with_h0=False)
    res = prob.kernel()
    prob.h0 = np.zeros((2, 3))
    if cell == "lstm":
        prob.c0 = np.zeros((2, 3))
    compare_results(res, prob.kernel(), 0.0, cell, atol=0.0)
    compare_results(res, prob.twin(), RTOL64, cell)


@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_lengths_none_means_all_T(cell, activation):
    prob = make_problem(cell, activation, "xent", "all", T=6, B=3)
    res = prob.kernel()
    prob.lengths = np.full(3, 6)
    compare_results(prob.kernel(), res, 0.0, cell, atol=0.0)


@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_non_contiguous_inputs_give_the_same_result(cell, activation):
    prob = make_problem(cell, activation, "mse", "all", T=7, B=3, D=2, H=5, O=2, ragged=True)
    ref = prob.kernel()
    # batch-major storage transposed to time-major, Fortran-ordered weights
    prob.x = np.ascontiguousarray(prob.x.transpose(1, 0, 2)).transpose(1, 0, 2)
    prob.params = {k: np.asfortranarray(v) for k, v in prob.params.items()}
    prob.target = np.asfortranarray(prob.target)
    assert not prob.x.flags.c_contiguous
    assert not prob.params["W_hh"].flags.c_contiguous
    compare_results(prob.kernel(), ref, 0.0, cell, atol=0.0)


@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_inputs_not_modified_and_calls_bit_identical(cell, activation):
    prob = make_problem(cell, activation, "xent", "all", T=8, B=3, ragged=True)
    before = {k: v.copy() for k, v in prob.params.items()}
    x, target, lengths, h0 = prob.x.copy(), prob.target.copy(), prob.lengths.copy(), prob.h0.copy()
    r1 = prob.kernel()
    r2 = prob.kernel()
    compare_results(r1, r2, 0.0, cell, atol=0.0)
    for k, v in before.items():
        np.testing.assert_array_equal(prob.params[k], v)
    np.testing.assert_array_equal(prob.x, x)
    np.testing.assert_array_equal(prob.target, target)
    np.testing.assert_array_equal(prob.lengths, lengths)
    np.testing.assert_array_equal(prob.h0, h0)


@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_result_types_and_shapes(cell, activation):
    prob = make_problem(cell, activation, T=4, B=2, D=3, H=5, O=2)
    res = prob.kernel()
    assert isinstance(res, gp.LossGrads)
    assert isinstance(res.loss, float)
    for k, v in prob.params.items():
        assert res.grads[k].shape == v.shape
        assert res.grads[k].dtype == v.dtype
    assert res.grad_norms.shape == (4, 2)
    assert res.h0_grad.shape == (2, 5)
    if cell == "lstm":
        assert res.cell_grad_norms.shape == (4, 2)
        assert res.c0_grad.shape == (2, 5)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_padding_past_a_length_is_ignored(cell, activation, loss):
    """Targets and inputs at t >= lengths[b] (padding) do not change anything."""
    prob = make_problem(cell, activation, loss, "all", T=6, B=3, D=2, H=4, O=3,
                        lengths=np.array([6, 2, 4]))
    ref = prob.kernel()
    pad = np.arange(6)[:, None] >= prob.lengths[None, :]
    prob.x = prob.x.copy()
    prob.x[pad] = 1e3
    prob.target = prob.target.copy()
    prob.target[pad] = np.nan if loss == "mse" else 10**6
    compare_results(prob.kernel(), ref, 0.0, cell, atol=0.0)
