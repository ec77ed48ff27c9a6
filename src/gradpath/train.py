"""Training: optimisers, clipping, the training loop and divergence handling.

A run is fully determined by its :class:`TrainConfig`: the weights come from
the ``"weights"`` stream of its seed, training batch k from the ``"data"``
stream (sub-stream k) and held-out batches from the ``"eval"`` stream.

Divergence is a result, not an exception: the first non-finite loss or
gradient (or parameters that overflow after an update) ends the run with
``status="diverged"`` and ``diverged_at`` = that step; everything recorded up
to then is kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

from . import vocab
from .cells import cell_class
from .cells.base import DEFAULT_FORGET_BIAS, network_fields
from .checks import choice, integer, number
from .clipping import clip_by_norm, clip_by_value, global_norm
from .kernels.optim import adam_update, rmsprop_update, sgd_update, views
from .models import make_model
from .probe import fit_decay_rate
from .resources import check_fits, physical_memory_mb
from .rng import stream
from .runid import run_id
from .tasks import Task, make_task

#: Stages of a training run: a run of a learning-rate sweep, or a reported run.
SWEEP, REPORT = "sweep", "report"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (its run id hashes these fields).

    Attributes
    ----------
    task : str
        One of :data:`gradpath.vocab.TASKS`.
    seq_len : int
    cell : str
        One of :data:`gradpath.vocab.CELLS`.
    activation : str
        One of the cell's activations; a cell with a fixed nonlinearity
        records its own (the gated cells' "tanh"), so two of its configs never
        differ by it.
    init : str
        One of :data:`gradpath.vocab.INITS`.
    gain : float
    clip : str
        One of :data:`gradpath.vocab.CLIPS`.
    clip_threshold : float
        theta for norm clipping, the bound for value clipping.
    optimizer : str
        One of :data:`gradpath.vocab.OPTIMIZERS`.
    lr : float
    momentum : float
        SGD's heavy-ball momentum: 0 (plain SGD, the default) unless set;
        only SGD takes it (another optimiser with a non-zero momentum is
        refused, not silently ignored).
    hidden, batch, steps, seed : int
    eval_every : int
        Steps between held-out evaluations (and decay-curve checkpoints).
    eval_batches : int
        Held-out batches per evaluation.
    ragged : bool
        Variable-length sequences.
    dtype : str
        One of :data:`gradpath.vocab.DTYPES`: precision of parameters, data
        and kernels (the optimiser's state too).
    lr_orth : float or None
        Learning rate of an orthogonal cell's skew matrix (the expRNN's A, as
        in Lezcano-Casado & Martinez-Rubio 2019); None: ``lr``. Only for a
        cell with such a parameter (its ``lr_groups``).
    w_ih_std, w_out_std : float or None
        Standard deviation of the input and read-out weights' entries; None:
        the cell's scaled defaults (:meth:`gradpath.cells.base.Cell.init_stds`).
        E.g. 0.001 for Le et al.'s N(0, 0.001^2).
    forget_bias : float or None
        The LSTM's forget-gate bias at initialisation; None: the default 1.0
        (:data:`gradpath.cells.base.DEFAULT_FORGET_BIAS`). Only for the LSTM.
    """

    task: str = "adding"
    seq_len: int = 50
    cell: str = "rnn"
    activation: str = "tanh"
    init: str = "orthogonal"
    gain: float = 1.0
    clip: str = "norm"
    clip_threshold: float = 1.0
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    hidden: int = 64
    batch: int = 32
    steps: int = 500
    seed: int = 0
    eval_every: int = 100
    eval_batches: int = 4
    ragged: bool = False
    dtype: str = "float64"
    lr_orth: float | None = None
    w_ih_std: float | None = None
    w_out_std: float | None = None
    forget_bias: float | None = None

    def __post_init__(self) -> None:
        validate_config(self)
        for name, value in network_fields(self).items():
            object.__setattr__(self, name, value)
        for name in ("clip_threshold", "lr", "momentum"):
            # 1 and 1.0 are one configuration: one run id
            object.__setattr__(self, name, float(getattr(self, name)))
        for name in OPTIONAL_FIELDS:
            if getattr(self, name) is not None:
                object.__setattr__(self, name, float(getattr(self, name)))

    def as_dict(self) -> dict:
        """The fields as a plain dict; the optional ones (:data:`OPTIONAL_FIELDS`)
        only when set, so a configuration's id does not change when such a
        field is added."""
        d = asdict(self)
        for name in OPTIONAL_FIELDS:
            if d[name] is None:
                del d[name]
        return d

    def init_settings(self) -> dict[str, float]:
        """What the initialisation of every weight resolves to for this
        config, as a run records it: the standard deviations of W_ih and W_out
        (:meth:`gradpath.cells.base.Cell.init_stds`) and, for the LSTM, the
        forget-gate bias (NaN for other cells)."""
        task = make_task(self.task, self.seq_len)
        model = build_model(self, task)
        s_ih, s_out = model.init_stds(w_ih_std=self.w_ih_std, w_out_std=self.w_out_std)
        fb = (DEFAULT_FORGET_BIAS if self.forget_bias is None else self.forget_bias) \
            if self.cell == "lstm" else math.nan
        return {"w_ih_std": s_ih, "w_out_std": s_out, "forget_bias": fb}

    def init_kwargs(self) -> dict:
        """The keyword arguments of ``init_params`` this config sets."""
        kw = {"w_ih_std": self.w_ih_std, "w_out_std": self.w_out_std}
        if self.forget_bias is not None:
            kw["forget_bias"] = self.forget_bias
        return kw

    def lrs(self) -> dict[str, float]:
        """Learning rates of the cell's own parameter groups (the cell's
        ``lr_groups``: parameter -> config field), where the config sets them."""
        groups = cell_class(self.cell).lr_groups
        return {k: getattr(self, f) for k, f in groups.items() if getattr(self, f) is not None}

    def run_id(self, stage: str = REPORT, selection: str = "",
               candidates: Iterable[tuple[float, float]] = ()) -> str:
        """The id of this configuration's run: a reported run (default), or a
        run of stage ``stage`` of the sweep ``selection``; with ``candidates``
        ((lr, clip_threshold) pairs), a reported run that waits for that sweep
        to choose its setting among them (its id covers the candidates, not
        ``lr`` and ``clip_threshold``).

        The one recipe of a training run's id: whoever defines the run (the
        grid, the command line) computes it here once and carries it to the
        tables. The stage and selection are part of it because the runs row
        records them: the same configuration reported from the command line
        and from a study's block without a sweep is one run.
        """
        return run_id("train", with_candidates(
            {**self.as_dict(), "stage": stage, "selection": selection}, candidates))


#: TrainConfig fields that default to None and enter a run's id only when set.
OPTIONAL_FIELDS: tuple[str, ...] = ("lr_orth", "w_ih_std", "w_out_std", "forget_bias")
#: What a sweep chooses for its reported runs.
SWEPT_FIELDS: tuple[str, ...] = ("lr", "clip_threshold")


def with_candidates(config: dict, candidates: Iterable[tuple[float, float]]) -> dict:
    """A run's config dict with its sweep's candidate settings, if any: the
    swept fields (:data:`SWEPT_FIELDS`) None and ``candidates`` the list of
    [lr, clip_threshold] pairs it waits to be chosen from."""
    pairs = [[float(lr), float(thr)] for lr, thr in candidates]
    if not pairs:
        return config
    return {**config, **dict.fromkeys(SWEPT_FIELDS), "candidates": pairs}


def validate_config(c: TrainConfig) -> None:
    """Raise ValueError naming the first bad field of a :class:`TrainConfig`
    (the network fields: :func:`gradpath.cells.base.network_fields`)."""
    choice(c.task, "task", vocab.TASKS)
    network_fields(c)
    choices = {"clip": vocab.CLIPS, "optimizer": vocab.OPTIMIZERS, "dtype": vocab.DTYPES}
    for name, allowed in choices.items():
        choice(getattr(c, name), name, allowed)
    for name in ("batch", "steps", "eval_every", "eval_batches"):
        integer(getattr(c, name), name)
    integer(c.seq_len, "seq_len", minimum=2)
    integer(c.seed, "seed", minimum=0)
    for name in ("clip_threshold", "momentum"):
        number(getattr(c, name), name)
    number(c.lr, "lr", positive=True)
    if c.lr_orth is not None:
        number(c.lr_orth, "lr_orth", positive=True)
        if "lr_orth" not in cell_class(c.cell).lr_groups.values():
            raise ValueError(f"lr_orth: the {c.cell} cell has no parameter it applies to "
                             "(an orthogonal cell's skew matrix)")
    if c.clip != "none" and c.clip_threshold <= 0:
        raise ValueError(f"clip_threshold: expected a positive number with clip={c.clip!r}, "
                         f"got {c.clip_threshold!r}")
    if c.momentum >= 1:
        raise ValueError(f"momentum: expected a number in [0, 1), got {c.momentum!r}")
    if c.momentum != 0 and c.optimizer != "sgd":
        raise ValueError(f"momentum: only SGD takes a momentum; got {c.momentum!r} with "
                         f"optimizer={c.optimizer!r}")
    for name in ("w_ih_std", "w_out_std"):
        if getattr(c, name) is not None:
            number(getattr(c, name), name, positive=True)
    if c.forget_bias is not None and (isinstance(c.forget_bias, bool) or not isinstance(
            c.forget_bias, int | float) or not math.isfinite(c.forget_bias)):
        raise ValueError(f"forget_bias: expected a finite number, got {c.forget_bias!r}")
    if c.forget_bias is not None and c.cell != "lstm":
        raise ValueError(f"forget_bias: only the LSTM has a forget gate; got "
                         f"{c.forget_bias!r} with cell={c.cell!r}")


# -- optimisers -------------------------------------------------------------
class Optimizer:
    """In-place update of a parameter dict from a gradient dict.

    ``lrs`` gives some parameters a learning rate of their own (the expRNN's
    skew matrix, ``lr_orth``); the others take ``lr``. Each group is one pass
    of the compiled update, so a parameter's update does not depend on the
    others' groups.
    """

    def __init__(self, params: dict[str, np.ndarray], lr: float,
                 lrs: dict[str, float] | None = None) -> None:
        self.lr = lr
        self.t = 0
        lrs = dict(lrs or {})
        unknown = sorted(set(lrs) - set(params))
        if unknown:
            raise ValueError(f"lrs: no parameter(s) {unknown}; parameters: {list(params)}")
        rest = tuple(k for k in params if k not in lrs)
        #: (parameter names, learning rate) per pass of the update
        self.groups = [(rest, lr)] * bool(rest) + [((k,), v) for k, v in lrs.items()]

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> bool:
        """Apply one update in place; return whether every updated parameter
        is finite (the same pass checks it)."""
        raise NotImplementedError


class SGD(Optimizer):
    """SGD with heavy-ball momentum: v <- mu v - lr g; p <- p + v."""

    def __init__(self, params, lr, momentum=0.0, lrs=None):
        super().__init__(params, lr, lrs)
        self.momentum = momentum
        self.v = {k: np.zeros_like(p) for k, p in params.items()}

    def step(self, params, grads):
        self.t += 1
        t = next(iter(params.values())).dtype.type
        finite = True
        for keys, lr in self.groups:
            finite &= sgd_update(views(params[k] for k in keys), views(grads[k] for k in keys),
                                 views(self.v[k] for k in keys), t(lr), t(self.momentum))
        return finite


#: The optimisers' fixed settings (the protocols name them): RMSProp's decay,
#: Adam's betas, and the epsilon of both.
RMSPROP_DECAY = 0.9
ADAM_BETAS = (0.9, 0.999)
EPS = 1e-8


class RMSProp(Optimizer):
    """RMSProp (Tieleman & Hinton 2012): s <- rho s + (1-rho) g^2; p -= lr g / (sqrt(s)+eps)."""

    def __init__(self, params, lr, rho=RMSPROP_DECAY, eps=EPS, lrs=None):
        super().__init__(params, lr, lrs)
        self.rho, self.eps = rho, eps
        self.s = {k: np.zeros_like(p) for k, p in params.items()}

    def step(self, params, grads):
        self.t += 1
        t = next(iter(params.values())).dtype.type
        finite = True
        for keys, lr in self.groups:
            finite &= rmsprop_update(views(params[k] for k in keys),
                                     views(grads[k] for k in keys),
                                     views(self.s[k] for k in keys), t(lr), t(self.rho),
                                     t(self.eps), t(1.0 - self.rho))
        return finite


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction."""

    def __init__(self, params, lr, beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1], eps=EPS,
                 lrs=None):
        super().__init__(params, lr, lrs)
        self.b1, self.b2, self.eps = beta1, beta2, eps
        self.m = {k: np.zeros_like(p) for k, p in params.items()}
        self.v = {k: np.zeros_like(p) for k, p in params.items()}

    def step(self, params, grads):
        self.t += 1
        c1 = 1.0 - self.b1**self.t
        c2 = 1.0 - self.b2**self.t
        t = next(iter(params.values())).dtype.type
        finite = True
        for keys, lr in self.groups:
            finite &= adam_update(views(params[k] for k in keys), views(grads[k] for k in keys),
                                  views(self.m[k] for k in keys), views(self.v[k] for k in keys),
                                  t(lr), t(self.b1), t(self.b2), t(self.eps), t(c1), t(c2),
                                  t(1.0 - self.b1), t(1.0 - self.b2))
        return finite


def make_optimizer(name: str, params: dict[str, np.ndarray], lr: float,
                   momentum: float = 0.0, lrs: dict[str, float] | None = None) -> Optimizer:
    """Build an optimiser by name: ``"sgd"``, ``"rmsprop"`` or ``"adam"``
    (``lrs``: learning rates of some parameters of their own)."""
    if name == "sgd":
        return SGD(params, lr, momentum, lrs=lrs)
    if name == "rmsprop":
        return RMSProp(params, lr, lrs=lrs)
    if name == "adam":
        return Adam(params, lr, lrs=lrs)
    raise ValueError(f"optimizer: unknown value {name!r}; expected one of {list(vocab.OPTIMIZERS)}")


# -- results ----------------------------------------------------------------
@dataclass
class TrainResult:
    """Everything a training run records.

    Attributes
    ----------
    config : TrainConfig
    status : {"finished", "diverged"}
    diverged_at : int or None
        The step whose loss or gradient was first non-finite.
    cause : str or None
        What was non-finite: "loss", "gradient" or "parameters".
    records : dict of str to list
        One entry per update: step, loss, metric, grad_norm_before,
        grad_norm_after, clipped (the diverging step is included, with its
        non-finite values, and is not applied).
    evals : dict of str to list
        step, eval_metric, success for each held-out evaluation.
    curves : list of dict
        Decay curves: phase ("init", "checkpoint", "final"), step,
        log10_grad_norm (by lag), log10_cell_grad_norm (LSTM) — each the
        root-mean-square ||dL_T/dh_t|| over a held-out batch for the loss at
        the last step.
    baseline : float
        The task's baseline on the held-out batches (for ragged copy, from
        their lengths).
    initial_metric : float
        Held-out metric before the first update.
    final_metric : float
        Held-out metric at the end (NaN for a diverged run).
    success : bool
    decay_rate_init : float
        Fitted slope of the init curve.
    lyapunov_init : float
        lambda_1 at initialisation along a held-out input sequence.
    wall_time_s : float
    test_correct : float
        For a task with a per-sequence criterion (:attr:`gradpath.tasks.Task.tolerance`):
        the share of its test set whose absolute error at the last step is
        below the tolerance, after training (NaN otherwise, and for a
        diverged run).
    """

    config: TrainConfig
    status: str
    diverged_at: int | None
    cause: str | None
    records: dict[str, list]
    evals: dict[str, list]
    curves: list[dict]
    baseline: float
    final_metric: float
    success: bool
    decay_rate_init: float
    lyapunov_init: float
    wall_time_s: float = 0.0
    clipped_fraction: float = field(default=0.0)
    initial_metric: float = math.nan
    test_correct: float = math.nan


def build_model(c: TrainConfig, task: Task):
    """The model a config trains."""
    return make_model(c.cell, task.input_size, c.hidden, task.output_size, c.activation)


@dataclass
class Update:
    """What one training update did (see :meth:`Trainer.update`).

    Attributes
    ----------
    loss : float
    grad_norm_before, grad_norm_after : float
        Global gradient norm before and after clipping.
    clipped : bool
    cause : str or None
        None when the update was applied; otherwise what was non-finite
        ("loss", "gradient" or "parameters") and the run has diverged.
    """

    loss: float
    grad_norm_before: float
    grad_norm_after: float
    clipped: bool
    cause: str | None


class Trainer:
    """The state of one training run: model, parameters, optimiser, clipping.

    Parameters
    ----------
    config : TrainConfig
    task : Task, optional
        The task's generator (built from the config by default).

    Attributes
    ----------
    model, params, optimizer, task
    dtype : numpy dtype
        Of parameters, batches and optimiser state.
    """

    def __init__(self, config: TrainConfig, task: Task | None = None) -> None:
        c = config
        self.config = c
        self.task = make_task(c.task, c.seq_len, c.ragged) if task is None else task
        self.dtype = np.dtype(c.dtype)
        self.model = build_model(c, self.task)
        self.params = self.model.init_params(c.init, gain=c.gain, seed=c.seed,
                                             dtype=self.dtype, **c.init_kwargs())
        # a constrained cell (the IndRNN's |u| bound) starts and stays in its set
        self.model.project(self.params, self.task.steps)
        self.optimizer = make_optimizer(c.optimizer, self.params, c.lr, c.momentum, c.lrs())
        self._clip = {"norm": clip_by_norm, "value": clip_by_value}.get(c.clip)

    def batch(self, step: int):
        """Training batch number ``step`` (from the ``"data"`` stream)."""
        return self.task.batch(self.config.batch, self.config.seed, step, dtype=self.dtype)

    def update(self, b) -> Update:
        """One step on batch ``b``: loss and gradients, clipping, the optimiser.

        A non-finite loss or gradient is not applied; parameters that
        overflow in the update end the run too (:attr:`Update.cause`).
        """
        task = self.task
        res = self.model.loss_and_grads(self.params, b.x, b.target, task.loss, task.score,
                                        b.lengths)
        if self._clip is not None:
            cr = self._clip(res.grads, self.config.clip_threshold)
            grads, before, after, clipped, finite = (cr.grads, cr.norm_before, cr.norm_after,
                                                     cr.clipped, cr.finite)
        else:
            before = after = global_norm(res.grads)
            grads, clipped, finite = res.grads, False, math.isfinite(before)
        cause = None
        if not math.isfinite(res.loss) or not finite:
            cause = "loss" if not math.isfinite(res.loss) else "gradient"
        else:
            if not self.optimizer.step(self.params, grads):  # the update overflowed
                cause = "parameters"
            else:
                self.model.project(self.params, self.task.steps)
        return Update(res.loss, before, after, bool(clipped), cause)


def _evaluate(model, params, task: Task, c: TrainConfig) -> float:
    """Mean held-out metric over ``eval_batches`` batches of the eval stream."""
    vals = []
    for i in range(c.eval_batches):
        b = task.batch(c.batch, c.seed, i, held_out=True, dtype=c.dtype)
        res = model.loss_and_grads(params, b.x, b.target, task.loss, task.score, b.lengths)
        vals.append(task.metric(res.loss))
    return float(np.mean(vals))


def _eval_baseline(task: Task, c: TrainConfig) -> float:
    """The baseline of the held-out batches :func:`_evaluate` scores.

    The memoryless metric of copy depends on the sequence lengths, so in
    ragged mode it is the mean over the held-out batches of each batch's
    baseline (what a memoryless model scores there), not the full-length one.
    """
    if not task.ragged:
        return task.baseline()
    return float(np.mean([task.baseline(task.batch(c.batch, c.seed, i, held_out=True).lengths)
                          for i in range(c.eval_batches)]))


def _last_step_target(task: Task, target: np.ndarray, lengths) -> np.ndarray:
    """The target at each sequence's last step (for the L_T decay curve)."""
    if task.score == "last":
        return target
    T, B = target.shape[:2]
    last = (np.full(B, T) if lengths is None else lengths) - 1
    return target[last, np.arange(B)]


def decay_curve(model, params, task: Task, c: TrainConfig) -> dict:
    """log10 rms ||dL_T/dh_t|| by lag on held-out batch 0 (loss at the last step).

    Sequences are taken at full length so that lags line up.
    """
    full = make_task(task.name, task.seq_len, ragged=False)
    b = full.batch(c.batch, c.seed, 0, held_out=True, dtype=c.dtype)
    tgt = _last_step_target(full, b.target, None)
    res = model.loss_and_grads(params, b.x, tgt, full.loss, "last")
    with np.errstate(divide="ignore", over="ignore"):  # exploding norms: inf is the answer
        h = 0.5 * np.log10(np.mean(np.square(res.grad_norms.astype(np.float64)), axis=1))[::-1]
        cn = None
        if res.cell_grad_norms is not None:
            cn = 0.5 * np.log10(np.mean(np.square(res.cell_grad_norms), axis=1))[::-1]
    return {"log10_grad_norm": h, "log10_cell_grad_norm": cn}


#: Sequences per forward pass when counting a test set (bounds the memory).
TEST_CHUNK = 128


def count_correct(model, params, task: Task, c: TrainConfig) -> float:
    """The share of the task's test set (:attr:`gradpath.tasks.Task.test_sequences`
    sequences of the ``"test"`` stream) whose absolute error at its last
    step is below the task's tolerance; NaN for a task without one."""
    if task.tolerance is None:
        return math.nan
    n, ok = task.test_sequences, 0
    for i in range(math.ceil(n / TEST_CHUNK)):
        b = task.test_batch(min(TEST_CHUNK, n - i * TEST_CHUNK), c.seed, i, dtype=c.dtype)
        B = b.x.shape[1]
        last = np.full(B, b.x.shape[0]) if b.lengths is None else b.lengths
        y = model.forward(params, b.x, b.lengths).y[last - 1, np.arange(B)]
        ok += int(np.sum(np.abs(y.astype(np.float64) - b.target) < task.tolerance))
    return ok / n


def _lyapunov_init(model, params, task: Task, c: TrainConfig) -> float:
    full = make_task(task.name, task.seq_len, ragged=False)
    b = full.batch(1, c.seed, 0, held_out=True, dtype=c.dtype)
    p = model.check_params(params)
    return float(model.lyapunov(model.states(p, b.x), p, 1, stream(c.seed, "lyapunov"))[0])


@dataclass(frozen=True)
class Progress:
    """Where a training run is, as passed to :func:`train`'s ``progress`` callback.

    Attributes
    ----------
    step, steps : int
        Updates done, and the budget.
    loss : float
        Objective of the latest update.
    clipped_fraction : float
        Share of the updates so far that were clipped.
    elapsed_s, eta_s : float
        Seconds since the first update, and the estimated seconds left.
    """

    step: int
    steps: int
    loss: float
    clipped_fraction: float
    elapsed_s: float
    eta_s: float


def train(config: TrainConfig, progress: Callable[[Progress], None] | None = None
          ) -> TrainResult:
    """Train one configuration; see the module docstring for divergence.

    Parameters
    ----------
    config : TrainConfig
    progress : callable, optional
        Called with a :class:`Progress` after every update (the caller
        decides how often to show it); it cannot change the run.

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        If the run cannot fit in this machine's memory
        (:func:`gradpath.resources.check_fits`), before allocating anything.
    """
    c = config
    check_fits("train", c.as_dict(), physical_memory_mb())
    t0 = time.perf_counter()
    trainer = Trainer(c)
    task, model, params = trainer.task, trainer.model, trainer.params
    rec = {k: [] for k in ("step", "loss", "metric", "grad_norm_before", "grad_norm_after",
                           "clipped")}
    evals = {"step": [], "eval_metric": [], "success": []}
    curves = [{"phase": "init", "step": 0, **decay_curve(model, params, task, c)}]
    decay0 = fit_decay_rate(curves[0]["log10_grad_norm"] * math.log(10.0))
    lyap0 = _lyapunov_init(model, params, task, c)
    baseline = _eval_baseline(task, c)
    initial = _evaluate(model, params, task, c)
    status, diverged_at, cause = "finished", None, None
    t_first, n_clipped = time.perf_counter(), 0
    for step in range(1, c.steps + 1):
        u = trainer.update(trainer.batch(step))
        rec["step"].append(step)
        rec["loss"].append(u.loss)
        rec["metric"].append(task.metric(u.loss))
        rec["grad_norm_before"].append(u.grad_norm_before)
        rec["grad_norm_after"].append(u.grad_norm_after)
        rec["clipped"].append(u.clipped)
        n_clipped += bool(u.clipped)
        if progress is not None:
            elapsed = time.perf_counter() - t_first
            progress(Progress(step, c.steps, float(u.loss), n_clipped / step, elapsed,
                              elapsed / step * (c.steps - step)))
        if u.cause is not None:
            status, diverged_at, cause = "diverged", step, u.cause
            break
        if step % c.eval_every == 0 or step == c.steps:
            m = _evaluate(model, params, task, c)
            evals["step"].append(step)
            evals["eval_metric"].append(m)
            evals["success"].append(bool(math.isfinite(m)
                                         and m < task.success_fraction * baseline))
            phase = "final" if step == c.steps else "checkpoint"
            curves.append({"phase": phase, "step": step,
                           **decay_curve(model, params, task, c)})
    correct = math.nan
    if status == "diverged":
        final = math.nan
        success = False
    else:
        final = evals["eval_metric"][-1]
        success = bool(evals["success"][-1])
        correct = count_correct(model, params, task, c)
    clipped_fraction = float(np.mean(rec["clipped"])) if rec["clipped"] else 0.0
    return TrainResult(c, status, diverged_at, cause, rec, evals, curves, baseline,
                       final, success, decay0, lyap0, time.perf_counter() - t0,
                       clipped_fraction, initial, correct)
