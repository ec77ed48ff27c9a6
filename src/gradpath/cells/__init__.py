"""The cells, one module each, behind one registry.

A cell module owns everything about its cell: its parameters, their
initialisation and validation, its kernels (the roles of
:mod:`gradpath.cells.pipeline`: forward, BPTT, dL/d(initial states)), its
probe adjoint and step Jacobian, and its cost coefficients. The rest of the
suite (models, probes, training, resources, the vocabulary, the CLI, the
figures, the benchmarks) iterates the registry and names no cell. Adding a
cell: docs/adding-a-cell.md.

:data:`TABLE` is plain data, so this file can be read without importing
Numba or any kernel (the benchmarks' controllers do); the model classes,
:data:`REGISTRY`, are imported on first use.
"""

from __future__ import annotations

import importlib

#: One line per cell: name -> (its module in this package, its model class,
#: its gate blocks), in the order tables and figures show them.
TABLE: dict[str, tuple[str, str, int]] = {
    "rnn": ("rnn", "RNN", 1),
    "lstm": ("lstm", "LSTM", 4),
    "gru": ("gru", "GRU", 3),
    "indrnn": ("indrnn", "IndRNN", 1),
    "exprnn": ("exprnn", "ExpRNN", 1),
}


def _load() -> dict:
    registry = {}
    for name, (module, cls_name, gates) in TABLE.items():
        cls = getattr(importlib.import_module(f"{__name__}.{module}"), cls_name)
        if cls.name != name or cls.gates != gates:
            raise RuntimeError(f"cells.TABLE[{name!r}] says ({cls_name}, {gates} gate blocks); "
                               f"the class says ({cls.name!r}, {cls.gates})")
        registry[name] = cls
    return registry


def __getattr__(name: str):
    """``REGISTRY``: every cell's model class by name (imported on first use)."""
    if name == "REGISTRY":
        globals()["REGISTRY"] = registry = _load()
        return registry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def cell_class(name: str):
    """The model class of a registered cell; ValueError naming the choices otherwise."""
    if not isinstance(name, str) or name not in TABLE:
        raise ValueError(f"cell: expected one of {list(TABLE)}, got {name!r}")
    return __getattr__("REGISTRY")[name]
