"""Kernel calls split batch rows over threads; the split changes no bit.

The blocks depend on the problem's shape only, so results are identical for
any number of threads (``GRADPATH_NUM_THREADS``): one thread runs the blocks
in turn, several run them side by side. The problems here split 37 rows into
blocks of 16 and 21, and the LSTM's weight gradients into column blocks too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from itertools import pairwise

import numpy as np
import pytest
from problems import CELL_IDS, CELLS, compare_results, make_problem

from gradpath.kernels import parallel


def outputs(res) -> list[np.ndarray]:
    out = [np.array(res.loss), res.grad_norms, res.h0_grad, *res.grads.values()]
    if res.cell_grad_norms is not None:
        out += [res.cell_grad_norms, res.c0_grad]
    return out


@pytest.fixture
def threads(monkeypatch):
    def use(n: int) -> None:
        monkeypatch.setenv(parallel.THREADS_ENV, str(n))
    return use


def big_problem(cell, activation, dtype, score, loss="mse", D=3):
    """Large enough to split (T * B * H * G above PARALLEL_WORK), ragged."""
    p = make_problem(cell, activation, loss=loss, score=score, T=60, B=37, D=D, H=48, O=2,
                     ragged=True, seed=3).astype(dtype)
    T, B, _, H, _ = p.shape
    assert T * B * H * H >= parallel.PARALLEL_WORK
    return p


@pytest.mark.parametrize("D", [3, 12], ids=["fused-input", "gemm-input"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("score", ["last", "all"])
@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_results_do_not_depend_on_the_thread_count(threads, cell, activation, score, dtype, D):
    p = big_problem(cell, activation, dtype, score, D=D)
    threads(1)
    assert parallel.n_blocks(60, 37, 48, 48) == parallel.BLOCKS > 1
    ref = outputs(p.kernel())
    for n in (2, 3, 8):
        threads(n)
        for a, b in zip(outputs(p.kernel()), ref, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("score", ["last", "all"])
@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_split_by_units_gives_the_same_bits(threads, monkeypatch, cell, activation, score,
                                            dtype):
    """Splitting each step's recurrent product by hidden units (every row, two
    barriers per step) instead of by rows changes no bit, and it really runs
    split: two blocks of whole panels, on two threads."""
    p = big_problem(cell, activation, dtype, score)
    threads(2)
    ref = outputs(p.kernel())
    monkeypatch.setenv(parallel.SPLIT_ENV, "units")
    H = p.shape[3]
    units = parallel.unit_bounds(2, H, np.dtype(dtype).itemsize)
    assert units is not None and units[0][0] == 0 and units[-1][1] == H and len(units) == 2
    for _ in range(3):  # a race would show as a difference in some run
        for a, b in zip(outputs(p.kernel()), ref, strict=True):
            np.testing.assert_array_equal(a, b)


def test_split_env_is_checked(monkeypatch):
    monkeypatch.setenv(parallel.SPLIT_ENV, "diagonal")
    with pytest.raises(ValueError, match="GRADPATH_SPLIT"):
        parallel.split_by_units()


@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_forward_states_do_not_depend_on_the_thread_count(threads, cell, activation):
    p = big_problem(cell, activation, np.float64, "last")
    q = p.params
    T, B, _, H, _ = p.shape
    lengths = p.lengths
    h0 = np.zeros((B, H))
    init = tuple(h0 for _ in p.model.initial_states)  # (h0,) or (h0, c0)
    got = {}
    for n in (1, 2, 3):
        threads(n)
        got[n] = list(p.model.states(q, p.x, lengths, init))
    for n in (2, 3):
        for a, b in zip(got[n], got[1], strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("D", [3, 12], ids=["fused-input", "gemm-input"])
@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_split_calls_match_the_twin(threads, cell, activation, D):
    """The split path (not only the serial one) computes the right numbers."""
    p = big_problem(cell, activation, np.float64, "all", loss="xent", D=D)
    threads(2)
    compare_results(p.kernel(), p.twin(), 1e-11, cell)


def test_small_calls_are_not_split(threads):
    threads(8)
    assert parallel.n_blocks(T=10, B=40, H=16, G=16) == 1  # too little work
    B = parallel.BLOCKS * parallel.ALIGN - 1  # under two aligned blocks
    assert parallel.n_blocks(T=10_000, B=B, H=256, G=256) == 1
    assert parallel.n_column_blocks(2, 8 * parallel.ALIGN - 1) == 1


def test_blocks_are_aligned_and_cover_everything():
    A = parallel.ALIGN
    for n in (1, A - 1, A, A + 1, 3 * A + 5, 64, 1024):
        for nb in (1, 2, 3, 7):
            blocks = parallel.bounds(nb, n)
            assert blocks[0][0] == 0 and blocks[-1][1] == n
            assert all(hi == lo2 for (_, hi), (lo2, _) in pairwise(blocks))
            assert all(lo % A == 0 and hi > lo for lo, hi in blocks)


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5"])
def test_bad_thread_count_is_a_clear_error(threads, bad):
    threads(bad)
    with pytest.raises(ValueError, match=parallel.THREADS_ENV):
        parallel.threads()


def test_phases_run_in_order_on_one_thread_and_at_once_on_several(threads):
    """One thread: phase by phase, the blocks in turn, one party per barrier;
    several: each block every phase in one call, all blocks party to it."""
    calls = []

    def fn(tag, c, parties, p0, p1, lo, hi):
        calls.append((tag, c, parties, p0, p1, lo, hi))

    n = 3 * parallel.ALIGN
    own = [(c,) for c in range(2)]
    threads(1)
    parallel.run_phases(fn, 3, 2, n, "x", per_block=own)
    (a0, a1), (b0, b1) = parallel.bounds(2, n)
    assert calls == [("x", c, 1, p, p + 1, lo, hi) for p in range(3)
                     for c, (lo, hi) in enumerate([(a0, a1), (b0, b1)])]
    calls.clear()
    threads(2)
    parallel.run_phases(fn, 3, 2, n, "x", per_block=own)
    assert sorted(calls) == [("x", 0, 2, 0, 3, a0, a1), ("x", 1, 2, 0, 3, b0, b1)]


def test_a_failing_block_does_not_leave_the_others_waiting(threads):
    """A block that raises opens the call's barriers: the others finish, and
    the error reaches the caller instead of a hung call."""
    from numba import njit

    from gradpath.kernels.sync import barrier

    @njit(nogil=True)
    def wait_at_every_barrier(state, parties, p0, p1):
        passed = 0
        for _ in range(p0 + 1, p1):
            passed = barrier(state, parties, passed)

    def fn(state, c, parties, p0, p1, lo, hi):
        if c == 1:
            raise RuntimeError("block 1 failed")
        wait_at_every_barrier(state, parties, p0, p1)

    threads(2)
    state = np.zeros(1, np.int64)
    wait_at_every_barrier(np.zeros(1, np.int64), 1, 0, 2)  # compiled before the clock runs
    raised = raised_within(lambda: parallel.run_phases(
        fn, 4, 2, 4 * parallel.ALIGN, state, per_block=[(0,), (1,)], barriers=(state,)),
        "block 0 still waits at a barrier for the failed block 1")
    assert raised == ["block 1 failed"]


def raised_within(call, hung: str, seconds: float = 60) -> list[str]:
    """Run ``call`` on a daemon thread; fail with ``hung`` unless it returns
    within ``seconds``; the messages of the RuntimeErrors it raised."""
    import threading

    raised = []

    def run():
        try:
            call()
        except RuntimeError as exc:
            raised.append(str(exc))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout=seconds)
    assert not t.is_alive(), hung
    return raised


def trail_problem(cell, activation, dtype, score):
    """Too few rows to split (B = 3) but the work to keep a helper summing
    the weight gradients behind the backward pass; ragged."""
    p = make_problem(cell, activation, loss="mse", score=score, T=220, B=3, D=3, H=48, O=2,
                     ragged=True, seed=5).astype(dtype)
    return p


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("score", ["last", "all"])
@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_trailing_weight_gradients_do_not_depend_on_the_thread_count(threads, cell, activation,
                                                                     score, dtype):
    """A call that is not split but has its weight gradients summed in chunks
    by a helper thread behind the backward pass (the gated cells) gives the
    same bits on 1, 2 and 3 threads, call after call."""
    p = trail_problem(cell, activation, dtype, score)
    T, B, _, H, _ = p.shape
    k = p.model.kernels
    G = p.model.gates * H
    assert parallel.n_blocks(T, B, H, G) == 1
    if k.trail is not None:
        steps = parallel.trail_steps(T, B, H, G, np.dtype(dtype).itemsize)
        assert 1 < steps < T // 2  # several chunks, so the helper has something to trail
    threads(1)
    ref = outputs(p.kernel())
    for n in (2, 3, 2, 2):  # a race would show as a difference in some run
        threads(n)
        for a, b in zip(outputs(p.kernel()), ref, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("cell", "activation"), CELLS, ids=CELL_IDS)
def test_trailing_weight_gradients_match_the_twin(threads, cell, activation):
    p = trail_problem(cell, activation, np.float64, "all")
    threads(2)
    compare_results(p.kernel(), p.twin(), 1e-11, cell)


def test_trail_chunks_depend_on_the_sizes_alone(threads):
    """One chunk (every step at once) for split calls, little work and
    gradients too big for L2; else chunks of about TRAIL_ROWS rows; never a
    matter of the thread count."""
    f = parallel.trail_steps
    for n in (1, 2, 8):
        threads(n)
        assert f(1000, 1, 64, 256, 8) == parallel.TRAIL_ROWS
        assert f(1000, 3, 64, 256, 8) == -(-parallel.TRAIL_ROWS // 3)
        assert f(100, 1, 64, 256, 8) == 100  # T * B * H * G under PARALLEL_WORK
        assert f(1000, 32, 64, 256, 8) == 1000  # split by rows
        assert f(1000, 1, 512, 2048, 4) == 1000  # 4 MB of gradient
        assert f(100, 1, 128, 512, 4) == 100  # one chunk of 64 would leave the helper nothing
        assert f(1000, 1, 64, 0, 8) == 1000  # no after-the-loop gradients


@pytest.mark.parametrize("failing", ["main", "helper"])
def test_a_failing_side_does_not_leave_the_other_waiting(threads, failing):
    """run_beside: whichever side raises opens the counters the other waits
    at, and the error reaches the caller instead of a hung call."""
    from numba import njit

    from gradpath.kernels.sync import wait_for

    @njit(nogil=True)
    def wait(state):
        wait_for(state, 1)
        return 0

    def side(name, state):
        if name == failing:
            raise RuntimeError(f"{name} failed")
        return wait(state)

    threads(2)
    wait(np.ones(1, np.int64))  # compiled before the clock runs
    state = np.zeros(1, np.int64)
    raised = raised_within(lambda: parallel.run_beside(
        side, ("main", state), side, ("helper", state), counters=(state,)),
        "the other side still waits for the failed one")
    assert raised == [f"{failing} failed"]


def test_borrowed_arrays_share_the_data_and_count_no_owner():
    """``borrow`` keeps data, shape and strides (writes go through) and drops
    the owner: no thread's reference counting touches a shared array's count."""
    from llvmlite import ir as llvm_ir
    from numba import njit, types
    from numba.extending import intrinsic

    from gradpath.kernels.common import borrow

    @intrinsic
    def owner(typingctx, a):
        def codegen(context, builder, signature, args):
            mi = context.make_array(a)(context, builder, args[0]).meminfo
            return builder.ptrtoint(mi, llvm_ir.IntType(64))
        return types.int64(a), codegen

    @njit
    def use(a, pair):
        b, (c, n) = borrow((a, pair))
        row = b[1]  # a view of a borrowed array
        row[1] = 6.5  # writes go through
        c[0] += n
        return owner(a), owner(b), owner(row), owner(c), b.shape, b.strides, row.sum()

    full = np.arange(12.0).reshape(3, 4)
    a = full[:, ::2]  # strided: the borrowed array keeps the strides
    c = np.zeros(2, np.int64)
    own_a, own_b, own_row, own_c, shape, strides, total = use(a, (c, 5))
    assert own_a != 0 and own_b == own_row == own_c == 0
    assert shape == a.shape and strides == a.strides
    assert full[1].tolist() == [4.0, 5.0, 6.5, 7.0] and total == 4.0 + 6.5
    assert c.tolist() == [5, 0]


def test_counters_sit_alone_on_their_cache_lines():
    """The aligned COUNTER_BYTES around each counter lies inside its buffer
    and holds no other counter, with a COUNTER_BYTES gap before the first and
    after the last."""
    from gradpath.kernels.sync import COUNTER_BYTES, counters

    for n in (1, 3, 4):
        cs = counters(n)
        assert len(cs) == n
        base = cs[0].base
        lo = base.ctypes.data
        hi = lo + base.nbytes
        addrs = [c.ctypes.data for c in cs]
        assert all(c.base is base and c.shape == (1,) and c[0] == 0 for c in cs)
        blocks = [a - a % COUNTER_BYTES for a in addrs]
        assert all(lo <= b0 and b0 + COUNTER_BYTES <= hi for b0 in blocks)
        assert all(sum(b0 <= a < b0 + COUNTER_BYTES for a in addrs) == 1 for b0 in blocks)
        assert all(b - a >= COUNTER_BYTES for a, b in pairwise(addrs))
        assert addrs[0] - lo >= COUNTER_BYTES and hi - (addrs[-1] + 8) >= COUNTER_BYTES


def same_bits(a, b) -> None:
    for x, y in zip(outputs(a), outputs(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_helpers_sleep_between_calls_and_wake_for_the_next(threads, monkeypatch):
    """A worker that waited SPIN_NS for its next block sleeps; the next split
    call wakes it and gets the same bits."""
    import time

    p = big_problem("lstm", None, np.float64, "last")
    threads(1)
    ref = p.kernel()
    threads(2)
    monkeypatch.setattr(parallel, "SPIN_NS", 100_000)
    same_bits(p.kernel(), ref)
    deadline = time.monotonic() + 30
    while not all(w.asleep for w in parallel._workers) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert parallel._workers and all(w.asleep for w in parallel._workers)
    same_bits(raised_or_result(p.kernel, "the sleeping helper never woke"), ref)


def raised_or_result(call, hung: str, seconds: float = 60):
    """``call()`` on a daemon thread; fail with ``hung`` unless it returns
    within ``seconds``; its result (or its exception, raised here)."""
    import threading

    out = {}

    def run():
        try:
            out["result"] = call()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout=seconds)
    assert not t.is_alive(), hung
    if "error" in out:
        raise out["error"]
    return out["result"]


def test_calls_from_several_threads_get_their_own_results(threads):
    """Each helper serves one caller at a time: a split call made while
    another thread's call has them runs its helper on a pool thread; every
    caller gets its own problem's bits."""
    import threading

    problems = [big_problem(cell, act, np.float64, "all") for cell, act in
                (("rnn", "tanh"), ("gru", None), ("lstm", None))]
    threads(1)
    refs = [p.kernel() for p in problems]
    threads(2)
    with parallel._workers_lock:  # the helpers busy: this call takes the pool
        same_bits(problems[0].kernel(), refs[0])
    got: dict = {}
    start = threading.Barrier(len(problems))

    def run(i):
        start.wait()
        got[i] = [problems[i].kernel() for _ in range(4)]

    ts = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(problems))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in ts), "a caller hung"
    for i, ref in enumerate(refs):
        assert len(got[i]) == 4
        for res in got[i]:
            same_bits(res, ref)


def test_a_helper_not_started_is_cancelled(threads, monkeypatch):
    """run_beside: a helper still waiting for the caller's ready signal when
    the caller returns never runs; the next call is served."""
    import time

    ran = []
    threads(2)
    monkeypatch.setattr(parallel, "READY_NS", 200_000_000)
    never = np.zeros(1, np.int64)  # a ready count the caller never reaches
    out = parallel.run_beside(lambda: "main", (), lambda: ran.append(1), (),
                              ready=(never, 1))
    assert out == "main"
    time.sleep(0.5)  # past READY_NS: the worker has seen the block cancelled
    assert ran == []
    assert parallel.run_beside(lambda: "again", (), lambda: ran.append(2), ()) == "again"
    assert ran in ([], [2])  # the helper may start before the caller returns, or not


def test_a_forked_child_gets_helpers_of_its_own(threads, tmp_path):
    """After a fork, the parent's worker and pool threads do not exist in the
    child: the child starts its own, and its split calls (on a worker, and
    on the pool) give the same bits."""
    import os

    p = big_problem("gru", None, np.float64, "last")
    threads(1)
    ref = p.kernel()
    threads(2)
    p.kernel()  # the parent's workers exist now
    with parallel._workers_lock:
        p.kernel()  # and its pool thread
    path = tmp_path / "child.npz"
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            res = p.kernel()
            with parallel._workers_lock:  # the helpers busy: the pool's turn
                pooled = p.kernel()
            np.savez(path, *outputs(res), *outputs(pooled))
            code = 0
        finally:
            os._exit(code)
    deadline = 120
    import time
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        pytest.fail("the forked child hung in a split call")
    assert os.waitstatus_to_exitcode(status) == 0
    want = outputs(ref) * 2  # the workers' call, then the pool's
    with np.load(path) as z:
        assert len(z.files) == len(want)
        for i, w in enumerate(want):
            np.testing.assert_array_equal(z[f"arr_{i}"], w)


def test_a_caller_whose_helper_thread_died_gets_an_error(monkeypatch):
    """Never expected, but refused loudly rather than waited for forever."""
    import threading

    from gradpath.kernels.sync import counters

    monkeypatch.setattr(parallel, "_ALIVE_NS", 1_000_000)
    w = parallel._Worker.__new__(parallel._Worker)
    (w.done,) = counters(1)
    w.error = w.job = None
    w.thread = threading.Thread(target=lambda: None, name="gradpath-dead")
    w.thread.start()
    w.thread.join()
    with pytest.raises(RuntimeError, match="gradpath-dead died"):
        w.wait(1)


_KEEP_DEMO = """
import numpy as np
from numba import njit, objmode
from numba.core.runtime import rtsys
from gradpath.kernels.common import borrow, keep


def frees():
    return rtsys.get_allocation_stats().mi_free


@njit
def kept(n):
    a = np.full(n, 1.0)
    b = borrow(a)
    with objmode(f="int64"):
        f = frees()
    c = np.zeros(n)  # a's memory, were a released after its last use
    s = b.sum()
    keep(a)
    return s, c.sum(), f


@njit
def not_kept(n):
    a = np.full(n, 1.0)
    b = borrow(a)
    with objmode(f="int64"):
        f = frees()
    return b.sum(), f


kept(10), not_kept(10)  # compiled
f0 = frees()
s, zeros, f1 = kept(1000)
g0 = frees()
_, g1 = not_kept(1000)
print(s, zeros, f1 - f0, g1 - g0)
"""


def test_keep_holds_what_a_kernel_borrowed_from_its_own_arrays():
    """Numba releases an array after its last use, and a borrowed copy is not
    one: without ``keep`` the array is released while its borrowed copy is
    still read (the second function: one release counted by Numba's runtime
    before the copy's sum); with ``keep`` none, and the next allocation
    cannot take the copy's memory. Counted, not inferred from whether malloc
    hands the freed block straight back (which depends on the heap's history
    and failed this test twice)."""
    out = subprocess.run([sys.executable, "-c", _KEEP_DEMO], capture_output=True, text=True,
                         check=True, env={**os.environ, "NUMBA_NRT_STATS": "1"}).stdout.split()
    kept_sum, kept_zeros, kept_frees, not_kept_frees = map(float, out)
    assert (kept_sum, kept_zeros) == (1000.0, 0.0)
    assert kept_frees == 0  # a is held until keep(a)
    assert not_kept_frees == 1  # the hazard keep is for: a released after borrow(a)
