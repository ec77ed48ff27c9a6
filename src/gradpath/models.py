"""RNN and LSTM models: parameter initialisation, input validation, and the
public entry points to the Numba kernels.

Every public method validates its input and raises :class:`ValueError`
naming the offending argument before any kernel runs, so a kernel never sees
a wrong shape, dtype, or non-finite input.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from . import vocab
from .checks import choice as _choice
from .checks import integer as _positive_int
from .checks import number
from .kernels.gru import gru_loss_and_grads, gru_states
from .kernels.jit import ACT_RELU, ACT_TANH, LOSS_MSE, LOSS_XENT, SCORE_ALL, SCORE_LAST
from .kernels.lstm import lstm_loss_and_grads, lstm_states
from .kernels.rnn import rnn_loss_and_grads, rnn_states
from .rng import stream

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


def _float_array(value, name: str, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """Check a float array's type, shape, dtype and finiteness; return it C-contiguous."""
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array, got {type(value).__name__}")
    if value.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {value.shape}")
    if value.dtype != dtype:
        raise ValueError(f"{name}: expected dtype {dtype}, got {value.dtype}")
    if not np.isfinite(value).all():
        raise ValueError(f"{name}: contains NaN or Inf")
    return _kernel_array(value)


def _kernel_array(value: np.ndarray, dtype=None) -> np.ndarray:
    """C-contiguous and writeable: a read-only array is a different Numba type
    and would trigger a fresh compile of every kernel it reaches."""
    return np.require(value, dtype=dtype, requirements=["C", "W"])


class _Model:
    """Shared machinery of :class:`RNN` and :class:`LSTM`."""

    gates = 1  # rows of W_ih / W_hh per hidden unit

    def __init__(self, input_size: int, hidden_size: int, output_size: int) -> None:
        self.input_size = _positive_int(input_size, "input_size")
        self.hidden_size = _positive_int(hidden_size, "hidden_size")
        self.output_size = _positive_int(output_size, "output_size")
        self._scratch = threading.local()

    # The scratch arrays are per thread and never pickled or copied.
    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_scratch"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._scratch = threading.local()

    def _workspace(self, T: int, B: int, dtype: np.dtype) -> dict[str, np.ndarray]:
        """Scratch arrays of the kernels, kept between calls of the same shape.

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
        if ws is None or ws["key"] != key:
            H, G = self.hidden_size, self.gates
            shapes = {"hs": (T + 1, B, H), "dy": (T, B, self.output_size)}
            if G == 4:
                shapes.update(cs=(T + 1, B, H), gates=(T, B, G * H), tcs=(T, B, H))
            if G == 3:
                shapes.update(gates=(T, B, G * H), hgates=(T, B, G * H))
            ws = {"key": key, **{k: np.empty(s, dtype) for k, s in shapes.items()}}
            self._scratch.arrays = ws
        return ws

    # -- parameters --------------------------------------------------------
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of the parameter arrays, by name."""
        D, H, O, G = self.input_size, self.hidden_size, self.output_size, self.gates
        shapes = {"W_ih": (G * H, D), "W_hh": (G * H, H), "b": (G * H,)}
        if G == 3:
            shapes["b_hn"] = (H,)
        return {**shapes, "W_out": (O, H), "b_out": (O,)}

    def init_params(
        self,
        init: str = "orthogonal",
        gain: float = 1.0,
        seed: int = 0,
        dtype=np.float64,
        input_scale: float = 1.0,
        forget_bias: float = DEFAULT_FORGET_BIAS,
        update_bias: float = DEFAULT_UPDATE_BIAS,
    ) -> dict[str, np.ndarray]:
        """Initialise parameters, deterministically from ``seed``.

        Parameters
        ----------
        init : {"identity", "gaussian", "orthogonal"}
            Recurrent weights: ``gain * I``; ``N(0, gain**2 / H)`` entries;
            or ``gain * Q`` with Q orthogonal (QR of a Gaussian matrix, the
            signs of R's diagonal folded into Q so Q is Haar-distributed).
            For the LSTM (GRU) each of the four (three) H x H gate blocks of
            W_hh gets its own draw.
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

        Returns
        -------
        dict of str to ndarray
            ``W_ih``, ``W_hh``, ``b``, ``W_out`` (``N(0, 1/H)``), ``b_out``;
            for the GRU also ``b_hn`` (zeros).
        """
        init = _choice(init, "init", INITS)
        dt = self._dtype(dtype)
        number(gain, "gain")
        number(input_scale, "input_scale")
        for name, v in (("forget_bias", forget_bias), ("update_bias", update_bias)):
            if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating) \
                    or not np.isfinite(v):
                raise ValueError(f"{name}: expected a finite number, got {v!r}")
        rng = stream(seed, "weights")
        D, H, O, G = self.input_size, self.hidden_size, self.output_size, self.gates
        W_hh = np.concatenate([recurrent_matrix(init, H, gain, rng) for _ in range(G)])
        params = {
            "W_ih": rng.standard_normal((G * H, D)) * (input_scale / np.sqrt(D)),
            "W_hh": W_hh,
            "b": np.zeros(G * H),
            "W_out": rng.standard_normal((O, H)) / np.sqrt(H),
            "b_out": np.zeros(O),
        }
        if G == 4:
            params["b"][H : 2 * H] = forget_bias
        if G == 3:
            params["b"][H : 2 * H] = update_bias
            params = {**{k: params[k] for k in ("W_ih", "W_hh", "b")}, "b_hn": np.zeros(H),
                      "W_out": params["W_out"], "b_out": params["b_out"]}
        return {k: np.ascontiguousarray(v, dtype=dt) for k, v in params.items()}

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
        first = params["W_hh"]
        if not isinstance(first, np.ndarray):
            raise ValueError(f"params['W_hh']: expected a numpy array, got {type(first).__name__}")
        dt = first.dtype
        if dt not in DTYPES:
            raise ValueError(f"params['W_hh']: expected dtype float32 or float64, got {dt}")
        return {k: _float_array(params[k], f"params[{k!r}]", s, dt) for k, s in shapes.items()}

    # -- inputs ------------------------------------------------------------
    def _check_inputs(self, p, x, lengths, h0, c0=None):
        dt = p["W_hh"].dtype
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
        h0 = np.zeros((B, H), dt) if h0 is None else _float_array(h0, "h0", (B, H), dt)
        if c0 is not None or self.gates == 4:
            c0 = np.zeros((B, H), dt) if c0 is None else _float_array(c0, "c0", (B, H), dt)
        return x, lengths, h0, c0

    def _check_target(self, target, loss, score, T, B, lengths, dt):
        O = self.output_size
        if not isinstance(target, np.ndarray):
            raise ValueError(f"target: expected a numpy array, got {type(target).__name__}")
        lead = (B,) if score == "last" else (T, B)
        # the scored entries: t = lengths-1 (last) or t < lengths (all)
        if score == "last":
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

    def _prepare(self, params, x, target, loss, score, lengths, h0, c0):
        loss = _choice(loss, "loss", LOSSES)
        score = _choice(score, "score", SCORES)
        p = self.check_params(params)
        x, lengths, h0, c0 = self._check_inputs(p, x, lengths, h0, c0)
        T, B, _ = x.shape
        tf, ti = self._check_target(target, loss, score, T, B, lengths, x.dtype)
        return p, x, lengths, h0, c0, tf, ti, LOSSES[loss], SCORES[score]

    def _readout(self, p, hs):
        return hs @ p["W_out"].T + p["b_out"]


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


class RNN(_Model):
    """Vanilla (Elman) RNN: ``h_t = phi(W_ih x_t + W_hh h_{t-1} + b)``,
    read-out ``y_t = W_out h_t + b_out``.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        D, H and O.
    activation : {"tanh", "relu"}
    """

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, output_size: int,
                 activation: str = "tanh") -> None:
        super().__init__(input_size, hidden_size, output_size)
        self.activation = _choice(activation, "activation", ACTIVATIONS)
        self._act = ACTIVATIONS[activation]

    def __repr__(self) -> str:
        return (f"RNN(input_size={self.input_size}, hidden_size={self.hidden_size}, "
                f"output_size={self.output_size}, activation={self.activation!r})")

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
        p, x, lengths, h0, _, tf, ti, lc, sc = self._prepare(
            params, x, target, loss, score, lengths, h0, None)
        ws = self._workspace(*x.shape[:2], x.dtype)
        out = rnn_loss_and_grads(x, p["W_ih"], p["W_hh"], p["b"], p["W_out"], p["b_out"],
                                 h0, lengths, tf, ti, self._act, lc, sc, ws["hs"], ws["dy"])
        loss_v, dW_ih, dW_hh, db, dW_out, db_out, dh0, gnorm = out
        grads = {"W_ih": dW_ih, "W_hh": dW_hh, "b": db, "W_out": dW_out, "b_out": db_out}
        return LossGrads(float(loss_v), grads, gnorm, None, dh0)

    def forward(self, params, x, lengths=None, h0=None) -> Forward:
        """Run the network forward; see :class:`Forward`."""
        p = self.check_params(params)
        x, lengths, h0, _ = self._check_inputs(p, x, lengths, h0)
        hs = rnn_states(x, p["W_ih"], p["W_hh"], p["b"], h0, lengths, self._act)[1:]
        return Forward(hs, None, self._readout(p, hs))


class LSTM(_Model):
    """LSTM with gate blocks stacked i, f, g, o in W_ih, W_hh and b.

    ``c_t = f * c_{t-1} + i * g``, ``h_t = o * tanh(c_t)``, read-out
    ``y_t = W_out h_t + b_out``.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        D, H and O.
    """

    gates = 4

    def __repr__(self) -> str:
        return (f"LSTM(input_size={self.input_size}, hidden_size={self.hidden_size}, "
                f"output_size={self.output_size})")

    def loss_and_grads(self, params, x, target, loss: str = "mse", score: str = "last",
                       lengths=None, h0=None, c0=None) -> LossGrads:
        """Loss and exact BPTT gradients; as :meth:`RNN.loss_and_grads`, plus
        ``c0`` (initial cell state, zeros by default) and ``cell_grad_norms``."""
        p, x, lengths, h0, c0, tf, ti, lc, sc = self._prepare(
            params, x, target, loss, score, lengths, h0, c0)
        ws = self._workspace(*x.shape[:2], x.dtype)
        out = lstm_loss_and_grads(x, p["W_ih"], p["W_hh"], p["b"], p["W_out"], p["b_out"],
                                  h0, c0, lengths, tf, ti, lc, sc, ws["hs"], ws["cs"],
                                  ws["gates"], ws["tcs"], ws["dy"])
        loss_v, dW_ih, dW_hh, db, dW_out, db_out, dh0, dc0, gnorm, cnorm = out
        grads = {"W_ih": dW_ih, "W_hh": dW_hh, "b": db, "W_out": dW_out, "b_out": db_out}
        return LossGrads(float(loss_v), grads, gnorm, cnorm, dh0, dc0)

    def forward(self, params, x, lengths=None, h0=None, c0=None) -> Forward:
        """Run the network forward; see :class:`Forward`."""
        p = self.check_params(params)
        x, lengths, h0, c0 = self._check_inputs(p, x, lengths, h0, c0)
        hs, cs, _, _ = lstm_states(x, p["W_ih"], p["W_hh"], p["b"], h0, c0, lengths)
        return Forward(hs[1:], cs[1:], self._readout(p, hs[1:]))



class GRU(_Model):
    """GRU with gate blocks stacked r, z, n in W_ih, W_hh and b; exactly
    ``torch.nn.GRU`` with ``bias_ih = b`` and ``bias_hh = [0, 0, b_hn]``.

    ``r = sigmoid(W_ir x + W_hr h + b_r)``, ``z = sigmoid(W_iz x + W_hz h + b_z)``,
    ``n = tanh(W_in x + b_n + r * (W_hn h + b_hn))``, ``h' = (1 - z) n + z h``;
    read-out ``y_t = W_out h_t + b_out``.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        D, H and O.
    """

    gates = 3

    def __repr__(self) -> str:
        return (f"GRU(input_size={self.input_size}, hidden_size={self.hidden_size}, "
                f"output_size={self.output_size})")

    def loss_and_grads(self, params, x, target, loss: str = "mse", score: str = "last",
                       lengths=None, h0=None) -> LossGrads:
        """Loss and exact BPTT gradients; as :meth:`RNN.loss_and_grads` (the
        gradients include ``b_hn``)."""
        p, x, lengths, h0, _, tf, ti, lc, sc = self._prepare(
            params, x, target, loss, score, lengths, h0, None)
        ws = self._workspace(*x.shape[:2], x.dtype)
        out = gru_loss_and_grads(x, p["W_ih"], p["W_hh"], p["b"], p["b_hn"], p["W_out"],
                                 p["b_out"], h0, lengths, tf, ti, lc, sc, ws["hs"],
                                 ws["gates"], ws["hgates"], ws["dy"])
        loss_v, dW_ih, dW_hh, db, db_hn, dW_out, db_out, dh0, gnorm = out
        grads = {"W_ih": dW_ih, "W_hh": dW_hh, "b": db, "b_hn": db_hn, "W_out": dW_out,
                 "b_out": db_out}
        return LossGrads(float(loss_v), grads, gnorm, None, dh0)

    def forward(self, params, x, lengths=None, h0=None) -> Forward:
        """Run the network forward; see :class:`Forward`."""
        p = self.check_params(params)
        x, lengths, h0, _ = self._check_inputs(p, x, lengths, h0)
        hs, _, _ = gru_states(x, p["W_ih"], p["W_hh"], p["b"], p["b_hn"], h0, lengths)
        return Forward(hs[1:], None, self._readout(p, hs[1:]))


#: The model class of every cell (:data:`gradpath.vocab.CELLS`).
CELL_TYPES: dict[str, type[_Model]] = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


def make_model(cell: str, input_size: int, hidden_size: int, output_size: int,
               activation: str = "tanh") -> _Model:
    """A model of the given cell; ``activation`` applies to the RNN only (the
    gated cells' nonlinearities are fixed)."""
    cls = CELL_TYPES[_choice(cell, "cell", tuple(CELL_TYPES))]
    if cell in vocab.CELLS_WITH_ACTIVATION:
        return cls(input_size, hidden_size, output_size, activation)
    return cls(input_size, hidden_size, output_size)
