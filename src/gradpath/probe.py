"""Gradient-decay probes: decay curves, decay-rate fits, horizons, Lyapunov exponents.

The probed network is driven by explicit Gaussian inputs: ``W_ih`` is
``input_std`` times the identity on a D = G*H dimensional input (G = 1 for
the RNN, 4 for the LSTM) and x_t ~ N(0, I), so every unit's pre-activation
gets an independent input contribution of standard deviation ``input_std``;
biases are N(0, bias_std^2) per unit (added to the LSTM's forget-gate
bias). Mean-field theory (:mod:`gradpath.theory`) then sees the same
sigma_u and sigma_b.

The curve is measured on the last T steps of a trajectory that first runs
``burn_in`` steps from h = 0, so the states are stationary: the adjoint
starts as a random unit vector at step T-1 (a random linear loss L_T) and is
propagated back with per-step renormalisation, so no lag under- or
overflows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .checks import choice, integer, number
from .kernels.adjoint import lstm_adjoint_lognorms, rnn_adjoint_lognorms
from .kernels.lstm import lstm_states
from .kernels.rnn import rnn_states
from .models import ACTIVATIONS, INITS, LSTM, RNN
from .rng import stream
from .theory import theory_slope

CELLS: tuple[str, ...] = ("rnn", "lstm")
#: Horizon threshold: the lag at which ||delta|| first falls below this
#: fraction of its value at the scored step (docs/theory.md, section 6).
HORIZON_FRACTION = 1e-6


@dataclass
class ProbeResult:
    """A measured decay curve and what is fitted to it.

    Attributes
    ----------
    log10_grad_norm : ndarray, shape (T,)
        log10 of the root-mean-square ||dL_T/dh_t|| over batch and seeds, by
        lag T-1-t (lag 0 is the scored step, where the norm is 1).
    log10_cell_grad_norm : ndarray or None
        The same for ||dL_T/dc_t|| (LSTM).
    decay_rate : float
        Least-squares slope of ln||delta|| against lag, per step.
    cell_decay_rate : float or None
    theory_slope : float or None
        Mean-field 0.5 ln chi, where it applies.
    horizon : int or None
        First lag with ||delta|| below HORIZON_FRACTION, None if beyond T.
    lyapunov : ndarray
        Top-k Lyapunov exponents (per step, natural log), descending.
    fit_start : int
        First lag used by the fit (the skipped transient).
    """

    log10_grad_norm: np.ndarray
    log10_cell_grad_norm: np.ndarray | None
    decay_rate: float
    cell_decay_rate: float | None
    theory_slope: float | None
    horizon: int | None
    lyapunov: np.ndarray
    fit_start: int
    config: dict = field(default_factory=dict)


def default_transient(T: int) -> int:
    """Lags skipped before the fit: 10% of T, at least 5 and at most 50."""
    return int(min(50, max(5, T // 10)))


def fit_decay_rate(log_norm: np.ndarray, skip: int | None = None) -> float:
    """Least-squares slope of ``log_norm`` (natural log, by lag) after ``skip`` lags.

    Non-finite points (a norm that became exactly 0 or overflowed) end the
    fitted window. Returns NaN when fewer than 3 points remain.
    """
    y = np.asarray(log_norm, dtype=np.float64)
    skip = default_transient(len(y)) if skip is None else int(skip)
    y = y[skip:]
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        y = y[: bad[0]]
    if y.size < 3:
        return math.nan
    lags = np.arange(skip, skip + y.size, dtype=np.float64)
    return float(np.polyfit(lags, y, 1)[0])


def horizon(log10_norm: np.ndarray, fraction: float = HORIZON_FRACTION) -> int | None:
    """First lag where the norm falls below ``fraction`` of its lag-0 value."""
    rel = np.asarray(log10_norm) - log10_norm[0]
    hit = np.flatnonzero(rel < math.log10(fraction))
    return int(hit[0]) if hit.size else None


def _rms_log(lognorms: np.ndarray) -> np.ndarray:
    """ln sqrt(mean ||delta||^2) over axis 1 from ln||delta|| (exact, no overflow)."""
    with np.errstate(invalid="ignore"):
        m = np.max(lognorms, axis=1, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        s = np.mean(np.exp(2.0 * (lognorms - m)), axis=1)
    with np.errstate(divide="ignore"):
        return m[:, 0] + 0.5 * np.log(s)


def probe_network(cell: str, activation: str, init: str, gain: float, hidden: int,
                  input_std: float, bias_std: float, seed: int, dtype=np.float64):
    """The probed model and its parameters (see the module docstring)."""
    choice(cell, "cell", CELLS)
    G = 4 if cell == "lstm" else 1
    model = LSTM(G * hidden, hidden, 1) if cell == "lstm" else \
        RNN(hidden, hidden, 1, activation)
    params = model.init_params(init, gain=gain, seed=seed, dtype=np.float64)
    params["W_ih"] = input_std * np.eye(G * hidden)
    params["b"] = params["b"] + bias_std * stream(seed, "weights", 1).standard_normal(G * hidden)
    return model, {k: np.ascontiguousarray(v, dtype=dtype) for k, v in params.items()}


def probe(cell: str = "rnn", activation: str = "tanh", init: str = "gaussian",
          gain: float = 1.0, hidden: int = 128, seq_len: int = 200, batch: int = 8,
          input_std: float = 1.0, bias_std: float = 0.0, seeds=(0,), burn_in: int = 100,
          lyapunov_k: int = 4, transient: int | None = None) -> ProbeResult:
    """Measure the gradient-decay curve of a network at initialisation.

    Parameters
    ----------
    cell : {"rnn", "lstm"}
    activation : {"tanh", "relu"}
        RNN only (the LSTM's nonlinearities are fixed).
    init : {"identity", "gaussian", "orthogonal"}
    gain : float
    hidden : int
    seq_len : int
        Number of lags T measured.
    batch : int
        Input sequences per seed.
    input_std, bias_std : float
        Per-unit std of the input contribution and of the bias.
    seeds : sequence of int
        Each seed draws its own network, inputs and probe vectors; the curve
        averages ||delta||^2 over batch and seeds.
    burn_in : int
        Steps run before the measured window.
    lyapunov_k : int
        Number of Lyapunov exponents (QR method on the first sequence of
        each seed, averaged over seeds).
    transient : int, optional
        Lags skipped by the fit (default :func:`default_transient`).

    Returns
    -------
    ProbeResult
    """
    choice(activation, "activation", sorted(ACTIVATIONS))
    choice(init, "init", INITS)
    integer(hidden, "hidden")
    integer(batch, "batch")
    integer(seq_len, "seq_len", minimum=3)  # a fit needs at least 3 lags
    for name, v in (("gain", gain), ("input_std", input_std), ("bias_std", bias_std)):
        number(v, name)
    integer(burn_in, "burn_in", minimum=0)
    seeds = [int(s) for s in np.atleast_1d(seeds)]
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    requested_k = int(lyapunov_k)
    lyapunov_k = int(min(max(lyapunov_k, 1), hidden))
    total = seq_len + burn_in
    logs_h, logs_c, lyap = [], [], []
    for seed in seeds:
        model, p = probe_network(cell, activation, init, gain, hidden, input_std, bias_std, seed)
        D = p["W_ih"].shape[1]
        x = stream(seed, "data").standard_normal((total, batch, D))
        h0 = np.zeros((batch, hidden))
        lengths = np.full(batch, total, np.int64)
        delta = stream(seed, "probe").standard_normal((batch, hidden))
        delta /= np.linalg.norm(delta, axis=1, keepdims=True)
        q0 = stream(seed, "lyapunov")
        if cell == "rnn":
            act = ACTIVATIONS[activation]
            hs = rnn_states(x, p["W_ih"], p["W_hh"], p["b"], h0, lengths, act)
            logs_h.append(rnn_adjoint_lognorms(hs, p["W_hh"], act, delta)[burn_in:][::-1])
            lyap.append(lyapunov_rnn(hs[:, 0], p["W_hh"], activation, lyapunov_k,
                                     q0, burn_in))
        else:
            hs, cs, gates, tcs = lstm_states(x, p["W_ih"], p["W_hh"], p["b"], h0, h0, lengths)
            lh, lc = lstm_adjoint_lognorms(hs, cs, gates, tcs, p["W_hh"], delta,
                                           np.zeros_like(delta))
            logs_h.append(lh[burn_in:][::-1])
            logs_c.append(lc[burn_in:][::-1])
            lyap.append(lyapunov_lstm(cs[:, 0], gates[:, 0], tcs[:, 0], p["W_hh"],
                                      lyapunov_k, q0, burn_in))
    ln_h = _rms_log(np.concatenate(logs_h, axis=1))
    skip = default_transient(seq_len) if transient is None else int(transient)
    rate = fit_decay_rate(ln_h, skip)
    ln_c, cell_rate = None, None
    if logs_c:
        ln_c = _rms_log(np.concatenate(logs_c, axis=1))
        cell_rate = fit_decay_rate(ln_c, skip)
    log10_h = ln_h / math.log(10.0)
    config = dict(cell=cell, activation=activation if cell == "rnn" else "tanh", init=init,
                  gain=float(gain), hidden=int(hidden), seq_len=int(seq_len), batch=int(batch),
                  input_std=float(input_std), bias_std=float(bias_std), seeds=seeds,
                  burn_in=int(burn_in), lyapunov_k=requested_k)
    return ProbeResult(
        log10_grad_norm=log10_h,
        log10_cell_grad_norm=None if ln_c is None else ln_c / math.log(10.0),
        decay_rate=rate,
        cell_decay_rate=cell_rate,
        theory_slope=theory_slope(cell, activation, init, gain, input_std, bias_std),
        horizon=horizon(log10_h),
        lyapunov=np.mean(lyap, axis=0),
        fit_start=skip,
        config=config,
    )


def _qr_step(M: np.ndarray):
    q, r = np.linalg.qr(M)
    d = np.diag(r)
    with np.errstate(divide="ignore"):
        return q, np.log(np.abs(d))


def lyapunov_rnn(hs: np.ndarray, W_hh: np.ndarray, activation: str, k: int,
                 rng: np.random.Generator, transient: int = 0) -> np.ndarray:
    """Top-k Lyapunov exponents of an RNN trajectory by the QR method.

    ``hs`` is (T+1, H) with hs[t+1] = h_t; J_t = diag(phi'(a_t)) W_hh;
    Q_t R_t = J_t Q_{t-1}; lambda_i = mean of ln|R_t[i, i]| after
    ``transient`` steps (Engelken, Wolf & Abbott 2020).
    """
    H = W_hh.shape[0]
    q, _ = np.linalg.qr(rng.standard_normal((H, k)))
    acc = np.zeros(k)
    n = 0
    for t in range(1, hs.shape[0]):
        h = hs[t]
        d = (h > 0).astype(h.dtype) if activation == "relu" else 1.0 - h * h
        q, lr = _qr_step(d[:, None] * (W_hh @ q))
        if t > transient:
            acc += lr
            n += 1
    return np.sort(acc / max(n, 1))[::-1]


def lyapunov_lstm(cs: np.ndarray, gates: np.ndarray, tcs: np.ndarray, W_hh: np.ndarray,
                  k: int, rng: np.random.Generator, transient: int = 0) -> np.ndarray:
    """Top-k Lyapunov exponents of an LSTM trajectory (state (h, c), 2H-dim).

    ``cs`` (T+1, H), ``gates`` (T, 4H) activations and ``tcs`` (T, H) of one
    sequence from :func:`lstm_states`.
    """
    H = W_hh.shape[1]
    Wi, Wf, Wg, Wo = (W_hh[j * H:(j + 1) * H] for j in range(4))
    q, _ = np.linalg.qr(rng.standard_normal((2 * H, k)))
    acc = np.zeros(k)
    n = 0
    for t in range(gates.shape[0]):
        i, f, g, o = (gates[t, j * H:(j + 1) * H] for j in range(4))
        tc, cp = tcs[t], cs[t]
        qh, qc = q[:H], q[H:]
        dc = ((cp * f * (1 - f))[:, None] * (Wf @ qh) + (g * i * (1 - i))[:, None] * (Wi @ qh)
              + (i * (1 - g * g))[:, None] * (Wg @ qh) + f[:, None] * qc)
        dh = (tc * o * (1 - o))[:, None] * (Wo @ qh) + (o * (1 - tc * tc))[:, None] * dc
        q, lr = _qr_step(np.vstack([dh, dc]))
        if t >= transient:
            acc += lr
            n += 1
    return np.sort(acc / max(n, 1))[::-1]
