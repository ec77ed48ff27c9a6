"""The vocabulary of gradpath: every name a config, the CLI, a table or a
figure may use, defined once.

The library modules validate against these tuples, ``configs/schema.yaml``
and the CLI's choices are held equal to them by a test
(``tests/test_vocab.py``), and the analysis takes its orders and labels from
here. The cells' names and models come from the cell registry
(:mod:`gradpath.cells`): a cell added there is in :data:`CELLS` and
:data:`MODELS` without an edit here.
"""

from __future__ import annotations

#: Activations a cell may take (the RNN's; a cell with a fixed nonlinearity takes none).
ACTIVATIONS: tuple[str, ...] = ("tanh", "relu")
#: Initialisations of the recurrent weights (per gate block for gated cells).
INITS: tuple[str, ...] = ("identity", "gaussian", "orthogonal")
#: Synthetic tasks (:mod:`gradpath.tasks`).
TASKS: tuple[str, ...] = ("adding", "adding-hs", "copy", "sine")
#: Gradient clipping: none, by global norm, by value.
CLIPS: tuple[str, ...] = ("none", "norm", "value")
#: Optimisers (:mod:`gradpath.kernels.optim`).
OPTIMIZERS: tuple[str, ...] = ("sgd", "rmsprop", "adam")
#: Losses and scoring modes of the kernels.
LOSSES: tuple[str, ...] = ("mse", "xent")
SCORES: tuple[str, ...] = ("last", "all")
#: Floating-point types of parameters and data.
DTYPES: tuple[str, ...] = ("float64", "float32")


def __getattr__(name: str):
    """The cells' names and models, read from the registry on first use
    (:mod:`gradpath.cells`; imported lazily, as the cells import this module).

    ``CELLS``: the registered cells; ``GATE_BLOCKS``: each cell's H-row gate
    blocks; ``CELLS_WITH_ACTIVATION``: the cells whose nonlinearity is a
    choice; ``MODELS``: the grid's models by label, in the order tables and
    figures show them; ``Model``: their type. Each is computed once and kept
    as a module attribute (later reads do not come here).
    """
    from . import cells

    if name == "CELLS":  # from the registry's table: no kernel is imported
        value = tuple(cells.TABLE)
    elif name == "GATE_BLOCKS":
        value = {n: row[2] for n, row in cells.TABLE.items()}
    elif name == "CELLS_WITH_ACTIVATION":
        value = tuple(n for n, c in cells.REGISTRY.items() if c.activations)
    elif name == "MODELS":
        value = {m.label: m for c in cells.REGISTRY.values() for m in c.models}
    elif name == "Model":
        from .cells.base import Model as value
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def model_of(cell: str, activation: str):
    """The :class:`Model` of a (cell, activation) pair; a gated cell's
    activation is ignored (it is fixed)."""
    from .cells import REGISTRY

    cls = REGISTRY.get(cell)
    act = activation if cls is None or cls.activations else cls.fixed_activation
    for m in __getattr__("MODELS").values():
        if m.cell == cell and m.activation == act:
            return m
    raise ValueError(f"no model for cell={cell!r}, activation={activation!r}; "
                     f"models: {sorted(__getattr__('MODELS'))}")
