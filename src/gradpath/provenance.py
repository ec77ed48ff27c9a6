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

The machine (CPU model, BLAS library and its kernel set) and, in a git
checkout, the commit are recorded beside it, as provenance only: the same
code gives the same numbers on another machine up to floating-point
reassociation in BLAS, and a different machine or commit alone does not make
a run stale.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import platform
import subprocess
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
        except PackageNotFoundError:  # pandas in a plain install (no study extra)
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


@functools.cache
def cpu_model() -> str:
    """The CPU's model name, with its family and model numbers where the OS
    gives them (Linux: /proc/cpuinfo), else what :mod:`platform` says.

    The one reader of the CPU model: provenance, the benchmarks' tables and
    their plots all name the machine by it.

    Returns
    -------
    str
        E.g. ``"AMD EPYC 7B13 (family 25, model 1)"``.
    """
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


@functools.cache
def git_commit() -> str | None:
    """The git commit of the checkout gradpath runs from, with ``-dirty``
    appended when tracked files differ from it; None when gradpath is not
    imported from a git checkout's ``src/gradpath`` (an installed copy), or
    git is missing or refuses (e.g. a repository owned by another user).

    Untracked files do not count as dirty: results and caches live in the
    checkout. Provenance only: the code id, not the commit, decides whether
    a finished run is reused.

    Returns
    -------
    str or None
        40 hex digits, optionally followed by ``-dirty``.
    """
    def git(*args: str) -> str | None:
        try:
            # no optional locks: concurrent jobs must not race for the index
            out = subprocess.run(["git", "--no-optional-locks", "-C", str(PACKAGE), *args],
                                 capture_output=True, text=True, timeout=30,
                                 stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    # only the checkout's own sources: not a copy installed into a venv
    # that happens to sit inside some work tree
    if not top or (Path(top) / "src" / "gradpath").resolve() != PACKAGE:
        return None
    commit = git("rev-parse", "--verify", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    if not commit or status is None:
        return None
    return commit + ("-dirty" if status else "")


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
    return {"machine_cpu": cpu_model(), "machine_blas": _blas(), "machine_os": sys.platform}
