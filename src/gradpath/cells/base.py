"""What every cell shares: its model class's validation, scratch space and
entry points to the kernel pipeline (:mod:`gradpath.cells.pipeline`).

A cell is a subclass of :class:`Cell` in its own module of this package; it
declares its parameters, its initialisation, its kernels, its probe adjoint
and step Jacobian, and its cost coefficients. Every public method validates
its input and raises :class:`ValueError` naming the offending argument before
any kernel runs, so a kernel never sees a wrong shape, dtype, or non-finite
input.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .. import vocab
from ..checks import choice as _choice
from ..checks import integer as _positive_int
from ..checks import number
from ..kernels.jit import ACT_RELU, ACT_TANH, LOSS_MSE, LOSS_XENT, SCORE_ALL, SCORE_LAST
from ..kernels.optim import all_finite, views
from ..rng import stream
from . import pipeline
from .pipeline import Kernels

#: The kernels' integer codes of the names in :mod:`gradpath.vocab`.
ACTIVATIONS: dict[str, int] = dict(zip(vocab.ACTIVATIONS, (ACT_TANH, ACT_RELU), strict=True))
INITS: tuple[str, ...] = vocab.INITS
LOSSES: dict[str, int] = dict(zip(vocab.LOSSES, (LOSS_MSE, LOSS_XENT), strict=True))
SCORES: dict[str, int] = dict(zip(vocab.SCORES, (SCORE_LAST, SCORE_ALL), strict=True))
DTYPES: tuple[np.dtype, ...] = tuple(np.dtype(d) for d in vocab.DTYPES)

#: Default LSTM forget-gate bias (Gers et al. 2000; Jozefowicz et al. 2015):
#: a forget gate that starts near sigmoid(1) = 0.73 keeps the cell path open.
DEFAULT_FORGET_BIAS = 1.0
#: Default GRU update-gate bias: the GRU's z plays the LSTM forget gate's part
#: (h' = (1 - z) n + z h keeps a share z of the state), so it starts where the
#: LSTM's does, z near sigmoid(1) = 0.73. torch.nn.GRU draws every bias
#: uniformly instead; pass ``update_bias=0.0`` for a neutral gate.
DEFAULT_UPDATE_BIAS = 1.0


@dataclass(frozen=True)
class Model:
    """A model of the grid: its label, the cell and activation it stands for,
    and the name figures give it."""

    label: str
    cell: str
    activation: str
    title: str


@dataclass
class LossGrads:
    """What :meth:`RNN.loss_and_grads` and :meth:`LSTM.loss_and_grads` return.

    Attributes
    ----------
    loss : float
        Mean over scored (t, b) of the per-step loss.
    grads : dict of str to ndarray
        dL/dparam for every parameter, same keys, shapes and dtype as params.
    grad_norms : ndarray, shape (T, B)
        ||dL/dh_t|| for sequence b; 0 at and past its length.
    cell_grad_norms : ndarray or None, shape (T, B)
        ||dL/dc_t|| (LSTM only; None for the RNN and the GRU).
    h0_grad : ndarray, shape (B, H)
        dL/dh_0, the gradient with respect to the initial state.
    c0_grad : ndarray or None, shape (B, H)
        dL/dc_0 (LSTM only).
    """

    loss: float
    grads: dict[str, np.ndarray]
    grad_norms: np.ndarray
    cell_grad_norms: np.ndarray | None
    h0_grad: np.ndarray
    c0_grad: np.ndarray | None = None


@dataclass
class Forward:
    """States and read-outs of a forward pass (zero states past a length).

    Attributes
    ----------
    h : ndarray, shape (T, B, H)
        Hidden state h_t.
    c : ndarray or None, shape (T, B, H)
        LSTM cell state c_t (None for the RNN and the GRU).
    y : ndarray, shape (T, B, O)
        Read-out W_out h_t + b_out at every step.
    """

    h: np.ndarray
    c: np.ndarray | None
    y: np.ndarray


def _float_array(value, name: str, shape: tuple, dtype: np.dtype,
                 finite: bool = True) -> np.ndarray:
    """Check a float array's type, shape, dtype and (``finite``) finiteness;
    return it C-contiguous."""
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array, got {type(value).__name__}")
    if value.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {value.shape}")
    if value.dtype != dtype:
        raise ValueError(f"{name}: expected dtype {dtype}, got {value.dtype}")
    if finite and not np.isfinite(value).all():
        raise ValueError(f"{name}: contains NaN or Inf")
    return _kernel_array(value)


def _kernel_array(value: np.ndarray, dtype=None) -> np.ndarray:
    """C-contiguous and writeable: a read-only array is a different Numba type
    and would trigger a fresh compile of every kernel it reaches."""
    if (dtype is None or value.dtype == dtype) and value.flags.c_contiguous \
            and value.flags.writeable:
        return value  # the usual case, 8x cheaper than np.require's checks
    return np.require(value, dtype=dtype, requirements=["C", "W"])


#: The default of an optional argument (a cell's first activation): None is a wrong value.
_DEFAULT = object()


class Cell:
    """Base class of the cells' model classes: validation, scratch space, and
    the entry points to the kernel pipeline.

    A subclass (one per module of :mod:`gradpath.cells`) sets the class
    attributes below and implements :meth:`param_shapes` (if its parameters
    are not the vanilla ``W_ih``, ``W_hh``, ``b``), :meth:`kernel_params` and
    :meth:`param_grads` (if its kernels take other arrays than its
    parameters), :meth:`state_shapes`, and the probe's
    :meth:`adjoint_lognorms` and :meth:`step_jacobian`.
    """

    #: The cell's name in configs, tables and the registry.
    name: ClassVar[str] = ""
    #: H-row blocks of the recurrent pre-activation (gates) per hidden unit.
    gates: ClassVar[int] = 1
    #: The activations a model of this cell may take (first: the default);
    #: empty when the nonlinearity is fixed.
    activations: ClassVar[tuple[str, ...]] = ()
    #: What a config of a cell with a fixed nonlinearity records as its activation.
    fixed_activation: ClassVar[str] = "tanh"
    #: The grid's models of this cell, in the order tables and figures show them.
    models: ClassVar[tuple[Model, ...]] = ()
    #: The compiled step functions (:class:`gradpath.cells.pipeline.Kernels`).
    kernels: ClassVar[Kernels]
    #: Names of the initial states (each (B, H)), in the kernels' order.
    initial_states: ClassVar[tuple[str, ...]] = ("h0",)
    #: Which state array (index into the kernels' states) holds a cell state c_t, if any.
    cell_state: ClassVar[int | None] = None
    #: T x B x H arrays the forward pass keeps for the backward pass.
    stored_per_step: ClassVar[int] = 1
    #: The probe's state dimension for the Lyapunov exponents, in units of H.
    state_blocks: ClassVar[int] = 1
    #: Measured probe time over the flop count's (the QR steps the count misses).
    probe_time_factor: ClassVar[float] = 1.0
    #: Parameters trained at a learning rate of their own: name -> the
    #: :class:`gradpath.train.TrainConfig` field that sets it (unset: ``lr``).
    lr_groups: ClassVar[dict[str, str]] = {}
    #: The parameter whose dtype every other array must have.
    dtype_param: ClassVar[str] = "W_hh"
    #: H x H blocks of the recurrent product (None: one per gate block, a dense
    #: W_hh; 0 for an elementwise recurrence), for the flop count.
    recurrent_blocks: ClassVar[int | None] = None
    #: Whether each row block sums its own weight gradients during the
    #: backward pass (one set of gradient arrays per block, for the memory count).
    block_parts: ClassVar[bool] = False

    def __init__(self, input_size: int, hidden_size: int, output_size: int,
                 activation: str | object = _DEFAULT) -> None:
        self.input_size = _positive_int(input_size, "input_size")
        self.hidden_size = _positive_int(hidden_size, "hidden_size")
        self.output_size = _positive_int(output_size, "output_size")
        if self.activations:
            act = self.activations[0] if activation is _DEFAULT else activation
            self.activation = _choice(act, "activation", self.activations)
            self._act = ACTIVATIONS[self.activation]
        else:
            self.activation = self.fixed_activation
            self._act = ACT_TANH
        self._scratch = threading.local()

    def __repr__(self) -> str:
        act = f", activation={self.activation!r}" if self.activations else ""
        return (f"{type(self).__name__}(input_size={self.input_size}, "
                f"hidden_size={self.hidden_size}, output_size={self.output_size}{act})")

    # The scratch arrays are per thread and never pickled or copied.
    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_scratch"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._scratch = threading.local()

    @classmethod
    def recurrent_gates(cls) -> int:
        """H x H blocks of the recurrent product (:attr:`recurrent_blocks`)."""
        return cls.gates if cls.recurrent_blocks is None else cls.recurrent_blocks

    def state_shapes(self, T: int, B: int) -> tuple[tuple[int, ...], ...]:
        """Shapes of the kernels' state arrays; the first is hs (T+1, B, H)."""
        return ((T + 1, B, self.hidden_size),)

    def _workspace(self, T: int, B: int, dtype: np.dtype) -> tuple:
        """Scratch arrays of the kernels (the states and dL/dy), kept between
        calls of the same shape.

        Large fresh arrays cost a page fault per 4 KiB on first touch (about
        a fifth of a large call's time here); training calls the kernel with
        one shape thousands of times. Only the last shape is kept, so the
        memory held is one call's worth per thread.

        The kernels release the GIL, so two threads calling one model at once
        run side by side: each thread has its own scratch arrays
        (``threading.local``), and a shared model object gives every thread
        the same results as a serial run.
        """
        key = (T, B, np.dtype(dtype))
        ws = getattr(self._scratch, "arrays", None)
        if ws is None or ws[0] != key:
            ws = (key, pipeline.empty_states(self.state_shapes(T, B), dtype),
                  np.empty((T, B, self.output_size), dtype))
            self._scratch.arrays = ws
        return ws[1], ws[2]

    # -- parameters --------------------------------------------------------
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of the parameter arrays, by name."""
        D, H, O, G = self.input_size, self.hidden_size, self.output_size, self.gates
        return {"W_ih": (G * H, D), "W_hh": (G * H, H), "b": (G * H,), "W_out": (O, H),
                "b_out": (O,)}

    def kernel_params(self, p: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        """The recurrent parameters as the kernels take them (``rec``)."""
        return tuple(p[k] for k in self.param_shapes() if k not in ("W_out", "b_out"))

    def param_grads(self, p: dict[str, np.ndarray], rec_grads: tuple,
                    dW_out: np.ndarray, db_out: np.ndarray) -> dict[str, np.ndarray]:
        """Every parameter's gradient from the kernels' gradients of ``rec``."""
        names = [k for k in self.param_shapes() if k not in ("W_out", "b_out")]
        return {**dict(zip(names, rec_grads, strict=True)), "W_out": dW_out, "b_out": db_out}

    def init_params(
        self,
        init: str = "orthogonal",
        gain: float = 1.0,
        seed: int = 0,
        dtype=np.float64,
        input_scale: float = 1.0,
        forget_bias: float = DEFAULT_FORGET_BIAS,
        update_bias: float = DEFAULT_UPDATE_BIAS,
        w_ih_std: float | None = None,
        w_out_std: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Initialise parameters, deterministically from ``seed``.

        Parameters
        ----------
        init : {"identity", "gaussian", "orthogonal"}
            Recurrent weights: ``gain * I``; ``N(0, gain**2 / H)`` entries;
            or ``gain * Q`` with Q orthogonal (QR of a Gaussian matrix, the
            signs of R's diagonal folded into Q so Q is Haar-distributed).
            For the LSTM (GRU) each of the four (three) H x H gate blocks of
            W_hh gets its own draw. A cell with another recurrent parameter
            maps the three onto it (its :meth:`_recurrent_init`: the
            IndRNN's u, the expRNN's skew matrix A).
        gain : float
            Non-negative scale of the recurrent weights.
        seed : int
            Seed of the ``"weights"`` stream.
        dtype : numpy dtype
            float64 or float32. Weights are drawn in float64 and cast, so the
            float32 parameters are the float64 ones rounded.
        input_scale : float
            Input weights ``W_ih ~ N(0, input_scale**2 / D)`` (LeCun-scaled).
        forget_bias : float
            LSTM only: the bias of the forget-gate block (default 1.0).
        update_bias : float
            GRU only: the bias of the update-gate (z) block (default 1.0, see
            :data:`DEFAULT_UPDATE_BIAS`). Every other bias starts at 0.
        w_ih_std, w_out_std : float, optional
            Standard deviation of the entries of ``W_ih`` and ``W_out``,
            overriding the scaled defaults (``input_scale / sqrt(D)`` and
            ``1 / sqrt(H)``); e.g. 0.001 for Le et al.'s N(0, 0.001^2). The
            same draws are scaled, so only the scale changes.

        Returns
        -------
        dict of str to ndarray
            The parameters of :meth:`param_shapes`, in its order: ``W_ih``,
            ``W_hh``, ``b``, ``W_out`` (``N(0, 1/H)``), ``b_out``; for the
            GRU also ``b_hn`` (zeros). Drawn in one order for every cell:
            the recurrent parameter, then W_ih, then W_out, then any random
            bias (:meth:`_biases`).
        """
        init = _choice(init, "init", INITS)
        dt = self._dtype(dtype)
        self._check_init(gain, input_scale, forget_bias, update_bias, w_ih_std, w_out_std)
        rng = stream(seed, "weights")
        params = self._recurrent_init(init, gain, rng)
        params["W_ih"], params["W_out"] = self._io_weights(
            rng, self.gates * self.hidden_size, input_scale, w_ih_std, w_out_std)
        params = self._biases(params, rng, forget_bias=forget_bias, update_bias=update_bias)
        return {k: np.ascontiguousarray(params[k], dtype=dt) for k in self.param_shapes()}

    def _recurrent_init(self, init: str, gain: float, rng) -> dict[str, np.ndarray]:
        """The recurrent parameter, drawn first: W_hh, one draw per gate block."""
        H = self.hidden_size
        return {"W_hh": np.concatenate([recurrent_matrix(init, H, gain, rng)
                                        for _ in range(self.gates)])}

    def _biases(self, params: dict, rng, forget_bias: float, update_bias: float) -> dict:
        """The biases, after the weights: zeros (a gated cell sets its own gate's;
        a cell with random biases draws them here, last)."""
        params["b"] = np.zeros(self.gates * self.hidden_size)
        params["b_out"] = np.zeros(self.output_size)
        return params

    #: W_ih's default variance times D (LeCun scaling: 1; Kaiming's: 2).
    input_var_gain: ClassVar[float] = 1.0

    def init_stds(self, input_scale: float = 1.0, w_ih_std: float | None = None,
                  w_out_std: float | None = None) -> tuple[float, float]:
        """The standard deviations of W_ih's and W_out's entries an
        initialisation uses: the given ones, else ``input_scale *
        sqrt(input_var_gain / D)`` and ``1 / sqrt(H)`` (what a run records)."""
        d_ih = input_scale * np.sqrt(self.input_var_gain / self.input_size)
        return (float(d_ih if w_ih_std is None else w_ih_std),
                float(1.0 / np.sqrt(self.hidden_size) if w_out_std is None else w_out_std))

    def _io_weights(self, rng, rows: int, input_scale: float, w_ih_std: float | None,
                    w_out_std: float | None) -> tuple[np.ndarray, np.ndarray]:
        """W_ih (``rows`` x D), then W_out, drawn from ``rng`` at their scales
        (:meth:`init_stds`; the defaults computed as they always were, so the
        draws of earlier versions are reproduced to the bit)."""
        D, H, O = self.input_size, self.hidden_size, self.output_size
        z = rng.standard_normal((rows, D))
        if w_ih_std is not None:
            W_ih = z * w_ih_std
        elif self.input_var_gain == 1.0:
            W_ih = z * (input_scale / np.sqrt(D))
        else:
            W_ih = z * (input_scale * np.sqrt(self.input_var_gain / D))
        z = rng.standard_normal((O, H))
        return W_ih, (z / np.sqrt(H) if w_out_std is None else z * w_out_std)

    def _check_init(self, gain, input_scale, forget_bias, update_bias, w_ih_std, w_out_std
                    ) -> None:
        """Check :meth:`init_params`' numbers (ValueError naming the first bad one)."""
        number(gain, "gain")
        number(input_scale, "input_scale")
        for name, v in (("forget_bias", forget_bias), ("update_bias", update_bias)):
            if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating) \
                    or not np.isfinite(v):
                raise ValueError(f"{name}: expected a finite number, got {v!r}")
        for name, v in (("w_ih_std", w_ih_std), ("w_out_std", w_out_std)):
            if v is not None:
                number(v, name)

    @staticmethod
    def _dtype(dtype) -> np.dtype:
        try:
            dt = np.dtype(dtype)
        except TypeError as exc:
            raise ValueError(f"dtype: expected float32 or float64, got {dtype!r}") from exc
        if dt not in DTYPES:
            raise ValueError(f"dtype: expected float32 or float64, got {dt}")
        return dt

    def check_params(self, params) -> dict[str, np.ndarray]:
        """Validate a parameter dict: exact keys, shapes, one float dtype, finite.

        Returns the arrays C-contiguous. Raises ValueError naming the key.
        """
        if not isinstance(params, dict):
            raise ValueError(f"params: expected a dict, got {type(params).__name__}")
        shapes = self.param_shapes()
        missing = sorted(set(shapes) - set(params))
        extra = sorted(set(params) - set(shapes))
        if missing:
            raise ValueError(f"params: missing key(s) {missing}")
        if extra:
            raise ValueError(f"params: unexpected key(s) {extra}; expected {sorted(shapes)}")
        anchor = self.dtype_param
        first = params[anchor]
        if not isinstance(first, np.ndarray):
            raise ValueError(f"params[{anchor!r}]: expected a numpy array, got "
                             f"{type(first).__name__}")
        dt = first.dtype
        if dt not in DTYPES:
            raise ValueError(f"params[{anchor!r}]: expected dtype float32 or float64, got {dt}")
        out = {k: _float_array(params[k], f"params[{k!r}]", s, dt, finite=False)
               for k, s in shapes.items()}
        # one compiled pass over every array; numpy's per array only to name the culprit
        if not all_finite(views(out.values())):
            bad = next(k for k, a in out.items() if not np.isfinite(a).all())
            raise ValueError(f"params[{bad!r}]: contains NaN or Inf")
        return out

    # -- inputs ------------------------------------------------------------
    def _check_inputs(self, p, x, lengths, init: dict):
        """Check x, lengths and the initial states ``init`` (name -> array or
        None for zeros, :attr:`initial_states`); return them ready for a kernel."""
        dt = p[self.dtype_param].dtype
        if not isinstance(x, np.ndarray):
            raise ValueError(f"x: expected a numpy array, got {type(x).__name__}")
        if x.ndim != 3 or x.shape[2] != self.input_size or x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(
                f"x: expected shape (T, B, {self.input_size}) with T, B >= 1 (time-major), "
                f"got {x.shape}"
            )
        T, B, _ = x.shape
        x = _float_array(x, "x", x.shape, dt)
        lengths = check_lengths(lengths, T, B)
        H = self.hidden_size
        states = tuple(np.zeros((B, H), dt) if init.get(k) is None
                       else _float_array(init[k], k, (B, H), dt) for k in self.initial_states)
        return x, lengths, states

    def _check_target(self, target, loss, score, T, B, lengths, dt):
        O = self.output_size
        if not isinstance(target, np.ndarray):
            raise ValueError(f"target: expected a numpy array, got {type(target).__name__}")
        lead = (B,) if score == "last" else (T, B)
        # the scored entries: t = lengths-1 (last) or t < lengths (all; every
        # entry when every sequence is T long, without building the mask)
        if score == "last" or lengths.min() == T:
            scored = (slice(None),)
        else:
            scored = (np.arange(T)[:, None] < lengths[None, :],)
        if loss == "mse":
            shape = (*lead, O)
            if target.shape != shape:
                raise ValueError(f"target: expected shape {shape} for loss='mse', "
                                 f"score={score!r}, got {target.shape}")
            if target.dtype != dt:
                raise ValueError(f"target: expected dtype {dt}, got {target.dtype}")
            if not np.isfinite(target[scored]).all():
                raise ValueError("target: contains NaN or Inf at a scored step")
            tf = _kernel_array(target).reshape((1, B, O) if score == "last" else shape)
            ti = np.zeros((1, 1), np.int64)
        else:
            if target.shape != lead:
                raise ValueError(f"target: expected shape {lead} of class indices for "
                                 f"loss='xent', score={score!r}, got {target.shape}")
            if not np.issubdtype(target.dtype, np.integer):
                raise ValueError(f"target: expected integer class indices, got {target.dtype}")
            vals = target[scored]
            if vals.size and (vals.min() < 0 or vals.max() >= O):
                raise ValueError(f"target: class indices must lie in [0, {O}), got values "
                                 f"in [{vals.min()}, {vals.max()}]")
            ti = _kernel_array(target, np.int64).reshape(
                (1, B) if score == "last" else lead)
            tf = np.zeros((1, 1, 1), dt)
        return tf, ti

    def _prepare(self, params, x, target, loss, score, lengths, init):
        loss = _choice(loss, "loss", LOSSES)
        score = _choice(score, "score", SCORES)
        p = self.check_params(params)
        x, lengths, init = self._check_inputs(p, x, lengths, init)
        T, B, _ = x.shape
        tf, ti = self._check_target(target, loss, score, T, B, lengths, x.dtype)
        return p, x, lengths, init, tf, ti, LOSSES[loss], SCORES[score]

    def _readout(self, p, hs):
        return hs @ p["W_out"].T + p["b_out"]

    # -- the public entry points -------------------------------------------
    def loss_and_grads(self, params, x, target, loss: str = "mse", score: str = "last",
                       lengths=None, h0=None) -> LossGrads:
        """Loss and its exact gradient by backpropagation through time.

        Parameters
        ----------
        params : dict
            As returned by :meth:`init_params`.
        x : ndarray, shape (T, B, D)
            Time-major input, same dtype as the parameters.
        target : ndarray
            ``score="last"``: (B, O) floats [mse] or (B,) ints [xent], scored at
            t = lengths[b]-1. ``score="all"``: (T, B, O) or (T, B), scored at
            every t < lengths[b].
        loss : {"mse", "xent"}
            Mean over scored (t, b) of 0.5*||y - target||^2, or of
            -log softmax(y)[target].
        score : {"last", "all"}
        lengths : array of int, shape (B,), optional
            Sequence lengths in 1..T; None means all T.
        h0 : ndarray, shape (B, H), optional
            Initial state (zeros by default).

        Returns
        -------
        LossGrads
        """
        return self._loss_and_grads(params, x, target, loss, score, lengths, {"h0": h0})

    def _loss_and_grads(self, params, x, target, loss, score, lengths, init) -> LossGrads:
        p, x, lengths, init, tf, ti, lc, sc = self._prepare(params, x, target, loss, score,
                                                            lengths, init)
        st, dy = self._workspace(*x.shape[:2], x.dtype)
        loss_v, rec_grads, dW_out, db_out, carry, norms = pipeline.loss_and_grads(
            self.kernels, self.gates, x, self.kernel_params(p), init, p["W_out"], p["b_out"],
            lengths, tf, ti, self._act, lc, sc, st, dy)
        grads = self.param_grads(p, rec_grads, dW_out, db_out)
        cell = len(norms) > 1
        return LossGrads(float(loss_v), grads, norms[0], norms[1] if cell else None, carry[0],
                         carry[1] if cell else None)

    def forward(self, params, x, lengths=None, h0=None) -> Forward:
        """Run the network forward; see :class:`Forward`."""
        return self._forward(params, x, lengths, {"h0": h0})

    def _forward(self, params, x, lengths, init) -> Forward:
        p = self.check_params(params)
        x, lengths, init = self._check_inputs(p, x, lengths, init)
        st = self.states(p, x, lengths, init)
        hs = st[0][1:]
        c = None if self.cell_state is None else st[self.cell_state][1:]
        return Forward(hs, c, self._readout(p, hs))

    def states(self, p: dict, x: np.ndarray, lengths=None, init: tuple | None = None) -> tuple:
        """The kernels' state arrays after a forward pass (fresh arrays), from
        checked parameters ``p``, input ``x`` and initial states (zeros by
        default); every sequence T long unless ``lengths`` says otherwise."""
        T, B, _ = x.shape
        if lengths is None:
            lengths = np.full(B, T, np.int64)
        if init is None:
            init = tuple(np.zeros((B, self.hidden_size), x.dtype) for _ in self.initial_states)
        st = pipeline.empty_states(self.state_shapes(T, B), x.dtype)
        return pipeline.states(self.kernels, self.gates, x, self.kernel_params(p), init, lengths,
                               self._act, st)

    def project(self, params: dict[str, np.ndarray], seq_len: int) -> dict[str, np.ndarray]:
        """Project the parameters, in place, onto the cell's constraint set for
        sequences of ``seq_len`` steps; training calls it after initialisation
        and after every update. None here: a cell with a constraint overrides it.
        """
        return params

    # -- the probe: the adjoint along a trajectory, and the step Jacobian ---
    def adjoint_lognorms(self, st: tuple, p: dict, delta: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray | None]:
        """ln||dL/dh_t|| (T, B) from dL/dh_{T-1} = ``delta`` along the
        trajectory ``st`` (:meth:`states`), and ln||dL/dc_t|| for a cell with
        a cell state (else None)."""
        raise NotImplementedError

    def step_jacobian(self, st: tuple, p: dict) -> tuple[int, int, Callable]:
        """The step Jacobians of the first sequence of ``st``: (state
        dimension, steps, ``apply(t, q)`` = J_t q for a (dim, k) basis q),
        J_t = d(state_t)/d(state_{t-1})."""
        raise NotImplementedError

    def lyapunov(self, st: tuple, p: dict, k: int, rng: np.random.Generator,
                 transient: int = 0, on_step: Callable[[], None] | None = None) -> np.ndarray:
        """Top-k Lyapunov exponents along the first sequence of the trajectory
        ``st`` (:meth:`states`) by the QR method: Q_t R_t = J_t Q_{t-1},
        lambda_i = mean of ln|R_t[i, i]| after ``transient`` steps (Engelken,
        Wolf & Abbott 2020), with the cell's :meth:`step_jacobian`.
        ``on_step`` is called after every step (the probe's progress).
        """
        dim, steps, apply = self.step_jacobian(st, p)
        q, _ = np.linalg.qr(rng.standard_normal((dim, k)))
        acc = np.zeros(k)
        n = 0
        for t in range(steps):
            q, r = np.linalg.qr(apply(t, q))
            with np.errstate(divide="ignore"):
                lr = np.log(np.abs(np.diag(r)))
            if t >= transient:
                acc += lr
                n += 1
            if on_step is not None:
                on_step()
        return np.sort(acc / max(n, 1))[::-1]


def network_fields(config) -> dict:
    """The network fields every run configuration shares (``cell``,
    ``activation``, ``init``, ``gain``, ``hidden``: probes and training
    alike), validated, with the values the configuration records.

    A cell with a fixed nonlinearity records its own (``fixed_activation``),
    so two of its configurations never differ by the field. Raises
    ValueError naming the first bad field.
    """
    from . import cell_class

    cls = cell_class(config.cell)
    allowed = cls.activations or (*vocab.ACTIVATIONS, cls.fixed_activation)
    _choice(config.activation, "activation", allowed)
    _choice(config.init, "init", INITS)
    number(config.gain, "gain")
    _positive_int(config.hidden, "hidden")
    return {"activation": config.activation if cls.activations else cls.fixed_activation,
            "gain": float(config.gain),  # gain=1 and gain=1.0: one configuration, one id
            "hidden": int(config.hidden)}


def check_lengths(lengths, T: int, B: int) -> np.ndarray:
    """Validate per-sequence lengths: ``None`` (all T) or B integers in 1..T."""
    if lengths is None:
        return np.full(B, T, np.int64)
    arr = np.asarray(lengths)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"lengths: expected integers, got dtype {arr.dtype}")
    if arr.shape != (B,):
        raise ValueError(f"lengths: expected shape ({B},), got {arr.shape}")
    if arr.min() < 1 or arr.max() > T:
        raise ValueError(f"lengths: every length must lie in 1..{T}, got values in "
                         f"[{arr.min()}, {arr.max()}]")
    return _kernel_array(arr, np.int64)


def recurrent_matrix(init: str, n: int, gain: float, rng: np.random.Generator) -> np.ndarray:
    """One n x n recurrent block: ``gain * I``, Gaussian ``N(0, gain**2/n)``,
    or ``gain * Q`` with Q Haar-orthogonal."""
    init = _choice(init, "init", INITS)
    if init == "identity":
        return gain * np.eye(n)
    a = rng.standard_normal((n, n))
    if init == "gaussian":
        return a * (gain / np.sqrt(n))
    q, r = np.linalg.qr(a)
    return gain * (q * np.sign(np.diag(r)))


