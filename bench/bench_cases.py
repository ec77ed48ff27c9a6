"""What the benchmark suite measures and what the regression check demands of it.

Shared by the pytest-benchmark suite (``bench/test_*.py``) and by
``bench/check_regression.py`` so the sizes, the entry keys and the absolute
targets are written down once.
"""

from __future__ import annotations

import os

#: Benchmark sizes (B, H, D, T) by name. ``small`` is framework-overhead bound,
#: ``large`` is BLAS bound.
SIZES: dict[str, tuple[int, int, int, int]] = {
    "small": (1, 64, 1, 1000),
    "medium": (32, 128, 2, 200),
    "large": (64, 256, 2, 1000),
}
CELLS: tuple[str, ...] = ("rnn", "lstm")
DTYPES: tuple[str, ...] = ("float32", "float64")

#: Absolute targets from the issue: minimum speed-up (twin median / kernel
#: median) of the Numba kernel over the plain-numpy twin, by size name.
#: Both cells, both dtypes. These are not scaled by any noise tolerance.
MIN_SPEEDUP: dict[str, float] = {"small": 8.0, "medium": 1.0, "large": 1.0}

#: A fresh process that hits Numba's on-disk cache must be ready to call every
#: kernel (``import gradpath; gradpath.warmup()``) within this many seconds ...
CACHE_LOAD_TARGET_S = 1.5
#: ... and the check fails only above target x this factor, because a
#: subprocess start on a shared 2-core machine can stall for a second; between
#: the two it warns.
CACHE_LOAD_NOISE_FACTOR = 2.0
CACHE_LOAD_KEY = "cache-load"

#: Which sizes to run: env var (comma-separated size names or "all").
SIZES_ENV = "GRADPATH_BENCH_SIZES"
#: Bench-only knob to prove the check bites: the kernel benchmark calls the
#: kernel this many times per timed call (an N-times slower kernel). Never
#: read by the library.
SLOWDOWN_ENV = "GRADPATH_BENCH_SLOWDOWN"
#: Named subsets accepted wherever size names are.
SUBSETS: dict[str, tuple[str, ...]] = {"all": tuple(SIZES), "ci": ("small", "medium")}


def entry_key(cell: str, size: tuple[int, int, int, int], dtype: str) -> str:
    """Key of one (cell, size, dtype) entry, e.g. ``"rnn-1x64x1x1000-float32"``."""
    return f"{cell}-{'x'.join(str(n) for n in size)}-{dtype}"


def size_name(size) -> str | None:
    """Name of a (B, H, D, T) size, or None if it is not a standard one."""
    for name, s in SIZES.items():
        if tuple(size) == s:
            return name
    return None


def parse_sizes(spec: str | None) -> tuple[str, ...]:
    """Size names from a spec like ``"small,medium"``, ``"ci"`` or ``"all"``."""
    if not spec:
        return SUBSETS["all"]
    names: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        expanded = SUBSETS.get(part, (part,))
        for name in expanded:
            if name not in SIZES:
                raise ValueError(
                    f"{SIZES_ENV}: unknown size {name!r}; expected names from "
                    f"{sorted(SIZES)} or subsets {sorted(SUBSETS)}"
                )
            if name not in names:
                names.append(name)
    return tuple(names)


def slowdown() -> int:
    """The ``GRADPATH_BENCH_SLOWDOWN`` factor (1 when unset)."""
    raw = os.environ.get(SLOWDOWN_ENV, "").strip()
    if not raw:
        return 1
    try:
        n = int(raw)
    except ValueError as exc:
        raise ValueError(f"{SLOWDOWN_ENV}: expected a positive integer, got {raw!r}") from exc
    if n < 1:
        raise ValueError(f"{SLOWDOWN_ENV}: expected a positive integer, got {raw!r}")
    return n
