"""The models: one class per cell (:mod:`gradpath.cells`), and :func:`make_model`.

Every public method validates its input and raises :class:`ValueError`
naming the offending argument before any kernel runs, so a kernel never sees
a wrong shape, dtype, or non-finite input.
"""

from __future__ import annotations

from .cells import REGISTRY, cell_class
from .cells.base import (
    ACTIVATIONS,
    DEFAULT_FORGET_BIAS,
    DEFAULT_UPDATE_BIAS,
    DTYPES,
    INITS,
    LOSSES,
    SCORES,
    Cell,
    Forward,
    LossGrads,
    check_lengths,
    recurrent_matrix,
)

# Every registered cell's class under its own name (gradpath.models.RNN, ...).
globals().update({cls.__name__: cls for cls in REGISTRY.values()})

__all__ = ["ACTIVATIONS", "CELL_TYPES", "DEFAULT_FORGET_BIAS", "DEFAULT_UPDATE_BIAS", "DTYPES",
           "INITS", "LOSSES", "SCORES", "Cell", "Forward", "LossGrads", "check_lengths",
           "make_model", "recurrent_matrix", *(cls.__name__ for cls in REGISTRY.values())]

#: The model class of every cell (the registry, :data:`gradpath.cells.REGISTRY`).
CELL_TYPES: dict[str, type[Cell]] = REGISTRY


def make_model(cell: str, input_size: int, hidden_size: int, output_size: int,
               activation: str | None = None) -> Cell:
    """A model of the given cell; ``activation`` applies to the cells that
    take one (None: the cell's default; the others' nonlinearities are fixed,
    and it is ignored)."""
    cls = cell_class(cell)
    if cls.activations and activation is not None:
        return cls(input_size, hidden_size, output_size, activation)
    return cls(input_size, hidden_size, output_size)
