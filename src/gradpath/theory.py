"""Mean-field predictions of the gradient decay rate (Poole et al. 2016;
Schoenholz et al. 2017; Chen, Pennington & Schoenholz 2018).

For ``a_t = W h_{t-1} + U x_t + b`` with W_ij ~ N(0, sigma_w^2 / N) (or
sigma_w times a Haar-orthogonal matrix: both give the same variance map and
the same chi), per-unit input contribution variance sigma_u^2 and bias
variance sigma_b^2:

* variance map  ``q <- sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_u^2 + sigma_b^2``;
* gradient factor ``chi = sigma_w^2 E[phi'(sqrt(q*) z)^2]``;
* predicted per-step slope of ln||delta|| against lag: ``0.5 * ln(chi)``.

tanh uses Gauss-Hermite quadrature; ReLU has closed forms (no quadrature
on the step function phi').
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import vocab
from .checks import choice, number

#: Gauss-Hermite nodes for expectations over z ~ N(0, 1).
N_QUADRATURE = 200
_Z, _W = np.polynomial.hermite_e.hermegauss(N_QUADRATURE)
_W = _W / _W.sum()

THEORY_INITS: tuple[str, ...] = ("gaussian", "orthogonal")


@dataclass(frozen=True)
class MeanField:
    """Mean-field fixed point and gradient factor.

    Attributes
    ----------
    q_star : float
        Fixed point of the variance map (``inf`` when it diverges).
    chi : float
        Gradient factor: E||delta_{t-1}||^2 = chi E||delta_t||^2.
    slope : float
        Predicted per-step slope of ln||delta|| against lag, 0.5 ln chi.
    timescale : float
        -1 / ln chi (steps), ``inf`` at criticality, negative when exploding.
    """

    q_star: float
    chi: float
    slope: float
    timescale: float


def _gauss(f, q: float) -> float:
    return float(np.dot(_W, f(math.sqrt(q) * _Z)))


# Gauss-Legendre nodes on [-20, 20] in a = sqrt(q) z, for expectations of
# sech(a)^2 and sech(a)^4 at q > 1: there the integrand is a peak of width
# 1/sqrt(q) in z that Hermite nodes under-resolve (a relative error of 1e-6 at
# q = 4 and 1e-2 at q = 100), while sech(20)^2 < 1e-16 makes the cut exact.
_A, _AW = np.polynomial.legendre.leggauss(400)
_A, _AW = 20.0 * _A, 20.0 * _AW
_LEGENDRE_Q = 1.0


def _sech_pow(a: np.ndarray, k: int) -> np.ndarray:
    return np.exp(-k * np.logaddexp(a, -a) + k * math.log(2.0))  # sech(a)^k, overflow-free


def _tanh_d2(a: np.ndarray) -> np.ndarray:
    return _sech_pow(a, 4)


def _legendre(f, q: float) -> float:
    dens = np.exp(-0.5 * _A**2 / q) / math.sqrt(2.0 * math.pi * q)
    return float(np.dot(_AW, f(_A) * dens))


def _mean_tanh_d2(q: float) -> float:
    """E[tanh'(sqrt(q) z)^2]: Hermite in z for small q, Legendre in a = sqrt(q) z for large."""
    if q <= _LEGENDRE_Q:
        return _gauss(_tanh_d2, q)
    return _legendre(_tanh_d2, q)


def _mean_tanh2(q: float) -> float:
    """E[tanh(sqrt(q) z)^2] = 1 - E[sech(sqrt(q) z)^2], with the same two rules."""
    if q <= _LEGENDRE_Q:
        return _gauss(lambda a: np.tanh(a) ** 2, q)
    return 1.0 - _legendre(lambda a: _sech_pow(a, 2), q)


def q_star(activation: str, gain: float, input_std: float = 0.0, bias_std: float = 0.0,
           tol: float = 1e-14, max_iter: int = 100_000) -> float:
    """Fixed point of the mean-field variance map.

    Parameters
    ----------
    activation : {"tanh", "relu"}
    gain : float
        sigma_w.
    input_std, bias_std : float
        sigma_u and sigma_b.
    tol : float
        Stop when successive iterates differ by less than ``tol`` relatively.
    max_iter : int

    Returns
    -------
    float
        q*, or ``inf`` for ReLU at or above criticality with a drive.
    """
    _check(activation, gain, input_std, bias_std)
    drive = input_std**2 + bias_std**2
    if activation == "relu":
        # E[relu(sqrt(q) z)^2] = q / 2
        if gain**2 < 2.0:
            return drive / (1.0 - gain**2 / 2.0)
        return 0.0 if drive == 0.0 else math.inf
    if drive == 0.0 and gain <= 1.0:
        return 0.0  # the zero state is the stable fixed point (ordered phase)
    q = max(drive, 1.0)
    for _ in range(max_iter):
        q_new = gain**2 * _mean_tanh2(q) + drive
        if abs(q_new - q) <= tol * max(q, 1e-300):
            return q_new
        q = q_new
    return q


def mean_field(activation: str, gain: float, input_std: float = 0.0,
               bias_std: float = 0.0) -> MeanField:
    """q*, chi and the predicted slope 0.5 ln chi for a vanilla RNN.

    Parameters
    ----------
    activation : {"tanh", "relu"}
    gain : float
        sigma_w: the std of W_ij times sqrt(N), or the orthogonal matrix's scale.
    input_std, bias_std : float
        Per-unit std of the input contribution and of the bias.

    Returns
    -------
    MeanField
    """
    q = q_star(activation, gain, input_std, bias_std)
    if activation == "relu":
        chi = gain**2 / 2.0  # E[step(z)^2] = 1/2, whatever q
    elif q == 0.0:
        chi = gain**2  # tanh'(0) = 1
    else:
        chi = gain**2 * _mean_tanh_d2(q)
    if chi <= 0.0:
        return MeanField(q, chi, -math.inf, 0.0)
    ln_chi = math.log(chi)
    return MeanField(q, chi, 0.5 * ln_chi, math.inf if ln_chi == 0 else -1.0 / ln_chi)


def theory_slope(cell: str, activation: str, init: str, gain: float, input_std: float,
                 bias_std: float) -> float | None:
    """The predicted slope where mean-field theory applies, else None.

    It applies to vanilla RNNs with gaussian or orthogonal recurrent weights;
    not to identity initialisation (a fixed, non-random W) nor to the LSTM.
    """
    if cell != "rnn" or init not in THEORY_INITS:
        return None
    return mean_field(activation, gain, input_std, bias_std).slope


def critical_gain(activation: str, input_std: float = 0.0, bias_std: float = 0.0) -> float:
    """The gain at which chi = 1 (the order-to-chaos edge), by bisection for tanh."""
    if activation == "relu":
        return math.sqrt(2.0)
    _check(activation, 1.0, input_std, bias_std)
    if input_std == 0.0 and bias_std == 0.0:
        # q* = 0 and chi = gain^2 up to gain 1 (bisecting instead meets the
        # variance map's critical slowing down: minutes, and an error of 5e-5)
        return 1.0
    lo, hi = 0.0, 10.0
    for _ in range(60):  # 10 / 2^60 is below float64 resolution at 1
        mid = 0.5 * (lo + hi)
        if mean_field(activation, mid, input_std, bias_std).chi < 1.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _check(activation, gain, input_std, bias_std) -> None:
    choice(activation, "activation", vocab.ACTIVATIONS)
    for name, v in (("gain", gain), ("input_std", input_std), ("bias_std", bias_std)):
        number(v, name)
