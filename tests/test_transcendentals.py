"""Accuracy of the kernels' inlined exp, tanh and sigmoid over the whole float range.

The kernels do not call libm (Numba has no vector math library here, and a
scalar libm call costs 5-30 ns per element); they inline their own
(``gradpath.kernels.common``). Measured here in units in the last place (ulp)
of the result's type against numpy's (libm) functions, on dense grids, at the
edges of the range, and for NaN and infinities. float32 arguments compute in
float32, with shorter polynomials, to a few float32 ulp.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from gradpath.kernels.common import exp_, sigmoid_, tanh_
from gradpath.kernels.jit import jit


@jit
def _apply_exp(a, out):
    for i in range(a.shape[0]):
        out[i] = exp_(a[i])


@jit
def _apply_tanh(a, out):
    for i in range(a.shape[0]):
        out[i] = tanh_(a[i])


@jit
def _apply_sigmoid(a, out):
    for i in range(a.shape[0]):
        out[i] = sigmoid_(a[i])


FUNCS = {"exp": (_apply_exp, np.exp), "tanh": (_apply_tanh, np.tanh),
         "sigmoid": (_apply_sigmoid, expit)}
#: Bounds in ulp of the result's dtype, against libm evaluated in float64
#: (itself within 0.5 ulp). float32 arguments compute in float32. Measured
#: worst on these grids: exp 1.0, sigmoid 3.0, tanh 4.0 (just above |x| = 0.1,
#: where the formula switches) in float64; exp 0.87, sigmoid 2.2, tanh 2.2
#: (near |x| = 0.54, where 1 - e still cancels) in float32.
MAX_ULP = {("exp", "float64"): 1, ("tanh", "float64"): 4, ("sigmoid", "float64"): 3,
           ("exp", "float32"): 1, ("tanh", "float32"): 3, ("sigmoid", "float32"): 3}
#: Where each function is finite and normal (beyond: the edge tests).
RANGES = {("exp", "float64"): (-708.0, 709.7), ("exp", "float32"): (-87.0, 88.7),
          ("tanh", "float64"): (-20.0, 20.0), ("tanh", "float32"): (-10.0, 10.0),
          ("sigmoid", "float64"): (-708.0, 40.0), ("sigmoid", "float32"): (-87.0, 20.0)}


def apply(name, x):
    out = np.empty_like(x)
    FUNCS[name][0](x, out)
    return out


def ulp_error(got, ref) -> np.ndarray:
    """|got - ref| in ulp of ``ref`` rounded to got's dtype."""
    ref_t = ref.astype(got.dtype)
    return np.abs(got.astype(np.float64) - ref) / np.spacing(np.abs(ref_t)).astype(np.float64)


def grid(name, dtype) -> np.ndarray:
    lo, hi = RANGES[(name, dtype)]
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(lo, hi, 200_001), rng.uniform(lo, hi, 100_000),
                        rng.standard_normal(50_000), rng.standard_normal(50_000) * 1e-3,
                        np.geomspace(1e-300 if dtype == "float64" else 1e-37, 1.0, 2000),
                        -np.geomspace(1e-300 if dtype == "float64" else 1e-37, 1.0, 2000)])
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(FUNCS))
def test_accuracy_in_ulp(name, dtype):
    x = grid(name, dtype)
    ref = FUNCS[name][1](x.astype(np.float64))  # libm in float64
    err = ulp_error(apply(name, x), ref)
    assert err.max() <= MAX_ULP[(name, dtype)], (f"{name}({dtype}): worst {err.max():.2f} ulp at "
                                f"x = {x[np.argmax(err)]!r}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_edges_nan_and_infinities(dtype):
    dt = np.dtype(dtype)
    big = 800.0 if dtype == "float64" else 200.0
    x = np.array([np.nan, np.inf, -np.inf, big, -big, 0.0, -0.0], dt)
    e, t, s = apply("exp", x), apply("tanh", x), apply("sigmoid", x)
    assert np.isnan(e[0]) and np.isnan(t[0]) and np.isnan(s[0])
    assert e[1] == np.inf and e[2] == 0.0 and e[3] == np.inf and e[4] == 0.0
    assert t[1] == 1.0 and t[2] == -1.0 and t[3] == 1.0 and t[4] == -1.0
    assert s[1] == 1.0 and s[2] == 0.0 and s[3] == 1.0 and s[4] == 0.0
    assert e[5] == 1.0 and t[5] == 0.0 and s[5] == 0.5
    assert np.signbit(t[6])  # tanh(-0) = -0


def test_exp_overflow_and_underflow_edges():
    x = np.array([709.78, 709.79, 709.8, 710.0, -745.1, -745.2, -746.0])
    got = apply("exp", x)
    with np.errstate(over="ignore"):
        ref = np.exp(x)
    finite = np.isfinite(ref) & (ref > 0)
    assert np.all(ulp_error(got[finite], ref[finite]) <= 1.5)
    assert np.all(got[~finite] == ref[~finite])


@jit
def _scalars(x):
    return exp_(x), tanh_(x), sigmoid_(x)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_computed_in_the_arguments_precision(dtype):
    """float32 arguments stay in float32 (no float64 promotion inside)."""
    _scalars(np.dtype(dtype).type(0.3))
    sig = [s for s in _scalars.nopython_signatures if str(s.args[0]) == dtype][0]
    assert [str(t) for t in sig.return_type] == [dtype] * 3
