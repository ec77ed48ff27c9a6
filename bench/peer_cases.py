"""The cases of the peer comparison (``bench/peers.py``): sizes, data, weights,
and each cell's peer module.

Every implementation (gradpath, PyTorch, JAX) builds a case from the same
spec and gets the same float64 numbers from here, cast to the case's dtype,
so their losses and gradients can be compared before anything is timed.

Two kinds of case, for every registered cell (``bench_cases.CELLS``):

* ``kernel``: forward + full BPTT of loss = mean over (t, b) of
  0.5 ||W_out h_t + b_out - y_t||^2 (score all), weights uniform in
  +-1/sqrt(H) (PyTorch's default), x and y standard normal;
* ``train``: one training update on the adding problem (mse at the last
  step) with a linear read-out, global-norm clipping at 1 and Adam
  (lr 1e-3), from the same weights and batch.

Peer modules
------------
What the peers know of a cell is in its peer module,
``src/gradpath/cells/<module>_peer.py`` (``<module>`` the cell's module in
``gradpath.cells.TABLE``): plain Python that imports nothing of gradpath (nor
Numba, torch or jax), loaded here by file path like the registry's table
(:func:`peer_cell`). It declares, in gradpath's parameter layout:

* ``shapes(H, D, O)``: {name: shape} of every parameter, read-out
  ``W_out`` (O, H) and ``b_out`` (O,) included (required);
* ``step(xp, p, state, xw, act)``: one step of the recurrence, the new state
  from the old (required). ``xp`` is the peer's array namespace (below),
  ``p`` the parameters (after ``prepare``), ``xw`` (B, .) the step's slice of
  ``drive``, ``act`` the activation (``xp.tanh`` or ``xp.relu``; None for a
  fixed nonlinearity). The state is one (B, H) array, or a tuple of
  ``STATES`` of them whose first is h_t;
* ``prepare(xp, p)``: per-call work before the loop, returning the dict
  ``step`` and ``drive`` read (default: ``p``); e.g. W_hh = expm(A - A^T);
* ``drive(xp, p, x)``: the input product for all steps at once, x (T, B, D)
  (default: ``x @ p["W_ih"].T + p["b"]``);
* ``STATES`` (default 1): how many (B, H) states, all zero at t = 0;
* ``ACTIVATION``: the activation the peer cases run, a name or
  {"kernel": name, "train": name} (for a fixed nonlinearity, the name
  gradpath's configs record); default: gradpath's default for the cell;
* ``KEPT_PER_STEP``: B x H arrays a reverse-mode implementation keeps per
  step, for the memory floor (default: no floor, no memory target);
* ``RECURRENT_BLOCKS``: H x H blocks of the recurrent product, for the FLOP
  count (default: the cell's gate blocks; 0: elementwise, no roof target);
* ``TORCH_LAYER``: the torch.nn layer standing for the cell, if there is one
  (oneDNN's fused kernels on the CPU): {"class": "RNN", "activation_kwarg":
  "nonlinearity" (if it takes one), "params": {gradpath name: torch name, or
  (torch name, first block, end block) for a slice of H-row blocks}}; torch
  tensors no gradpath parameter covers stay 0 and take no gradient. Without
  it PyTorch runs ``step`` in an explicit Python loop over t.

The array namespace ``xp`` (``peer_worker.namespace``) offers ``tanh``,
``sigmoid``, ``relu``, ``abs``, ``sign``, ``expm`` and ``chunk(a, n)``
(n equal blocks along the last axis); ``@``, ``.T`` and arithmetic are the
arrays' own. JAX runs ``step`` in ``lax.scan``.

A cell without a peer module is timed for gradpath alone and shown without a
peer ratio.
"""

from __future__ import annotations

import importlib.util
import sys
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from bench_cases import CELLS, GATE_BLOCKS, SIZES, _gradpath_cells

#: (B, H, D, T) of the kernel cases: the benchmark sizes, plus a wide one.
KERNEL_SIZES: dict[str, tuple[int, int, int, int]] = {**SIZES, "wide": (16, 512, 8, 100)}
#: Training-update cases: B x H x T, adding problem (D = 2, O = 1).
TRAIN_B = (16, 64)
TRAIN_H = (64, 128)
TRAIN_T = (100, 400)
TRAIN_LR = 1e-3
TRAIN_CLIP = 1.0
IMPLS = ("gradpath", "torch", "jax")
DTYPES = ("float32", "float64")
#: Gate blocks per hidden unit (rows of W_ih and W_hh per hidden unit).
GATES = GATE_BLOCKS
#: What a peer's table shows for how it runs a case.
LOOP = "explicit loop"


def _drive(xp, p, x):
    return x @ p["W_ih"].T + p["b"]


def _same(xp, p):
    return p


@dataclass(frozen=True)
class PeerCell:
    """A cell's peer module with its defaults filled in (see the module docstring)."""

    name: str
    path: Path
    shapes: object
    step: object
    prepare: object
    drive: object
    states: int
    activation: dict
    kept_per_step: int | None
    recurrent_blocks: int
    torch_layer: dict | None

    def torch_path(self, loop: bool = False) -> str:
        """How PyTorch runs the cell: its torch.nn layer, or the explicit loop."""
        if loop or self.torch_layer is None:
            return LOOP
        return f"nn.{self.torch_layer['class']}"


def _cells_dir() -> Path:
    return Path(_gradpath_cells().__file__).resolve().parent


@cache
def peer_cell(cell: str) -> PeerCell | None:
    """The cell's peer module (:class:`PeerCell`), or None when it has none."""
    module = _gradpath_cells().TABLE[cell][0]
    path = _cells_dir() / f"{module}_peer.py"
    if not path.is_file():
        return None
    name = f"_gradpath_peer_{module}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    for required in ("shapes", "step"):
        if not callable(getattr(mod, required, None)):
            raise ValueError(f"{path}: a peer module must define {required}()")
    act = getattr(mod, "ACTIVATION", None)
    act = dict(act) if isinstance(act, dict) else {"kernel": act, "train": act}
    return PeerCell(cell, path, mod.shapes, mod.step, getattr(mod, "prepare", _same),
                    getattr(mod, "drive", _drive), int(getattr(mod, "STATES", 1)), act,
                    getattr(mod, "KEPT_PER_STEP", None),
                    int(getattr(mod, "RECURRENT_BLOCKS", GATES[cell])),
                    getattr(mod, "TORCH_LAYER", None))


def has_peer(cell: str) -> bool:
    return peer_cell(cell) is not None


def activation(cell: str, kind: str) -> str | None:
    """The activation the cell's cases run (None: gradpath's default for the cell)."""
    pc = peer_cell(cell)
    return None if pc is None else pc.activation.get(kind)


def kernel_specs() -> list[dict]:
    return [{"kind": "kernel", "cell": cell, "size": name, "B": B, "H": H, "D": D, "T": T,
             "O": 1, "activation": activation(cell, "kernel"), "dtype": dt,
             "peer": has_peer(cell), "key": f"kernel-{cell}-{B}x{H}x{D}x{T}-{dt}"}
            for cell in CELLS for name, (B, H, D, T) in KERNEL_SIZES.items()
            for dt in DTYPES]


def train_specs() -> list[dict]:
    return [{"kind": "train", "cell": cell, "B": B, "H": H, "D": 2, "T": T, "O": 1,
             "activation": activation(cell, "train"), "dtype": dt, "peer": has_peer(cell),
             "key": f"train-{cell}-B{B}-H{H}-T{T}-{dt}"}
            for cell in CELLS for B in TRAIN_B for H in TRAIN_H for T in TRAIN_T
            for dt in DTYPES]


def shapes(spec: dict) -> dict[str, tuple[int, ...]] | None:
    """The cell's parameter shapes from its peer module (None without one)."""
    pc = peer_cell(spec["cell"])
    return None if pc is None else {k: tuple(v) for k, v in
                                    pc.shapes(spec["H"], spec["D"], spec["O"]).items()}


def weights(spec: dict, param_shapes: dict | None = None) -> dict[str, np.ndarray]:
    """gradpath-layout parameters (float64) of the given shapes (default: the
    peer module's), each uniform in +-1/sqrt(H) from a stream of its own
    (seeded by the sizes and its name, so the order of the shapes is free)."""
    param_shapes = shapes(spec) if param_shapes is None else param_shapes
    if param_shapes is None:
        raise ValueError(f"the {spec['cell']} cell has no peer module and no shapes were given")
    H, D, G = spec["H"], spec["D"], GATES[spec["cell"]]
    k = 1.0 / np.sqrt(H)
    return {name: np.random.default_rng([H, D, G, 7, zlib.crc32(name.encode())])
            .uniform(-k, k, tuple(shape)) for name, shape in param_shapes.items()}


def data(spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """(x (T, B, D), target): (T, B, O) for kernel cases; an adding batch
    (target (B, 1), the sum of the two marked values) for train cases."""
    B, D, T, O = spec["B"], spec["D"], spec["T"], spec["O"]
    rng = np.random.default_rng([B, D, T, 11])
    if spec["kind"] == "kernel":
        return rng.standard_normal((T, B, D)), rng.standard_normal((T, B, O))
    x = np.zeros((T, B, 2))
    x[:, :, 0] = rng.uniform(0.0, 1.0, (T, B))
    first = rng.integers(0, T // 2, B)
    second = rng.integers(T // 2, T, B)
    x[first, np.arange(B), 1] = 1.0
    x[second, np.arange(B), 1] = 1.0
    target = (x[first, np.arange(B), 0] + x[second, np.arange(B), 0])[:, None]
    return x, target


def recurrent_blocks(cell: str) -> int:
    """H x H blocks of the recurrent product (the gate blocks without a peer module)."""
    pc = peer_cell(cell)
    return GATES[cell] if pc is None else pc.recurrent_blocks


def flops(spec: dict) -> float:
    """Forward + backward FLOPs of the recurrent and input products:
    6 B T (R H^2 + G H D), G gate blocks and R recurrent H x H blocks (R = G
    for the RNN, LSTM and GRU; 0 for the IndRNN's elementwise recurrence).
    Per-call work outside the loop (the expRNN's matrix exponential) is not
    counted."""
    G, R = GATES[spec["cell"]], recurrent_blocks(spec["cell"])
    B, H, D, T = spec["B"], spec["H"], spec["D"], spec["T"]
    return 6.0 * B * T * (R * H * H + G * H * D)


def memory_floor(spec: dict) -> float:
    """Bytes a reverse-mode implementation cannot avoid keeping: activations
    for the backward pass (the peer module's ``KEPT_PER_STEP``: RNN h_t; LSTM
    h_t, c_t and the four gates; GRU h_t, r, z, n and W_hn h_{t-1} + b_hn),
    parameters and their gradients; NaN when the peer module does not say."""
    pc = peer_cell(spec["cell"])
    if pc is None or pc.kept_per_step is None:
        return float("nan")
    B, H, T = spec["B"], spec["H"], spec["T"]
    params = sum(int(np.prod(s)) for s in shapes(spec).values())
    per_step = pc.kept_per_step * B * H
    return float((T * per_step + 2 * params) * np.dtype(spec["dtype"]).itemsize)
