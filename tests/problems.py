"""Test problems shared by the test modules: a model, its parameters and data,
plus one call each into the kernel and into the numpy twin, and the
comparison criterion.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import naive
import numpy as np

import gradpath as gp
from gradpath import models, vocab

#: (cell, activation) pairs of the first cells, which the detailed test files
#: parametrize over (with per-cell sizes and checks): every RNN activation and
#: the gated cells (activation unused).
CELLS = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]
CELL_IDS = ["rnn-tanh", "rnn-relu", "lstm", "gru"]
#: Every model of the registry (a later cell included), for the generic tests.
ALL_CELLS = [(m.cell, m.activation) for m in vocab.MODELS.values()]
ALL_CELL_IDS = list(vocab.MODELS)
LOSSES = ["mse", "xent"]
SCORES = ["last", "all"]

#: Absolute floor of the float64 comparisons. The problems' data, weights and
#: losses are O(1), so 1e-15 is a few units of roundoff of the summands; it only
#: matters where a gradient is small through cancellation (e.g. dW_out when the
#: xent residuals of many steps nearly cancel), where a purely relative
#: criterion would demand better than unit roundoff.
TINY = 1e-15


@dataclass
class Problem:
    cell: str  # "rnn" | "lstm" | "gru"
    activation: str  # RNN only
    loss: str
    score: str
    model: object
    params: dict
    x: np.ndarray
    target: np.ndarray
    lengths: np.ndarray | None
    h0: np.ndarray | None
    c0: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    @property
    def shape(self):
        T, B, D = self.x.shape
        return T, B, D, self.model.hidden_size, self.model.output_size

    def astype(self, dtype) -> Problem:
        """The same problem with every float array cast to ``dtype``."""
        def cast(a):
            if a is None or not np.issubdtype(a.dtype, np.floating):
                return a
            return a.astype(dtype)

        return Problem(self.cell, self.activation, self.loss, self.score, self.model,
                       {k: cast(v) for k, v in self.params.items()}, cast(self.x),
                       cast(self.target), self.lengths, cast(self.h0), cast(self.c0))

    def kernel(self):
        """gradpath's result (a :class:`gradpath.LossGrads`)."""
        kw = {"loss": self.loss, "score": self.score, "lengths": self.lengths, "h0": self.h0}
        if "c0" in self.model.initial_states:
            kw["c0"] = self.c0
        return self.model.loss_and_grads(self.params, self.x, self.target, **kw)

    def twin(self):
        """The numpy twin's result (a dict)."""
        return naive.loss_and_grads(self.cell, self.params, self.x, self.target,
                                    self.activation, self.loss, self.score, self.lengths,
                                    self.h0, self.c0)

    def loss_only(self, params=None, h0=None, c0=None) -> float:
        """The twin's float64 forward loss at (possibly perturbed) params / h0 / c0."""
        return naive.loss_only(self.cell, self.params if params is None else params, self.x,
                               self.target, self.activation, self.loss, self.score,
                               self.lengths, self.h0 if h0 is None else h0,
                               self.c0 if c0 is None else c0)


def make_model(cell, D, H, O, activation="tanh"):
    """The registry's model of ``cell`` (``activation`` where the cell takes one)."""
    return models.make_model(cell, D, H, O, activation)


def random_lengths(rng, T, B):
    """Ragged lengths in 1..T that include both extremes when B allows."""
    lengths = rng.integers(1, T + 1, size=B)
    lengths[0] = T
    if B > 1:
        lengths[1] = 1
    return lengths.astype(np.int64)


def make_problem(cell="rnn", activation="tanh", loss="mse", score="last", T=6, B=3, D=2,
                 H=4, O=3, ragged=False, init="orthogonal", gain=0.9, seed=0,
                 with_h0=True, bias_scale=0.1, x_scale=1.0, lengths=None) -> Problem:
    """A float64 problem with random data and (slightly perturbed) initial parameters."""
    rng = np.random.default_rng(seed)
    model = make_model(cell, D, H, O, activation)
    params = model.init_params(init=init, gain=gain, seed=seed)
    params["b"] = params["b"] + bias_scale * rng.standard_normal(params["b"].shape)
    if "b_hn" in params:
        params["b_hn"] = params["b_hn"] + bias_scale * rng.standard_normal(H)
    params["b_out"] = params["b_out"] + bias_scale * rng.standard_normal(O)
    x = x_scale * rng.standard_normal((T, B, D))
    if lengths is None and ragged:
        lengths = random_lengths(rng, T, B)
    lead = (B,) if score == "last" else (T, B)
    if loss == "mse":
        target = rng.standard_normal((*lead, O))
    else:
        target = rng.integers(0, O, size=lead)
    h0 = 0.5 * rng.standard_normal((B, H)) if with_h0 else None
    c0 = 0.5 * rng.standard_normal((B, H)) if (with_h0 and "c0" in model.initial_states) \
        else None
    return Problem(cell, activation, loss, score, model, params, x, target, lengths, h0, c0)


def assert_rel_close(actual, expected, rtol, name="", atol=TINY):
    """max|a - b| <= rtol * max|b| + atol, with a readable message."""
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(expected, dtype=np.float64)
    assert a.shape == b.shape, f"{name}: shape {a.shape} != {b.shape}"
    assert np.isfinite(a).all(), f"{name}: non-finite values in the result"
    if a.size == 0:
        return
    err = float(np.max(np.abs(a - b)))
    scale = float(np.max(np.abs(b)))
    assert err <= rtol * scale + atol, (
        f"{name}: max abs diff {err:.3e} > {rtol:.0e} * max|expected| {scale:.3e} "
        f"(relative {err / max(scale, 1e-300):.3e})"
    )


def compare_results(res, ref, rtol, cell, atol=TINY):
    """Compare a kernel result with a twin result (or another kernel result) array by array."""
    if isinstance(ref, gp.LossGrads):
        ref = {"loss": ref.loss, "grads": ref.grads, "grad_norms": ref.grad_norms,
               "cell_grad_norms": ref.cell_grad_norms, "h0_grad": ref.h0_grad,
               "c0_grad": ref.c0_grad}
    assert_rel_close(res.loss, ref["loss"], rtol, "loss", atol)
    assert set(res.grads) == set(ref["grads"])
    for k in ref["grads"]:
        assert_rel_close(res.grads[k], ref["grads"][k], rtol, f"grads[{k!r}]", atol)
    assert_rel_close(res.grad_norms, ref["grad_norms"], rtol, "grad_norms", atol)
    assert_rel_close(res.h0_grad, ref["h0_grad"], rtol, "h0_grad", atol)
    if models.CELL_TYPES[cell].cell_state is not None:
        assert_rel_close(res.cell_grad_norms, ref["cell_grad_norms"], rtol, "cell_grad_norms",
                         atol)
        assert_rel_close(res.c0_grad, ref["c0_grad"], rtol, "c0_grad", atol)
    else:
        assert res.cell_grad_norms is None
