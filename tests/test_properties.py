"""Property tests: kernel vs twin over random small shapes and options, for
every model of the registry."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from problems import ALL_CELLS, compare_results, make_problem

RTOL = 1e-12


@st.composite
def problems(draw):
    cell, activation = draw(st.sampled_from(ALL_CELLS))
    T = draw(st.integers(1, 8))
    B = draw(st.integers(1, 4))
    D = draw(st.integers(1, 3))
    H = draw(st.integers(1, 6))
    O = draw(st.integers(1, 3))
    lengths = draw(st.none() | st.lists(st.integers(1, T), min_size=B, max_size=B))
    return make_problem(
        cell=cell,
        activation=activation,
        loss=draw(st.sampled_from(["mse", "xent"])),
        score=draw(st.sampled_from(["last", "all"])),
        T=T, B=B, D=D, H=H, O=O,
        lengths=None if lengths is None else np.array(lengths, dtype=np.int64),
        init=draw(st.sampled_from(["identity", "gaussian", "orthogonal"])),
        gain=draw(st.floats(0.5, 1.2)),
        seed=draw(st.integers(0, 2**16)),
        with_h0=draw(st.booleans()),
    )


@given(problems())
def test_kernel_matches_twin(prob):
    compare_results(prob.kernel(), prob.twin(), RTOL, prob.cell)


@given(problems())
def test_norms_nonnegative_and_zero_past_length(prob):
    res = prob.kernel()
    T, B = prob.x.shape[:2]
    lengths = np.full(B, T) if prob.lengths is None else prob.lengths
    past = np.arange(T)[:, None] >= lengths[None, :]
    assert (res.grad_norms[past] == 0).all()
    assert (res.grad_norms >= 0).all()
    if res.cell_grad_norms is not None:  # a cell with a cell state
        assert (res.cell_grad_norms[past] == 0).all()
        assert (res.cell_grad_norms >= 0).all()
