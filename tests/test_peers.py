"""The peer comparison's cells (``bench/peers.py``): every cell's peer module
(``src/gradpath/cells/<cell>_peer.py``) is plain Python, declares gradpath's
parameter shapes, and its step run by PyTorch (torch.nn's layer and the
explicit loop) and by JAX (``lax.scan``) gives gradpath's loss, gradients and
updated parameters, within the tolerances ``peers.py`` checks with."""

from __future__ import annotations

import ast
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import gradpath.cells
from gradpath.cells import TABLE, cell_class

BENCH = Path(__file__).resolve().parent.parent / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import peer_cases  # noqa: E402
import peer_worker  # noqa: E402
import peers  # noqa: E402

CELLS_DIR = Path(gradpath.cells.__file__).resolve().parent
PEER_FILES = sorted(CELLS_DIR.glob("*_peer.py"))
WITH_PEER = [c for c in TABLE if peer_cases.has_peer(c)]


def tiny(cell: str, kind: str, torch_loop: bool = False) -> dict:
    return {"kind": kind, "cell": cell, "B": 3, "H": 5, "D": 2, "T": 7, "O": 1,
            "activation": peer_cases.activation(cell, kind), "dtype": "float64",
            "peer": peer_cases.has_peer(cell), "torch_loop": torch_loop, "key": "tiny"}


def test_the_original_cells_have_peer_modules():
    assert {"rnn", "lstm", "gru", "indrnn"} <= set(WITH_PEER)
    assert PEER_FILES


@pytest.mark.parametrize("path", PEER_FILES, ids=lambda p: p.name)
def test_peer_modules_import_nothing(path):
    """Loaded by file path in processes without gradpath, Numba, torch or jax."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            pytest.fail(f"{path.name} imports {[a.name for a in node.names]}")
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            pytest.fail(f"{path.name} imports from {node.module}")
    assert (path.parent / path.name.replace("_peer.py", ".py")).is_file()


@pytest.mark.parametrize("cell", WITH_PEER)
@pytest.mark.parametrize("HDO", [(5, 3, 2), (7, 1, 1)])
def test_peer_shapes_are_the_cells(cell, HDO):
    H, D, O = HDO
    pc = peer_cases.peer_cell(cell)
    got = {k: tuple(v) for k, v in pc.shapes(H, D, O).items()}
    assert got == {k: tuple(v) for k, v in
                   cell_class(cell)(D, H, O).param_shapes().items()}


@pytest.fixture(scope="module")
def jax_x64():
    # JAX comes with the peers' extra, which `make test` (and `make bench-peers`)
    # installs; a plain pytest without it skips these cases
    jax = pytest.importorskip("jax", reason="JAX comes with the peers extra: make test "
                              "installs it, or pip install -e '.[dev,peers]'")
    pytest.importorskip("optax", reason="optax comes with JAX in the peers extra")
    peer_worker.setup_impl("jax")
    return jax


PATHS = [("torch", False), ("torch", True), ("jax", False)]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["kernel", "train"])
@pytest.mark.parametrize("impl,loop", PATHS, ids=["torch", "torch-loop", "jax"])
@pytest.mark.parametrize("cell", WITH_PEER)
def test_peers_agree_with_gradpath(cell, impl, loop, kind, request):
    if impl == "jax":
        request.getfixturevalue("jax_x64")
    spec = tiny(cell, kind, loop)
    ref = {k: np.asarray(v, np.float64) for k, v in peer_worker.gradpath_case(spec)[1]().items()}
    call, check = peer_worker.BUILDERS[impl](spec)
    call()  # as the worker's setup does: a timed call must not move check's start
    call()
    got = check()
    assert set(got) == set(ref)
    assert peers.compare(ref, got, impl, kind) == []


def test_the_torch_path_is_labelled():
    assert peer_cases.peer_cell("rnn").torch_path() == "nn.RNN"
    assert peer_cases.peer_cell("rnn").torch_path(loop=True) == peer_cases.LOOP
    assert peer_cases.peer_cell("indrnn").torch_path() == peer_cases.LOOP


def test_a_cell_without_a_peer_module(monkeypatch):
    """Timed for gradpath alone: no peer, its default activation, its own
    parameter shapes, no memory floor; the peers refuse it."""
    real = peer_cases.peer_cell
    monkeypatch.setattr(peer_cases, "peer_cell", lambda c: None if c == "indrnn" else real(c))
    specs = [s for s in peer_cases.kernel_specs() + peer_cases.train_specs()
             if s["cell"] == "indrnn"]
    assert specs and not any(s["peer"] for s in specs)
    assert all(s["activation"] is None for s in specs)
    assert all(s["peer"] for s in peer_cases.kernel_specs() if s["cell"] == "rnn")
    spec = {**tiny("indrnn", "kernel"), "activation": None, "peer": False}
    assert math.isnan(peer_cases.memory_floor(spec))
    with pytest.raises(ValueError, match="no peer module"):
        peer_cases.weights(spec)
    out = peer_worker.gradpath_case(spec)[1]()
    assert set(out) == {"loss", *(f"grad_{k}" for k in cell_class("indrnn")(2, 5, 1)
                                  .param_shapes())}
    with pytest.raises(ValueError, match="no peer module"):
        peer_worker.torch_case(spec)


def test_compare_reports_a_shape_mismatch():
    ref = {"grad_u": np.ones(5)}
    assert peers.compare(ref, {"grad_u": np.ones(5)}, "jax", "kernel") == []
    assert peers.compare(ref, {"grad_u": np.ones(6)}, "jax", "kernel") != []
    assert peers.compare(ref, {}, "jax", "kernel") == ["grad_u missing"]
