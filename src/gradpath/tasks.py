"""Synthetic long-memory tasks: deterministic batch generators with baselines.

Every task draws batch ``index`` of run ``seed`` from its own sub-stream of
the ``"data"`` stream (or ``"eval"`` for held-out batches), so the same
(seed, index) always gives the same batch, for any sequence length T.

Losses follow the kernels' convention (``mse`` is 0.5 * squared error); the
*metric* a task reports and its baseline are in the field's usual units:
plain mean squared error for ``adding`` and ``sine``, cross-entropy in nats
per scored step for ``copy``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import vocab
from .checks import integer
from .rng import stream

#: The tasks: the vocabulary's (re-exported for compatibility).
TASKS: tuple[str, ...] = vocab.TASKS


@dataclass
class Batch:
    """One batch of a task.

    Attributes
    ----------
    x : ndarray, shape (T, B, D)
        Time-major inputs.
    target : ndarray
        (B, O) floats (``score="last"``), (T, B, O) floats or (T, B) ints
        (``score="all"``).
    lengths : ndarray of int64, shape (B,), or None
        Per-sequence lengths in ragged mode, else None (all T).
    """

    x: np.ndarray
    target: np.ndarray
    lengths: np.ndarray | None


class Task:
    """Base class; see :class:`Adding`, :class:`Copy`, :class:`Sine`.

    Attributes
    ----------
    name : str
    seq_len : int
        T (for ``copy`` the input is T + 20 steps long).
    input_size, output_size : int
    loss : {"mse", "xent"}
    score : {"last", "all"}
    ragged : bool
        Whether batches carry per-sequence lengths.
    """

    name = ""
    input_size = 1
    output_size = 1
    loss = "mse"
    score = "last"

    def __init__(self, seq_len: int, ragged: bool = False) -> None:
        self.seq_len = integer(seq_len, "seq_len", minimum=2)
        self.ragged = bool(ragged)

    @property
    def steps(self) -> int:
        """Time steps of a (full-length) input sequence."""
        return self.seq_len

    def batch(self, batch_size: int, seed: int, index: int = 0, held_out: bool = False,
              dtype=np.float64) -> Batch:
        """Batch number ``index`` of run ``seed``; ``held_out`` uses the eval stream.

        Parameters
        ----------
        batch_size : int
        seed : int
        index : int
            Batch number; each index is an independent sub-stream.
        held_out : bool
            Draw from the evaluation stream, disjoint from training batches.
        dtype : numpy dtype
            Of ``x`` and of float targets.
        """
        return self._batch(batch_size, stream(seed, "eval" if held_out else "data", index),
                           dtype)

    def test_batch(self, batch_size: int, seed: int, index: int = 0, dtype=np.float64) -> Batch:
        """Batch number ``index`` of run ``seed``'s test set (the ``"test"``
        stream, disjoint from training and held-out batches), for a task's
        per-sequence criterion (:attr:`tolerance`)."""
        return self._batch(batch_size, stream(seed, "test", index), dtype)

    def _batch(self, batch_size: int, rng: np.random.Generator, dtype) -> Batch:
        batch_size = integer(batch_size, "batch_size")
        b = self._make(rng, batch_size)
        b.x = np.ascontiguousarray(b.x, dtype=dtype)
        if b.target.dtype.kind == "f":
            b.target = np.ascontiguousarray(b.target, dtype=dtype)
        return b

    def _lengths(self, rng: np.random.Generator, n: int, total: int, minimum: int) -> np.ndarray:
        if not self.ragged:
            return np.full(n, total, np.int64)
        return rng.integers(minimum, total + 1, size=n).astype(np.int64)

    # -- metric and baseline ----------------------------------------------
    def metric(self, loss: float) -> float:
        """The task metric from the training loss (MSE = 2 * loss for mse tasks)."""
        return 2.0 * loss if self.loss == "mse" else loss

    def baseline(self, lengths: np.ndarray | None = None) -> float:
        """Metric of the best memoryless predictor (see each task)."""
        raise NotImplementedError

    def success(self, metric: float, lengths: np.ndarray | None = None) -> bool:
        """Whether a held-out metric counts as solving the task.

        Documented criterion: the metric is below 10% of the task's baseline
        (adding, copy), or below 25% of it for the short-memory sine task.
        """
        return bool(np.isfinite(metric) and metric < self.success_fraction
                    * self.baseline(lengths))

    success_fraction = 0.1
    #: A task with a per-sequence criterion: a sequence is correct when its
    #: absolute error at its last step is below this (None: no such criterion).
    tolerance: float | None = None
    #: Size of the test set the per-sequence criterion is counted on.
    test_sequences = 0

    def _make(self, rng: np.random.Generator, n: int) -> Batch:  # pragma: no cover
        raise NotImplementedError


class Adding(Task):
    """The adding problem in the format of Le, Jaitly & Hinton (2015).

    Input (T, B, 2): a value from U[0, 1] and a marker in {0, 1}; exactly two
    markers are 1, one in each half of the sequence (of its length, when
    ragged). Target: the sum of the two marked values, scored at the last
    step with MSE. Predicting the mean 1 always gives MSE Var(X1 + X2) = 1/6.
    """

    name = "adding"
    input_size = 2
    output_size = 1
    loss = "mse"
    score = "last"

    def _make(self, rng, n):
        T = self.seq_len
        lengths = self._lengths(rng, n, T, max(2, T // 2))
        x = np.zeros((T, n, 2))
        x[:, :, 0] = rng.uniform(0.0, 1.0, size=(T, n))
        half = lengths // 2
        first = (rng.uniform(size=n) * half).astype(np.int64)
        second = half + (rng.uniform(size=n) * (lengths - half)).astype(np.int64)
        cols = np.arange(n)
        x[first, cols, 1] = 1.0
        x[second, cols, 1] = 1.0
        target = (x[first, cols, 0] + x[second, cols, 0])[:, None]
        return Batch(x, target, lengths if self.ragged else None)

    def baseline(self, lengths=None) -> float:
        """Var(X1 + X2) = 2 * Var(U[0,1]) = 2/12: the MSE of always predicting 1."""
        return 2.0 / 12.0


class AddingHS(Task):
    """The adding problem as Hochreiter & Schmidhuber (1997, section 5.4,
    Experiment 4) posed it.

    Input (T', B, 2) pairs: a value from U[-1, 1] and a marker. Sequence
    lengths are drawn uniformly from T..T + T // 10 (T' is the longest). X1
    is one of the first 10 pairs, X2 one of the first T/2 - 1 pairs not
    already marked; both have marker 1; the first pair and each sequence's
    last pair have marker -1 unless marked; every other marker is 0. A
    marked first pair carries the value 0. Target at each sequence's last
    step: 0.5 + (X1 + X2) / 4, with MSE. A sequence is processed correctly
    when its absolute error is below :attr:`tolerance` = 0.04; the paper
    counts the errors on 2,560 test sequences (:attr:`test_sequences`).
    """

    name = "adding-hs"
    input_size = 2
    output_size = 1
    loss = "mse"
    score = "last"
    tolerance = 0.04
    test_sequences = 2560
    #: X1 is among the first this many pairs.
    first_span = 10

    def __init__(self, seq_len: int, ragged: bool = False) -> None:
        super().__init__(integer(seq_len, "seq_len", minimum=2 * self.first_span + 4), True)

    @property
    def steps(self) -> int:
        """The longest sequence: T + T // 10."""
        return self.seq_len + self.seq_len // 10

    def _candidates(self) -> int:
        """The pairs X2 is drawn among: the first T/2 - 1 not marked by X1."""
        return self.seq_len // 2 - 1

    def _make(self, rng, n):
        T, total, cols = self.seq_len, self.steps, np.arange(n)
        lengths = rng.integers(T, total + 1, size=n).astype(np.int64)
        x = np.zeros((total, n, 2))
        x[:, :, 0] = rng.uniform(-1.0, 1.0, size=(total, n))
        first = rng.integers(0, self.first_span, size=n)
        second = rng.integers(0, self._candidates(), size=n)
        second += second >= first  # the k-th pair not marked by X1
        x[0, :, 1] = -1.0
        x[lengths - 1, cols, 1] = -1.0
        x[first, cols, 1] = 1.0
        x[second, cols, 1] = 1.0
        x[0, (first == 0) | (second == 0), 0] = 0.0
        target = 0.5 + (x[first, cols, 0] + x[second, cols, 0]) / 4.0
        return Batch(x, target[:, None], lengths)

    def baseline(self, lengths=None) -> float:
        """Var(target) = (E[X1^2] + E[X2^2]) / 16, E[Xi^2] = P(pair i is not
        the first) / 3: the MSE of always predicting the mean 0.5."""
        p1 = 1.0 / self.first_span  # X1 marks the first pair
        p2 = (1.0 - p1) / self._candidates()  # X2 marks it
        return ((1.0 - p1) + (1.0 - p2)) / 3.0 / 16.0


class Copy(Task):
    """Copy memory (Arjovsky, Shah & Bengio 2016).

    Ten symbols from 8 categories, T - 1 blanks, a delimiter, then 10 blanks:
    length T + 20, one-hot over 10 input classes (0 blank, 1-8 symbols,
    9 delimiter). The target is blank everywhere except the last 10 steps,
    which repeat the 10 symbols; cross-entropy over all steps, 9 output
    classes (blank and the 8 symbols). Ragged mode varies the number of
    blanks per sequence.
    """

    name = "copy"
    input_size = 10
    output_size = 9
    loss = "xent"
    score = "all"
    n_symbols = 10
    n_categories = 8
    success_fraction = 0.1

    @property
    def steps(self) -> int:
        """The sequence, its T blanks, then the 10 recalled symbols."""
        return self.seq_len + 20

    def _make(self, rng, n):
        T = self.seq_len
        total = self.steps
        gaps = self._lengths(rng, n, T, 1)  # blanks + 1 = delay before the delimiter
        symbols = rng.integers(1, self.n_categories + 1, size=(n, self.n_symbols))
        inp = np.zeros((total, n), np.int64)
        target = np.zeros((total, n), np.int64)
        for b in range(n):
            g = gaps[b]
            inp[: self.n_symbols, b] = symbols[b]
            inp[self.n_symbols + g - 1, b] = 9
            target[g + self.n_symbols : g + 2 * self.n_symbols, b] = symbols[b]
        x = np.zeros((total, n, self.input_size))
        np.put_along_axis(x, inp[:, :, None], 1.0, axis=2)
        lengths = gaps + 20
        return Batch(x, target, lengths if self.ragged else None)

    def baseline(self, lengths=None) -> float:
        """10 ln 8 / (T + 20): blank where the answer is known, uniform over
        the 8 symbols in the 10 answer steps (mean over scored steps)."""
        steps = self.steps if lengths is None else float(np.mean(lengths))
        return self.n_symbols * math.log(self.n_categories) / steps


class Sine(Task):
    """Next-step prediction of a noisy sine (the seed lecture's exercise).

    x_t = sin(w t + phi) + noise, w ~ U[w_lo, w_hi], phi ~ U[0, 2 pi); the
    target at every step is x_{t+1}. Short memory: every configuration
    should learn it.
    """

    name = "sine"
    input_size = 1
    output_size = 1
    loss = "mse"
    score = "all"
    success_fraction = 0.25
    w_lo = 0.1
    w_hi = 0.6
    noise = 0.05

    def _make(self, rng, n):
        T = self.seq_len
        lengths = self._lengths(rng, n, T, max(2, T // 2))
        w = rng.uniform(self.w_lo, self.w_hi, size=n)
        phi = rng.uniform(0.0, 2 * math.pi, size=n)
        t = np.arange(T + 1)[:, None]
        s = np.sin(w[None, :] * t + phi[None, :]) + self.noise * rng.standard_normal((T + 1, n))
        return Batch(s[:T, :, None], s[1:, :, None], lengths if self.ragged else None)

    def baseline(self, lengths=None) -> float:
        """E[(x_{t+1} - x_t)^2] = 1 - E_w[cos w] + 2 noise^2: predicting the last value."""
        mean_cos = (math.sin(self.w_hi) - math.sin(self.w_lo)) / (self.w_hi - self.w_lo)
        return 1.0 - mean_cos + 2.0 * self.noise**2


_REGISTRY = {cls.name: cls for cls in (Adding, AddingHS, Copy, Sine)}
#: Each task's :attr:`Task.success_fraction`, by name: the one threshold of
#: success, which training records per run and :mod:`gradpath.claims` counts.
SUCCESS_FRACTIONS: dict[str, float] = {name: cls.success_fraction
                                       for name, cls in _REGISTRY.items()}


#: Each task's per-sequence tolerance (:attr:`Task.tolerance`; None: no
#: per-sequence criterion), by name.
TOLERANCES: dict[str, float | None] = {name: cls.tolerance for name, cls in _REGISTRY.items()}


def make_task(name: str, seq_len: int, ragged: bool = False) -> Task:
    """Build a task by name, one of :data:`gradpath.vocab.TASKS`."""
    if name not in _REGISTRY:
        raise ValueError(f"task: unknown value {name!r}; expected one of {list(TASKS)}")
    return _REGISTRY[name](seq_len, ragged)
