"""What the benchmarks measure and what the checks demand of them.

Shared by the pytest-benchmark suite (``bench/test_*.py``), the target check
(``bench/check_targets.py``) and the paired gate (``bench/gate.py``), so the
sizes, the case keys and the targets are written down once.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import asdict, dataclass
from pathlib import Path


def _gradpath_cells():
    """``gradpath.cells`` (the cell registry's table), loaded from its file
    without the package: ``import gradpath`` loads Numba and every kernel (about
    a second), which the gate's controller, the target check and the peers'
    PyTorch and JAX workers must not carry."""
    if "gradpath.cells" in sys.modules:
        return sys.modules["gradpath.cells"]
    pkg = importlib.util.find_spec("gradpath")
    if pkg is None or not pkg.submodule_search_locations:
        raise ImportError("bench/ needs gradpath installed (make setup)")
    name = "_gradpath_cells_for_bench"
    if name not in sys.modules:
        path = Path(list(pkg.submodule_search_locations)[0]) / "cells" / "__init__.py"
        spec = importlib.util.spec_from_file_location(name, path)
        sys.modules[name] = importlib.util.module_from_spec(spec)  # dataclasses look it up
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


#: Benchmark sizes (B, H, D, T) by name. ``small`` is per-step-overhead bound,
#: ``large`` is GEMM bound.
SIZES: dict[str, tuple[int, int, int, int]] = {
    "small": (1, 64, 1, 1000),
    "medium": (32, 128, 2, 200),
    "large": (64, 256, 2, 1000),
}
#: Every registered cell (``gradpath.cells.TABLE``).
CELLS: tuple[str, ...] = tuple(_gradpath_cells().TABLE)
#: Gate blocks per cell (the table's).
GATE_BLOCKS: dict[str, int] = {n: row[2] for n, row in _gradpath_cells().TABLE.items()}
DTYPES: tuple[str, ...] = ("float32", "float64")

# -- kernel against its numpy twin (pytest-benchmark suite) ------------------
#: Minimum speed-up (twin median / kernel median) of the Numba kernel over the
#: plain-numpy twin, by size name, every cell and dtype. Absolute: they must
#: hold on any machine, and no noise tolerance scales them.
MIN_SPEEDUP: dict[str, float] = {"small": 8.0, "medium": 1.0, "large": 1.0}

#: A fresh process that hits Numba's on-disk cache must be ready to call every
#: kernel (``import gradpath; gradpath.warmup()``) within this many seconds ...
CACHE_LOAD_TARGET_S = 1.5
#: ... and the check fails only above target x this factor, because a
#: subprocess start on a shared 2-core machine can stall for a second; between
#: the two it warns.
CACHE_LOAD_NOISE_FACTOR = 2.0
CACHE_LOAD_KEY = "cache-load"

#: Which sizes the pytest-benchmark suite runs: env var (comma-separated size
#: names or a subset name).
SIZES_ENV = "GRADPATH_BENCH_SIZES"
#: Named subsets accepted wherever size names are.
SUBSETS: dict[str, tuple[str, ...]] = {"all": tuple(SIZES), "ci": ("small", "medium")}


def entry_key(cell: str, size: tuple[int, int, int, int], dtype: str) -> str:
    """Key of one (cell, size, dtype) entry, e.g. ``"rnn-1x64x1x1000-float32"``."""
    return f"{cell}-{'x'.join(str(n) for n in size)}-{dtype}"


def parse_sizes(spec: str | None) -> tuple[str, ...]:
    """Size names from a spec like ``"small,medium"``, ``"ci"`` or ``"all"``."""
    if not spec:
        return SUBSETS["all"]
    names: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        for name in SUBSETS.get(part, (part,)):
            if name not in SIZES:
                raise ValueError(
                    f"{SIZES_ENV}: unknown size {name!r}; expected names from "
                    f"{sorted(SIZES)} or subsets {sorted(SUBSETS)}"
                )
            if name not in names:
                names.append(name)
    return tuple(names)


# -- paired, interleaved timings (bench/gate.py) -----------------------------
#: Network settings by (cell, regime). "vanishing" is the suite's standard
#: case (tanh, orthogonal, gain 1: BPTT adjoints decay through the subnormal
#: range within T = 1000 steps); the others keep them at normal magnitude:
#: ReLU with identity weights, tanh with identity weights (slower decay, same
#: activation cost), an LSTM whose forget gates start near 1 (forget bias 4).
#: The GRU's vanishing case keeps the model's default update bias (1.0);
#: ``forget_bias`` None: the worker passes none.
REGIMES: dict[tuple[str, str], dict] = {
    ("rnn", "vanishing"): {"activation": "tanh", "init": "orthogonal", "forget_bias": None},
    ("rnn", "relu-identity"): {"activation": "relu", "init": "identity", "forget_bias": None},
    ("rnn", "tanh-identity"): {"activation": "tanh", "init": "identity", "forget_bias": None},
    ("lstm", "vanishing"): {"activation": None, "init": "orthogonal", "forget_bias": 1.0},
    ("lstm", "forget-bias-4"): {"activation": None, "init": "orthogonal", "forget_bias": 4.0},
    ("gru", "vanishing"): {"activation": None, "init": "orthogonal", "forget_bias": None},
}
# A cell without a case of its own here is timed at its defaults (its
# activation and biases), orthogonal recurrent weights of gain 1.
for _cell in CELLS:
    REGIMES.setdefault((_cell, "vanishing"),
                       {"activation": None, "init": "orthogonal", "forget_bias": None})

#: A vanishing case may cost at most this many times its steady twin (same
#: cell, size and dtype), and float32 must beat float64 at these sizes.
MAX_VANISHING_RATIO = 1.3
FLOAT32_FASTER_SIZES: tuple[str, ...] = ("large",)
#: (cell, size, steady regime, enforced) of the subnormal checks, both dtypes.
#: At the large size the RNN's twin is ReLU + identity, the comparison the
#: slow-down was first measured with. At B = 1 that pair also compares tanh's
#: cost with ReLU's (about 1.2x by itself, subnormals or not), so there the
#: enforced twin is tanh + identity, the same arithmetic without subnormals;
#: the ReLU pair is shown for information.
SUBNORMAL_CHECKS: tuple[tuple[str, str, str, bool], ...] = (
    ("rnn", "large", "relu-identity", True),
    ("rnn", "small", "tanh-identity", True),
    ("rnn", "small", "relu-identity", False),
    ("lstm", "small", "forget-bias-4", True),
    ("lstm", "large", "forget-bias-4", True),
)


@dataclass(frozen=True)
class Case:
    """One timed ``loss_and_grads`` call (mse, score="last") through the public API."""

    cell: str
    size: str
    dtype: str
    regime: str = "vanishing"

    @property
    def key(self) -> str:
        return f"{entry_key(self.cell, SIZES[self.size], self.dtype)}-{self.regime}"

    def spec(self) -> dict:
        """Everything a worker needs to build the problem (JSON-serialisable)."""
        B, H, D, T = SIZES[self.size]
        return {**asdict(self), "key": self.key, "B": B, "H": H, "D": D, "T": T,
                **REGIMES[(self.cell, self.regime)]}


#: Timed in base and head: the gate compares these.
GATE_CASES: tuple[Case, ...] = tuple(
    Case(c, s, d) for c in CELLS for s in SIZES for d in DTYPES)
#: Timed in head only, paired with their vanishing twin in the same round.
STEADY_CASES: tuple[Case, ...] = tuple(
    Case(c, s, d, regime) for c, s, regime, _ in SUBNORMAL_CHECKS for d in DTYPES)


def md_table(header: list[str], rows: list[list[str]], align: str) -> str:
    """``rows`` (already formatted strings) under ``header`` as a Markdown table,
    by ``pandas.DataFrame.to_markdown``.

    ``align`` has one letter per column: ``l`` left, ``r`` right. Cells are
    printed as given (no number parsing, so ``1.10`` stays ``1.10``).
    """
    import pandas as pd  # here: the timing workers import this module and need no pandas

    colalign = [{"l": "left", "r": "right"}[a] for a in align]
    if len(colalign) != len(header):
        raise ValueError(f"align {align!r}: {len(align)} letters for {len(header)} columns")
    return pd.DataFrame(rows, columns=header).to_markdown(index=False, colalign=colalign,
                                                          disable_numparse=True)
