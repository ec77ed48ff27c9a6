"""Gradient clipping: by global norm (Pascanu et al. 2013) and by value."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gradpath as gp


def grads(scale=1.0, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    shapes = {"W_ih": (4, 2), "W_hh": (4, 4), "b": (4,), "W_out": (3, 4), "b_out": (3,)}
    return {k: (scale * rng.standard_normal(s)).astype(dtype) for k, s in shapes.items()}


def flat(g):
    return np.concatenate([np.asarray(v, np.float64).ravel() for v in g.values()])


# -- global_norm ---------------------------------------------------------------
def test_global_norm_is_l2_norm_over_everything():
    g = grads()
    assert gp.global_norm(g) == pytest.approx(np.sqrt(np.sum(flat(g) ** 2)), rel=1e-14)
    assert gp.global_norm({}) == 0.0
    assert gp.global_norm({"a": np.zeros(3)}) == 0.0


def test_global_norm_overflow_safe():
    g = {"a": np.full(4, 1e200), "b": np.full((2, 2), -1e200)}
    assert gp.global_norm(g) == pytest.approx(1e200 * np.sqrt(8), rel=1e-14)
    g32 = {"a": np.full(4, 3e38, np.float32)}
    assert gp.global_norm(g32) == pytest.approx(6e38, rel=1e-6)


def test_global_norm_underflow_safe():
    g = {"a": np.full(4, 1e-200)}
    assert gp.global_norm(g) == pytest.approx(2e-200, rel=1e-14)


def test_global_norm_non_finite():
    g = grads()
    g["b"][1] = np.inf
    assert gp.global_norm(g) == math.inf
    g["W_hh"][0, 0] = np.nan
    assert math.isnan(gp.global_norm(g))


def test_global_norm_rejects_non_dict():
    with pytest.raises(ValueError, match=r"^grads"):
        gp.global_norm([np.ones(3)])


# -- clip_by_norm --------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("max_norm", [0.1, 1.0, 3])
def test_clip_by_norm_keeps_direction_and_hits_threshold(max_norm, dtype):
    g = grads(scale=10.0, dtype=dtype)
    before = gp.global_norm(g)
    assert before > max_norm
    res = gp.clip_by_norm(g, max_norm)
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    assert res.clipped and res.finite
    assert res.norm_before == before
    assert res.norm_after == pytest.approx(max_norm, rel=rtol)
    assert gp.global_norm(res.grads) == pytest.approx(max_norm, rel=rtol)
    a, b = flat(res.grads), flat(g)
    cosine = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    assert cosine == pytest.approx(1.0, abs=10 * rtol)
    np.testing.assert_allclose(a, b * (max_norm / before), rtol=rtol)
    for k in g:
        assert res.grads[k].dtype == dtype
        assert res.grads[k].shape == g[k].shape


def _norm_parts_by_hand(g):
    """m = max |entry| and s = sum((entry / m)**2), in float64, entry by entry
    in the dict's and then C order (the compiled pass's formula and order)."""
    vals = [float(v) for a in g.values() for v in np.asarray(a).ravel()]
    m = max(abs(v) for v in vals)
    s = 0.0
    for v in vals:
        d = v / m
        s += d * d
    return m, s


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_by_norm_is_the_numpy_formula_to_the_bit(dtype):
    """The compiled passes (norms in float64 of the gradients' own values, the
    product in the gradients' dtype) give numpy's g * scale exactly, and the
    norm after is the stored values' norm."""
    g = grads(scale=10.0, dtype=dtype)
    m, s = _norm_parts_by_hand(g)
    res = gp.clip_by_norm(g, 1.0)
    assert res.norm_before == m * math.sqrt(s)
    scale = (1.0 / m) / math.sqrt(s)
    for k in g:
        expect = g[k] * scale  # a Python float: numpy multiplies in the array's dtype
        assert expect.dtype == dtype and res.grads[k].dtype == dtype
        assert res.grads[k].tobytes() == expect.tobytes()
    m2, s2 = _norm_parts_by_hand(res.grads)
    assert res.norm_after == m2 * math.sqrt(s2)


def test_clip_by_norm_of_mixed_and_strided_gradients():
    """Gradients of different dtypes, or not contiguous, take numpy's path
    with the same results."""
    g = grads(scale=10.0)
    mixed = {**g, "b": g["b"].astype(np.float32), "W_hh": np.asfortranarray(g["W_hh"])}
    res = gp.clip_by_norm(mixed, 1.0)
    ref = gp.clip_by_norm({k: np.ascontiguousarray(v, np.float64) for k, v in mixed.items()},
                          1.0)
    assert res.clipped and res.norm_before == ref.norm_before
    assert res.grads["b"].dtype == np.float32
    for k in g:
        np.testing.assert_allclose(res.grads[k], ref.grads[k], rtol=1e-6)
    assert res.norm_after == pytest.approx(1.0, rel=1e-6)


def test_clip_by_norm_does_not_modify_input():
    g = grads(scale=10.0)
    copy = {k: v.copy() for k, v in g.items()}
    gp.clip_by_norm(g, 1.0)
    for k in g:
        np.testing.assert_array_equal(g[k], copy[k])


def test_no_clip_below_threshold():
    g = grads()
    norm = gp.global_norm(g)
    res = gp.clip_by_norm(g, 2 * norm)
    assert not res.clipped and res.finite
    assert res.norm_before == res.norm_after == norm
    for k in g:
        assert res.grads[k] is g[k]


def test_clip_by_norm_zero_gradient():
    g = {"a": np.zeros(3)}
    res = gp.clip_by_norm(g, 1.0)
    assert not res.clipped and res.finite and res.norm_after == 0.0
    np.testing.assert_array_equal(res.grads["a"], 0.0)


def test_clip_by_norm_huge_but_finite_gradient():
    g = {"a": np.full(10, 1e300)}
    res = gp.clip_by_norm(g, 1.0)
    assert res.finite and res.clipped
    assert res.norm_after == pytest.approx(1.0, rel=1e-14)
    np.testing.assert_allclose(res.grads["a"], 1 / np.sqrt(10), rtol=1e-14)


# -- clip_by_value -------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_by_value_bounds_entries(dtype):
    g = grads(scale=3.0, dtype=dtype)
    res = gp.clip_by_value(g, 1.5)
    assert res.clipped and res.finite
    for k in g:
        assert res.grads[k].dtype == dtype
        assert np.all(np.abs(res.grads[k]) <= 1.5)
        inside = np.abs(g[k]) <= 1.5
        np.testing.assert_array_equal(res.grads[k][inside], g[k][inside])
        np.testing.assert_array_equal(res.grads[k][~inside], 1.5 * np.sign(g[k][~inside]))
    assert res.norm_after == pytest.approx(gp.global_norm(res.grads), rel=1e-14)
    assert res.norm_before == gp.global_norm(g)


def test_clip_by_value_no_clip_within_limit():
    g = grads()
    res = gp.clip_by_value(g, 100.0)
    assert not res.clipped and res.finite
    for k in g:
        assert res.grads[k] is g[k]


# -- non-finite gradients are reported, never made finite -----------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("clip", ["norm", "value"])
def test_non_finite_reported_and_returned_unchanged(clip, bad):
    g = grads(scale=10.0)
    g["W_hh"][1, 2] = bad
    copy = {k: v.copy() for k, v in g.items()}
    res = gp.clip_by_norm(g, 1.0) if clip == "norm" else gp.clip_by_value(g, 1.0)
    assert res.finite is False
    assert res.clipped is False
    assert not math.isfinite(res.norm_before)
    assert not math.isfinite(res.norm_after)
    for k in g:
        assert res.grads[k] is g[k]
        np.testing.assert_array_equal(res.grads[k], copy[k])  # NaN == NaN here
    assert not np.isfinite(res.grads["W_hh"][1, 2])


# -- thresholds ------------------------------------------------------------------
@pytest.mark.parametrize("value", [0, 0.0, -1.0, np.nan, np.inf, -np.inf, True, "1", None])
@pytest.mark.parametrize(("fn", "name"), [(gp.clip_by_norm, "max_norm"),
                                          (gp.clip_by_value, "limit")])
def test_bad_threshold_raises_naming_the_argument(fn, name, value):
    with pytest.raises(ValueError, match=r"^" + name):
        fn(grads(), value)


@pytest.mark.parametrize("value", [1, np.float32(0.5), np.int64(2), 1e-300])
def test_numeric_thresholds_accepted(value):
    assert gp.clip_by_norm(grads(), value).finite
    assert gp.clip_by_value(grads(), value).finite


def test_clip_kernel_gradients():
    """End to end: the kernels' gradient dict goes straight into clipping."""
    model = gp.LSTM(2, 4, 2)
    p = model.init_params(seed=0)
    x = np.random.default_rng(0).standard_normal((6, 3, 2))
    res = model.loss_and_grads(p, x, np.ones((3, 2)) * 5)
    clipped = gp.clip_by_norm(res.grads, 0.5 * gp.global_norm(res.grads))
    assert clipped.clipped
    assert set(clipped.grads) == set(p)


@pytest.mark.parametrize("limit", [np.float64(0.5), np.int64(1)])
def test_clip_by_value_keeps_float32_with_numpy_scalar_limit(limit):
    g = grads(scale=3.0, dtype=np.float32)
    res = gp.clip_by_value(g, limit)
    assert res.clipped
    for k in g:
        assert res.grads[k].dtype == np.float32, k


@pytest.mark.parametrize("clip", ["norm", "value"])
def test_finite_gradients_with_norm_beyond_float_range_are_clipped(clip):
    g = {"a": np.full(4, 1e308)}
    res = gp.clip_by_norm(g, 1.0) if clip == "norm" else gp.clip_by_value(g, 1.0)
    assert res.finite  # ClipResult.finite: "whether every gradient entry was finite"
    assert res.clipped
    assert np.all(np.abs(res.grads["a"]) <= 1.0)
