"""One model object used from many Python threads at once gives every thread
the serial run's results, bit for bit.

The kernels release the GIL, so calls on one model from several threads run
side by side; each thread keeps its own scratch arrays
(``_Model._workspace``), and BLAS stays single-threaded until the last
concurrent kernel call has returned (``kernels.fpenv``).
"""

from __future__ import annotations

import copy
import pickle
import threading

import numpy as np
import pytest
from problems import CELL_IDS, CELLS, make_problem
from test_parallel import outputs

from gradpath.kernels import parallel

THREADS = 6
CALLS = 25


def _inputs(p, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` different (x, target) pairs of the problem's shapes."""
    rng = np.random.default_rng(7)
    return [(rng.standard_normal(p.x.shape), rng.standard_normal(p.target.shape))
            for _ in range(n)]


def _call(p, x, target):
    kw = {"loss": p.loss, "score": p.score, "lengths": p.lengths, "h0": p.h0}
    if p.cell == "lstm":
        kw["c0"] = p.c0
    return p.model.loss_and_grads(p.params, x, target, **kw)


def _hammer(p, inputs) -> list[list[list[np.ndarray]]]:
    """Every thread calls the one model on every input (each thread in its own
    order, so that different inputs overlap); results by thread and input."""
    results = [[None] * len(inputs) for _ in range(THREADS)]
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def work(k: int) -> None:
        try:
            start.wait()
            order = np.random.default_rng(k).permutation(len(inputs))
            for i in order:
                results[k][i] = outputs(_call(p, *inputs[i]))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(THREADS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors, errors
    return results


@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("size", ["small", "split"])
def test_one_model_shared_by_threads_gives_the_serial_results(cell, activation, size):
    """The issue's case (H = 32, T = 50), and one large enough for each call
    to split its rows over the kernel threads as well."""
    if size == "small":
        p = make_problem(cell, activation, score="all", T=50, B=4, D=2, H=32, O=2, seed=1)
    else:
        p = make_problem(cell, activation, score="all", T=60, B=37, D=3, H=48, O=2,
                         ragged=True, seed=3)
        assert parallel.n_blocks(60, 37, 48, 48) > 1
    inputs = _inputs(p, CALLS)
    serial = [outputs(_call(p, *xy)) for xy in inputs]
    wrong = 0
    for per_thread in _hammer(p, inputs):
        for got, ref in zip(per_thread, serial, strict=True):
            wrong += not all(np.array_equal(a, b) for a, b in zip(got, ref, strict=True))
    assert wrong == 0, f"{wrong} of {THREADS * CALLS} concurrent results differ from serial"


def test_blas_keeps_one_thread_until_the_last_concurrent_call_returns(monkeypatch):
    """The first kernel call in limits BLAS to one thread, the last one out
    restores it, whatever the order in which overlapping calls return."""
    from gradpath.kernels import fpenv

    class Lib:
        def __init__(self):
            self.n = 4

        def get_num_threads(self):
            return self.n

        def set_num_threads(self, n):
            self.n = n

    lib = Lib()
    blas = fpenv._BlasThreads()
    monkeypatch.setattr(blas, "libs", lambda: [lib])
    blas.enter()          # call A starts
    blas.enter()          # call B starts while A runs
    assert lib.n == 1
    blas.exit()           # A returns first: B still computes on one BLAS thread
    assert lib.n == 1
    blas.exit()           # B returns: BLAS gets its threads back
    assert lib.n == 4


@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_a_model_pickles_and_copies_without_its_scratch(cell, activation):
    p = make_problem(cell, activation, T=5, B=2, H=4)
    ref = outputs(p.kernel())
    for clone in (pickle.loads(pickle.dumps(p.model)), copy.deepcopy(p.model)):
        q = copy.copy(p)
        q.model = clone
        for a, b in zip(outputs(q.kernel()), ref, strict=True):
            np.testing.assert_array_equal(a, b)
