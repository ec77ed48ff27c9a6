"""Mean-field theory (docs/theory.md, section 3): closed forms, quadrature checked
against Monte Carlo and adaptive integration, critical gains."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad

from gradpath import theory
from gradpath.theory import critical_gain, mean_field, q_star, theory_slope


# -- ReLU: closed forms ----------------------------------------------------------
@pytest.mark.parametrize("gain", [0.5, 0.8, 1.0, 1.2, 1.4])
@pytest.mark.parametrize("su, sb", [(0.0, 0.0), (1.0, 0.1), (0.5, 0.7)])
def test_relu_closed_form(gain, su, sb):
    mf = mean_field("relu", gain, su, sb)
    assert mf.chi == pytest.approx(gain**2 / 2, rel=1e-14)
    assert mf.q_star == pytest.approx((su**2 + sb**2) / (1 - gain**2 / 2), rel=1e-14, abs=0)
    assert mf.slope == pytest.approx(0.5 * math.log(gain**2 / 2), rel=1e-14)
    assert mf.timescale == pytest.approx(-1 / math.log(gain**2 / 2), rel=1e-14)


def test_relu_fixed_point_satisfies_the_variance_map():
    """q = gain^2 E[relu(sqrt(q) z)^2] + drive, with E[relu(sqrt(q) z)^2] = q / 2."""
    gain, su, sb = 1.1, 1.0, 0.3
    q = q_star("relu", gain, su, sb)
    rng = np.random.default_rng(0)
    z = rng.standard_normal(2_000_000)
    v = np.maximum(math.sqrt(q) * z, 0.0) ** 2
    rhs = gain**2 * v.mean() + su**2 + sb**2
    se = gain**2 * v.std() / math.sqrt(v.size)
    assert abs(rhs - q) < 5 * se


def test_relu_at_and_above_criticality():
    assert q_star("relu", 1.5, 1.0, 0.0) == math.inf  # driven: the variance diverges
    assert q_star("relu", 1.5) == 0.0  # undriven: h = 0 stays
    mf = mean_field("relu", math.sqrt(2.0), 1.0)
    assert mf.chi == pytest.approx(1.0) and mf.slope == pytest.approx(0.0, abs=1e-15)
    assert mean_field("relu", 2.0, 1.0).slope == pytest.approx(0.5 * math.log(2.0))


# -- tanh --------------------------------------------------------------------------
@pytest.mark.parametrize("gain", [0.3, 0.8, 1.0])
def test_tanh_without_drive_is_linear(gain):
    mf = mean_field("tanh", gain)
    assert mf.q_star == 0.0
    assert mf.chi == pytest.approx(gain**2, rel=1e-14)
    assert mf.slope == pytest.approx(math.log(gain), abs=1e-14)


def _expect(f, q: float) -> float:
    """E[f(sqrt(q) z)], z ~ N(0, 1), by adaptive quadrature (independent of gradpath)."""
    def g(z):
        return f(math.sqrt(q) * z) * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    parts = ((-40, -1), (-1, 0), (0, 1), (1, 40))  # split at the peak
    return sum(quad(g, a, b, limit=500, epsabs=1e-15, epsrel=1e-13)[0] for a, b in parts)


def _sech4(a: float) -> float:
    return 0.0 if abs(a) > 170 else 1.0 / math.cosh(a) ** 4


@pytest.mark.parametrize("gain, su, sb", [
    (0.8, 1.0, 0.1), (1.0, 1.0, 0.1), (1.5, 1.0, 0.1),  # the probe tests' configurations
    (1.5, 0.0, 0.0),  # chaotic, no drive
    (3.0, 2.0, 0.5),  # q* > 4
    (10.0, 3.0, 0.0),  # q* ~ 100: a narrow sech^4 peak and a step-like tanh^2
])
def test_tanh_quadrature_against_monte_carlo_and_adaptive_integration(gain, su, sb):
    mf = mean_field("tanh", gain, su, sb)
    q = mf.q_star
    assert q > 0
    drive = su**2 + sb**2
    # against scipy's adaptive quadrature, to near machine precision
    t2 = _expect(lambda a: math.tanh(a) ** 2, q)
    d4 = _expect(_sech4, q)
    assert q == pytest.approx(gain**2 * t2 + drive, rel=1e-10)  # q* is the fixed point
    assert mf.chi == pytest.approx(gain**2 * d4, rel=1e-9)
    # against Monte Carlo, within 5 standard errors
    z = np.random.default_rng(1).standard_normal(1_000_000)
    a = math.sqrt(q) * z
    tanh2 = np.tanh(a) ** 2
    sech4 = (1.0 - np.tanh(a) ** 2) ** 2
    for value, sample in ((q - drive, gain**2 * tanh2), (mf.chi, gain**2 * sech4)):
        assert abs(sample.mean() - value) < 5 * sample.std() / math.sqrt(sample.size)
    assert mf.slope == pytest.approx(0.5 * math.log(mf.chi), rel=1e-14)


def test_tanh_expectations_are_accurate_for_every_variance():
    """Both quadrature rules and their switch: E[sech^4] and E[tanh^2] over q from
    1e-3 to 1e4 (a Hermite rule alone is off by 1e-6 at q = 4 and 1e-2 at q = 100)."""
    for q in (1e-3, 0.3, 0.99, 1.0, 1.01, 3.9, 4.0, 4.1, 9.0, 25.0, 100.0, 1e4):
        assert theory._mean_tanh_d2(q) == pytest.approx(_expect(_sech4, q), rel=1e-10)
        assert theory._mean_tanh2(q) == pytest.approx(
            _expect(lambda a: math.tanh(a) ** 2, q), rel=1e-10)


def test_drive_slows_the_tanh_decay_rate_down_to_less_than_linear():
    """Saturation: with a drive, E[tanh'^2] < 1, so chi < gain^2."""
    for gain in (0.5, 1.0, 2.0):
        assert mean_field("tanh", gain, 1.0, 0.1).chi < gain**2


# -- critical gains ------------------------------------------------------------------
def test_critical_gains():
    assert critical_gain("relu") == math.sqrt(2.0)
    assert critical_gain("relu", 1.0, 0.5) == math.sqrt(2.0)
    # without drive, tanh's order-to-chaos edge is at gain 1: ordered (chi = gain^2 < 1)
    # below, chaotic (q* > 0 and chi > 1) above
    assert critical_gain("tanh") == 1.0
    assert mean_field("tanh", 0.999).chi < 1.0
    above = mean_field("tanh", 1.05)
    assert above.q_star > 0 and above.chi > 1.0
    g = critical_gain("tanh", 1.0, 0.1)
    assert g > 1.2  # a drive pushes the edge out
    assert mean_field("tanh", g, 1.0, 0.1).chi == pytest.approx(1.0, abs=1e-9)
    assert mean_field("tanh", 0.99 * g, 1.0, 0.1).chi < 1 < mean_field("tanh", 1.01 * g, 1.0,
                                                                       0.1).chi


# -- where the theory applies ------------------------------------------------------
def test_theory_slope_applies_to_random_rnns_only():
    for act in ("tanh", "relu"):
        for init in ("gaussian", "orthogonal"):
            s = theory_slope("rnn", act, init, 0.9, 1.0, 0.1)
            assert s == mean_field(act, 0.9, 1.0, 0.1).slope
        assert theory_slope("rnn", act, "identity", 1.0, 1.0, 0.1) is None
    for init in ("identity", "gaussian", "orthogonal"):
        assert theory_slope("lstm", "tanh", init, 1.0, 1.0, 0.1) is None


@pytest.mark.parametrize("args, name", [
    (("sigmoid", 1.0), "activation"),
    (("tanh", -1.0), "gain"),
    (("tanh", math.nan), "gain"),
    (("relu", 1.0, -0.5), "input_std"),
    (("relu", 1.0, 1.0, math.inf), "bias_std"),
])
def test_bad_arguments_name_the_argument(args, name):
    with pytest.raises(ValueError, match=name):
        mean_field(*args)
