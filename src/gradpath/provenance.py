"""Which code and which machine produced a result.

``code_id`` identifies everything a run's numbers depend on besides its
configuration: the gradpath modules that compute results (the kernels, the
models, training, probes, tasks, theory and the tables they fill) and the
versions of Python, numpy, numba, scipy and pandas. A finished run whose
``code_id`` differs from the current one was computed by other code, so the
grid recomputes it instead of reusing it silently.

The modules are hashed by their syntax tree without docstrings, so editing a
comment, a docstring or the layout keeps the id; any change to what the code
does changes it.

The machine (CPU model, BLAS library and its kernel set) is recorded beside
it, as provenance only: the same code gives the same numbers on another
machine up to floating-point reassociation in BLAS, and a different machine
alone does not make a run stale.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
#: The modules whose code computes results, relative to the package (a
#: folder means every module in it).
COMPUTE_SOURCES: tuple[str, ...] = (
    "kernels", "cells", "models.py", "train.py", "probe.py", "tasks.py", "theory.py", "clipping.py",
    "rng.py", "checks.py", "results.py",
)
#: The libraries whose versions enter the code id.
LIBRARIES: tuple[str, ...] = ("numpy", "numba", "scipy", "pandas")


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


def source_files() -> list[Path]:
    """The files :func:`code_id` hashes, in a fixed order (not the cells' peer
    modules, ``cells/*_peer.py``: the benchmarks' PyTorch and JAX twins
    compute none of the suite's numbers)."""
    files = []
    for name in COMPUTE_SOURCES:
        path = PACKAGE / name
        files += sorted(p for p in path.rglob("*.py") if not p.name.endswith("_peer.py")) \
            if path.is_dir() else [path]
    return files


@functools.cache
def versions() -> dict[str, str]:
    """Versions of Python and of :data:`LIBRARIES` (and of gradpath itself)."""
    out = {"python": platform.python_version()}
    for lib in ("gradpath", *LIBRARIES):
        try:
            out[lib] = version(lib)
        except PackageNotFoundError:  # pragma: no cover - a broken install
            out[lib] = "unknown"
    return out


@functools.cache
def code_id() -> str:
    """16 hex digits: SHA-256 of the computing modules' code (syntax trees
    without docstrings) and of the versions of Python, numpy, numba, scipy
    and pandas."""
    h = hashlib.sha256()
    for path in source_files():
        tree = _strip_docstrings(ast.parse(path.read_text(), str(path)))
        h.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0")
        h.update(ast.dump(tree, annotate_fields=False).encode() + b"\0")
    v = versions()
    for key in ("python", *LIBRARIES):
        h.update(f"{key}={v[key]}\0".encode())
    return h.hexdigest()[:16]


def _cpu() -> str:
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "cpu family", "model", "vendor_id") and key not in fields:
                fields[key] = value.strip()
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def _blas() -> str:
    """Every BLAS library loaded for the kernels: numpy's, and scipy's, which
    Numba's compiled code calls. Both are loaded first, so the answer does not
    depend on what the caller happened to import."""
    import numpy  # noqa: F401 - loads numpy's BLAS
    import scipy.linalg.cython_blas  # noqa: F401 - loads scipy's BLAS
    from threadpoolctl import threadpool_info

    libs = sorted({f"{lib['internal_api']} {lib['version']}"
                   + (f" ({lib['architecture']} kernels)" if lib.get("architecture") else "")
                   for lib in threadpool_info() if lib.get("user_api") == "blas"})
    return "; ".join(libs) or "unknown"


@functools.cache
def machine() -> dict[str, str]:
    """The machine a run ran on: CPU model and BLAS library (provenance only)."""
    return {"machine_cpu": _cpu(), "machine_blas": _blas(), "machine_os": sys.platform}
