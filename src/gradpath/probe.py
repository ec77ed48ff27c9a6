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

import functools
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields

import numpy as np

from .cells import cell_class
from .cells.base import network_fields
from .checks import integer, number
from .models import make_model
from .resources import check_fits, physical_memory_mb
from .rng import stream
from .runid import run_id
from .theory import theory_slope

#: Horizon threshold: the lag at which ||delta|| first falls below this
#: fraction of its value at the scored step (docs/theory.md, section 6).
HORIZON_FRACTION = 1e-6


@dataclass(frozen=True)
class ProbeConfig:
    """Everything that defines a probe run (its run id hashes these fields).

    The fields are also :func:`probe`'s keyword arguments.

    Attributes
    ----------
    cell : str
        One of :data:`gradpath.vocab.CELLS`.
    activation : str
        One of the cell's activations; a cell with a fixed nonlinearity
        records its own (the gated cells' "tanh"), so two of its configs never
        differ by it.
    init : str
        One of :data:`gradpath.vocab.INITS`.
    gain : float
    hidden : int
    seq_len : int
        Number of lags T measured (at least 3: the fit needs 3 points).
    batch : int
        Input sequences per seed.
    input_std, bias_std : float
        Per-unit std of the input contribution and of the bias.
    seeds : tuple of int
        Each seed draws its own network, inputs and probe vectors; the curve
        averages ||delta||^2 over batch and seeds. A single int is one seed.
    burn_in : int
        Steps run before the measured window.
    lyapunov_k : int
        Number of Lyapunov exponents requested (at most ``hidden`` are
        computed; the config records the request).
    transient : int or None
        Lags skipped by the fit (None: :func:`default_transient`). Part of the
        id only when set, so the ids of runs from before it existed hold.
    """

    cell: str = "rnn"
    activation: str = "tanh"
    init: str = "gaussian"
    gain: float = 1.0
    hidden: int = 128
    seq_len: int = 200
    batch: int = 8
    input_std: float = 1.0
    bias_std: float = 0.0
    seeds: tuple[int, ...] = (0,)
    burn_in: int = 100
    lyapunov_k: int = 4
    transient: int | None = None

    def __post_init__(self) -> None:
        seeds = self.seeds
        if isinstance(seeds, int | np.integer) and not isinstance(seeds, bool):
            seeds = (seeds,)
        elif isinstance(seeds, Iterable) and not isinstance(seeds, str):
            seeds = tuple(seeds)
        else:
            raise ValueError(f"seeds: expected a seed or a sequence of seeds, got {seeds!r}")
        object.__setattr__(self, "seeds", seeds)
        network = network_fields(self)
        validate_probe_config(self)
        set_ = functools.partial(object.__setattr__, self)
        for name, value in network.items():
            set_(name, value)
        for name in ("input_std", "bias_std"):
            set_(name, float(getattr(self, name)))  # 1 and 1.0: one configuration
        for name in ("seq_len", "batch", "burn_in", "lyapunov_k"):
            set_(name, int(getattr(self, name)))  # numpy integers hash and print as ints
        set_("seeds", tuple(int(s) for s in self.seeds))
        if self.transient is not None:
            set_("transient", int(self.transient))

    def as_dict(self) -> dict:
        """The fields as :attr:`ProbeResult.config` and the tables record them:
        ``seeds`` a list, ``transient`` only when set."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["seeds"] = list(self.seeds)
        if d["transient"] is None:
            del d["transient"]
        return d

    @functools.cached_property
    def run_id(self) -> str:
        """The run's id (:func:`gradpath.runid.run_id` of :meth:`as_dict`),
        computed once and carried by the result and the grid's run."""
        return run_id("probe", self.as_dict())


def validate_probe_config(c: ProbeConfig) -> None:
    """Raise ValueError naming the first bad field of a :class:`ProbeConfig`
    (the network fields: :func:`gradpath.cells.base.network_fields`)."""
    network_fields(c)
    for name in ("input_std", "bias_std"):
        number(getattr(c, name), name)
    for name in ("batch", "lyapunov_k"):
        integer(getattr(c, name), name)
    integer(c.seq_len, "seq_len", minimum=3)  # a fit needs at least 3 lags
    integer(c.burn_in, "burn_in", minimum=0)
    if c.transient is not None:
        integer(c.transient, "transient", minimum=0)
    if not c.seeds:
        raise ValueError("seeds: expected at least one seed")
    for s in c.seeds:
        integer(s, "seeds", minimum=0)


@dataclass(frozen=True)
class ProbeProgress:
    """Where a probe is, as passed to :func:`probe`'s ``progress`` callback.

    A step is one time step of the Lyapunov (QR) pass, the probe's slow part;
    the states and the adjoint of each seed are computed before its steps.

    Attributes
    ----------
    step, steps : int
        Steps done, and in all: ``len(seeds) * (burn_in + seq_len)``.
    elapsed_s, eta_s : float
        Seconds since the probe started, and the estimated seconds left.
    """

    step: int
    steps: int
    elapsed_s: float
    eta_s: float


@dataclass
class ProbeResult:
    """A measured decay curve and what is fitted to it.

    Attributes
    ----------
    log10_grad_norm : ndarray, shape (T,)
        log10 of the root-mean-square ||dL_T/dh_t|| over batch and seeds, by
        lag T-1-t (lag 0 is the scored step, where the norm is 1).
    log10_cell_grad_norm : ndarray or None
        The same for ||dL_T/dc_t||; None for a cell without a cell state
        (all but the LSTM).
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
    config : dict
        :meth:`ProbeConfig.as_dict` of the probe's configuration.
    probe_config : ProbeConfig
        The configuration itself (its :attr:`~ProbeConfig.run_id` is the run's).
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
    probe_config: ProbeConfig | None = field(default=None, repr=False)

    @property
    def run_id(self) -> str:
        """The run's id (:attr:`ProbeConfig.run_id`, computed once)."""
        if self.probe_config is None:
            raise ValueError("run_id: this ProbeResult carries no ProbeConfig")
        return self.probe_config.run_id


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
    G = cell_class(cell).gates  # gate blocks: inputs per unit
    model = make_model(cell, G * hidden, hidden, 1, activation)
    params = model.init_params(init, gain=gain, seed=seed, dtype=np.float64)
    params["W_ih"] = input_std * np.eye(G * hidden)
    params["b"] = params["b"] + bias_std * stream(seed, "weights", 1).standard_normal(G * hidden)
    return model, {k: np.ascontiguousarray(v, dtype=dtype) for k, v in params.items()}


def probe(config: ProbeConfig | None = None, *,
          progress: Callable[[ProbeProgress], None] | None = None, **kwargs) -> ProbeResult:
    """Measure the gradient-decay curve of a network at initialisation.

    Called with a :class:`ProbeConfig`, or with its fields as keywords
    (``probe(cell="lstm", init="orthogonal", hidden=64)``), not both.

    Parameters
    ----------
    config : ProbeConfig, optional
        What to probe; see :class:`ProbeConfig` for every field.
    progress : callable, optional
        Called with a :class:`ProbeProgress` after every step of the
        Lyapunov pass (the caller decides how often to show it); it cannot
        change the result.
    **kwargs
        :class:`ProbeConfig`'s fields, when ``config`` is not given.

    Returns
    -------
    ProbeResult

    Raises
    ------
    ValueError
        If the probe cannot fit in this machine's memory
        (:func:`gradpath.resources.check_fits`), before allocating anything.
    """
    if config is None:
        config = ProbeConfig(**kwargs)
    elif not isinstance(config, ProbeConfig) or kwargs:
        raise TypeError("probe: pass a ProbeConfig or its fields as keywords "
                        f"(probe(cell=..., init=...)), got {config!r}"
                        + (f" and {sorted(kwargs)}" if kwargs else ""))
    c = config
    check_fits("probe", c.as_dict(), physical_memory_mb())
    lyapunov_k = min(c.lyapunov_k, c.hidden)
    total = c.seq_len + c.burn_in
    t0, done = time.perf_counter(), [0]
    steps = len(c.seeds) * total

    def on_step() -> None:
        done[0] += 1
        elapsed = time.perf_counter() - t0
        progress(ProbeProgress(done[0], steps, elapsed, elapsed / done[0] * (steps - done[0])))

    tick = None if progress is None else on_step
    logs_h, logs_c, lyap = [], [], []
    for seed in c.seeds:
        model, p = probe_network(c.cell, c.activation, c.init, c.gain, c.hidden, c.input_std,
                                 c.bias_std, seed)
        D = p["W_ih"].shape[1]
        x = stream(seed, "data").standard_normal((total, c.batch, D))
        delta = stream(seed, "probe").standard_normal((c.batch, c.hidden))
        delta /= np.linalg.norm(delta, axis=1, keepdims=True)
        states = model.states(p, x)
        lh, lc = model.adjoint_lognorms(states, p, delta)
        logs_h.append(lh[c.burn_in:][::-1])
        if lc is not None:
            logs_c.append(lc[c.burn_in:][::-1])
        lyap.append(model.lyapunov(states, p, lyapunov_k, stream(seed, "lyapunov"), c.burn_in,
                                   on_step=tick))
    ln_h = _rms_log(np.concatenate(logs_h, axis=1))
    skip = default_transient(c.seq_len) if c.transient is None else c.transient
    rate = fit_decay_rate(ln_h, skip)
    ln_c, cell_rate = None, None
    if logs_c:
        ln_c = _rms_log(np.concatenate(logs_c, axis=1))
        cell_rate = fit_decay_rate(ln_c, skip)
    log10_h = ln_h / math.log(10.0)
    return ProbeResult(
        log10_grad_norm=log10_h,
        log10_cell_grad_norm=None if ln_c is None else ln_c / math.log(10.0),
        decay_rate=rate,
        cell_decay_rate=cell_rate,
        theory_slope=theory_slope(c.cell, c.activation, c.init, c.gain, c.input_std,
                                  c.bias_std),
        horizon=horizon(log10_h),
        lyapunov=np.mean(lyap, axis=0),
        fit_start=skip,
        config=c.as_dict(),
        probe_config=c,
    )
