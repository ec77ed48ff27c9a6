"""The vocabulary of gradpath: every name a config, the CLI, a table or a
figure may use, defined once.

The library modules validate against these tuples, ``configs/schema.yaml``
and the CLI's choices are held equal to them by a test
(``tests/test_vocab.py``), and the analysis takes its orders and labels from
here. Adding a cell means adding its name to :data:`CELLS` and :data:`MODELS`;
what is the cell's own (its kernel, its model class in
``gradpath.models.CELL_TYPES``, its Jacobian for the probes' adjoint and
Lyapunov exponents, its measured memory in ``gradpath.resources``) is written
once for it, but no list of names is retyped anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Recurrent cells with a kernel (:mod:`gradpath.models`).
CELLS: tuple[str, ...] = ("rnn", "lstm", "gru")
#: H-row gate blocks of each cell's W_ih, W_hh and b (held equal to the
#: model classes' ``gates`` by tests/test_vocab.py).
GATE_BLOCKS: dict[str, int] = {"rnn": 1, "lstm": 4, "gru": 3}
#: Cells whose nonlinearity is a choice (the gated cells' are fixed: tanh).
CELLS_WITH_ACTIVATION: tuple[str, ...] = ("rnn",)
#: Activations of the vanilla RNN.
ACTIVATIONS: tuple[str, ...] = ("tanh", "relu")
#: Initialisations of the recurrent weights (per gate block for gated cells).
INITS: tuple[str, ...] = ("identity", "gaussian", "orthogonal")
#: Synthetic tasks (:mod:`gradpath.tasks`).
TASKS: tuple[str, ...] = ("adding", "copy", "sine")
#: Gradient clipping: none, by global norm, by value.
CLIPS: tuple[str, ...] = ("none", "norm", "value")
#: Optimisers (:mod:`gradpath.kernels.optim`).
OPTIMIZERS: tuple[str, ...] = ("sgd", "rmsprop", "adam")
#: Losses and scoring modes of the kernels.
LOSSES: tuple[str, ...] = ("mse", "xent")
SCORES: tuple[str, ...] = ("last", "all")
#: Floating-point types of parameters and data.
DTYPES: tuple[str, ...] = ("float64", "float32")


@dataclass(frozen=True)
class Model:
    """A model of the grid: its label, the cell and activation it stands for,
    and the name figures give it."""

    label: str
    cell: str
    activation: str
    title: str


#: The grid's models, in the order tables and figures show them.
MODELS: dict[str, Model] = {m.label: m for m in (
    Model("rnn-tanh", "rnn", "tanh", "tanh RNN"),
    Model("rnn-relu", "rnn", "relu", "ReLU RNN"),
    Model("lstm", "lstm", "tanh", "LSTM"),
    Model("gru", "gru", "tanh", "GRU"),
)}


def model_of(cell: str, activation: str) -> Model:
    """The :class:`Model` of a (cell, activation) pair; a gated cell's
    activation is ignored (it is fixed)."""
    act = activation if cell in CELLS_WITH_ACTIVATION else "tanh"
    for m in MODELS.values():
        if m.cell == cell and m.activation == act:
            return m
    raise ValueError(f"no model for cell={cell!r}, activation={activation!r}; "
                     f"models: {sorted(MODELS)}")
