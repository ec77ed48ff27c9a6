"""Batch rows across threads: the one place where kernels go parallel.

The sequences of a batch are independent through the whole recurrence, so a
kernel's time loop splits into blocks of batch rows, one per thread, each
running every step for its own rows (its share of the per-step GEMM, its
transcendentals, its BPTT carry). The compiled row functions release the GIL
(``nogil``), so plain Python threads run them in parallel. Waking a sleeping
thread costs tens of microseconds (a futex wake, more when the virtual CPU it
wakes is halted), so a split call hands each thread its block once, for every
pass (:func:`run_phases`, spin barriers between the passes), only calls with
enough work split (:data:`PARALLEL_WORK`), and the helper threads are
:class:`_Worker` s that spin (GIL released) for :data:`SPIN_NS` after a block
before they go to sleep, as OpenMP runtimes' threads do: a call that follows
within that time is picked up in a microsecond.

Every thread adopts the calling thread's floating-point mode for the duration
of its block (:mod:`gradpath.kernels.fpenv`: subnormals flushed) and restores
its own afterwards.

The blocks are a function of the problem's shape alone, never of the number
of threads: one thread runs them one after the other, two run them side by
side, and the results are the same bits (``tests/test_parallel.py``). BLAS
can round a row differently depending on the shape of the call it is part of
(its micro-kernel is chosen by the row's position in the call and by the
call's size), so this is what makes results independent of the machine's
thread count. Blocks start at multiples of :data:`ALIGN` rows.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .fpenv import fp_mode, set_fp_mode
from .gemm import PANEL_BYTES
from .sync import counters, finish_then_spin, open_barriers, publish, spin_until

#: Below this much recurrent work per call (T * B * H * G multiply-adds), all
#: rows stay on the calling thread.
PARALLEL_WORK = 1 << 22
#: Blocks start at multiples of this many rows (or columns): BLAS kernels tile
#: by 4-16 rows, and a block of whole tiles keeps them on their fast path.
ALIGN = 8
#: Blocks per split call: two, for the two cores of the machines this suite
#: is built for (grid jobs on bigger nodes run one job per core instead).
BLOCKS = 2
#: Environment variable capping the threads of one kernel call (default: the
#: CPUs this process may run on). Grid jobs set it to 1: jobs already share
#: the cores.
THREADS_ENV = "GRADPATH_NUM_THREADS"

_pool: dict = {"executor": None, "size": 0}
_pool_lock = threading.Lock()


def threads() -> int:
    """Threads a kernel call may use: ``$GRADPATH_NUM_THREADS``, else the
    CPUs this process may run on."""
    env = os.environ.get(THREADS_ENV, "").strip()
    if env:
        try:
            n = int(env)
        except ValueError as exc:
            raise ValueError(f"{THREADS_ENV}: expected a positive integer, got {env!r}") from exc
        if n < 1:
            raise ValueError(f"{THREADS_ENV}: expected a positive integer, got {env!r}")
        return n
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


def n_blocks(T: int, B: int, H: int, G: int) -> int:
    """How many row blocks a call with these sizes is split into (a function
    of the sizes only: 1, or :data:`BLOCKS` with enough rows and work)."""
    if B < BLOCKS * ALIGN or T * B * H * G < PARALLEL_WORK:
        return 1
    return BLOCKS


#: Rows (t, b) per chunk of the weight gradients that trail the backward pass
#: (:func:`trail_steps`): the gradient's tiles are loaded and stored once per
#: chunk, a few percent of the chunk's multiply-adds at this size.
TRAIL_ROWS = 64
#: A gradient (G x H) up to this size stays in L2 from one chunk to the next.
TRAIL_BYTES = 1 << 19


def trail_steps(T: int, B: int, H: int, G: int, itemsize: int) -> int:
    """Steps per chunk of a call's after-the-loop weight gradients (G columns):
    fewer than T when the call is not split (:func:`n_blocks`) yet has the
    work to keep a helper thread summing the chunks behind the backward pass
    (:func:`gradpath.cells.pipeline.trail`); else T (one chunk, every step).
    A function of the sizes only, as the chunks fix the order of the sums."""
    if (G == 0 or n_blocks(T, B, H, G) > 1 or T * B * H * G < PARALLEL_WORK
            or G * H * itemsize > TRAIL_BYTES):
        return T
    steps = -(-TRAIL_ROWS // B)
    return steps if 2 * steps <= T else T


def n_column_blocks(nb: int, G: int) -> int:
    """Column blocks of a weight gradient with G rows, in a call split into
    ``nb`` row blocks: only wide products are split (narrow ones are cheap,
    and BLAS may switch to a small-matrix kernel for a narrow block)."""
    return nb if G >= 8 * ALIGN else 1


def bounds(nb: int, n: int) -> list[tuple[int, int]]:
    """``nb`` contiguous blocks of ``range(n)``, each starting at a multiple of
    :data:`ALIGN` (the last block takes the remainder)."""
    units = -(-n // ALIGN)
    nb = max(1, min(nb, units))
    return [(c * units // nb * ALIGN, min(n, (c + 1) * units // nb * ALIGN))
            for c in range(nb)]


#: Environment variable choosing how a split call shares each step's
#: recurrent product: ``rows`` (the default: each thread its batch rows) or
#: ``units`` (each thread every row and its share of the hidden units, two
#: spin barriers per step). Measured on a 2-core AMD EPYC (README, "Speed"),
#: ``units`` ties or loses (0.84-1.4x the time of ``rows``) at every size but
#: the float32 LSTM at H = 128 and B <= 24; it is there for CPUs whose caches
#: favour it. The results are the same bits either way.
SPLIT_ENV = "GRADPATH_SPLIT"


def split_by_units() -> bool:
    """Whether ``$GRADPATH_SPLIT`` asks for the split by units (else rows)."""
    mode = os.environ.get(SPLIT_ENV, "rows").strip() or "rows"
    if mode not in ("rows", "units"):
        raise ValueError(f"{SPLIT_ENV}: expected 'rows' or 'units', got {mode!r}")
    return mode == "units"


def unit_bounds(nb: int, H: int, itemsize: int) -> list[tuple[int, int]] | None:
    """The hidden units of each of ``nb`` blocks when a call splits its
    recurrent product by units (:func:`split_by_units`; blocks of whole panels
    of :mod:`gradpath.kernels.gemm`), else None (a split by rows)."""
    nr = PANEL_BYTES // itemsize
    panels = -(-H // nr)
    if nb < 2 or panels < nb or not split_by_units():
        return None
    return [(c * panels // nb * nr, min(H, (c + 1) * panels // nb * nr)) for c in range(nb)]


def _executor(workers: int) -> ThreadPoolExecutor:
    with _pool_lock:
        if _pool["size"] < workers:
            if _pool["executor"] is not None:
                _pool["executor"].shutdown(wait=True)
            _pool["executor"] = ThreadPoolExecutor(workers, thread_name_prefix="gradpath")
            _pool["size"] = workers
        return _pool["executor"]


def run_blocks(fn: Callable, nb: int, n: int, *args, per_block: list | None = None) -> None:
    """``fn(*args, *per_block[c], lo, hi)`` for the ``nb`` :func:`bounds` blocks
    ``c`` of ``range(n)`` (``per_block``: each block's own output arrays).

    With one thread (:func:`threads`) the blocks run in turn on the calling
    thread. Otherwise block 0 runs there and the others on pool threads, each
    in the calling thread's floating-point mode for its duration.
    """
    blocks = bounds(nb, n)
    extra = per_block if per_block is not None else [()] * len(blocks)
    if len(extra) != len(blocks):
        raise ValueError(f"per_block: {len(extra)} entries for {len(blocks)} blocks")
    if len(blocks) == 1 or threads() == 1:
        for (lo, hi), own in zip(blocks, extra, strict=True):
            fn(*args, *own, lo, hi)
        return
    _on_threads([(fn, (*args, *own, lo, hi)) for (lo, hi), own in zip(blocks, extra, strict=True)])


def run_phases(fn: Callable, phases: int, nb: int, n: int, *args, per_block: list,
               barriers: tuple = (), ready: tuple | None = None) -> None:
    """``fn(*args, *per_block[c], parties, p0, p1, lo, hi)``: phases
    ``p0 <= p < p1`` of each :func:`bounds` block ``c`` of ``range(n)``, where
    every block must finish phase p before any starts phase p + 1.

    On several threads each block runs all ``phases`` in one call on a thread
    of its own, and ``fn`` keeps them in step with a barrier of ``parties``
    = the number of blocks (:func:`gradpath.kernels.sync.barrier`): one
    hand-off per call instead of one per phase. On one thread the blocks run
    in turn, phase by phase, with ``parties`` 1 (a barrier with blocks still
    to run after it on the same thread would never open).

    ``barriers``: the counters of every barrier the blocks may wait at. A
    block that raises opens them all (:func:`gradpath.kernels.sync.open_barriers`),
    so that the others finish instead of waiting for it forever, and the
    error is raised here. ``ready``: (counter, count) that block 0 reaches
    early without the GIL, such as a barrier at its entry (:func:`_on_threads`).
    """
    blocks = bounds(nb, n)
    if len(per_block) != len(blocks):
        raise ValueError(f"per_block: {len(per_block)} entries for {len(blocks)} blocks")
    if len(blocks) > 1 and threads() > 1:
        _on_threads([(fn, (*args, *own, len(blocks), 0, phases, lo, hi))
                     for (lo, hi), own in zip(blocks, per_block, strict=True)],
                    _opener(barriers), ready=ready)
        return
    for p in range(phases):
        for (lo, hi), own in zip(blocks, per_block, strict=True):
            fn(*args, *own, 1, p, p + 1, lo, hi)


def run_beside(fn: Callable, args: tuple, helper: Callable, helper_args: tuple,
               counters: tuple = (), ready: tuple | None = None):
    """``fn(*args)`` on the calling thread and ``helper(*helper_args)`` on a
    pool thread at the same time (in the calling thread's floating-point
    mode); return ``fn``'s result.

    The helper only helps: ``fn`` must do everything the helper has not
    taken on when it gets there. So a helper that has not started when
    ``fn`` returns (its core was slow to wake) is cancelled, not waited for;
    one that has started is waited for. ``counters``: every counter either
    side may wait at (:mod:`gradpath.kernels.sync`); a side that raises
    opens them all, so that the other finishes, and the error is raised here.
    ``ready`` as in :func:`run_phases`, for ``fn``.
    """
    return _on_threads([(fn, args), (helper, helper_args)], _opener(counters), optional=True,
                       ready=ready)


def _opener(counters: tuple) -> Callable[[], None]:
    def failed() -> None:
        for state in counters:
            open_barriers(state)

    return failed


def _guarded(fn: Callable, args: tuple, failed: Callable[[], None] | None):
    try:
        return fn(*args)
    except BaseException:
        if failed is not None:
            failed()
        raise


def _in_mode(mode: int, fn: Callable, args: tuple, failed: Callable[[], None] | None) -> None:
    saved = fp_mode()
    set_fp_mode(mode)
    try:
        _guarded(fn, args, failed)
    finally:
        set_fp_mode(saved)


#: Nanoseconds a :class:`_Worker` spins for its next block before it sleeps.
SPIN_NS = 2_000_000
#: Nanoseconds a worker that has its block waits at most for the caller's
#: ready signal before it takes the GIL anyway (:func:`_on_threads`).
READY_NS = 50_000
_CLOCK = getattr(time, "CLOCK_MONOTONIC", 1)
#: How often a caller waiting for a helper checks that its thread is alive.
_ALIVE_NS = 100_000_000


class _Worker:
    """A helper thread that runs one block at a time, posted by the thread
    that holds :data:`_workers_lock`.

    Between blocks it spins on its ``posted`` counter with the GIL released
    (:func:`gradpath.kernels.sync.finish_then_spin`) for :data:`SPIN_NS`,
    then sleeps on an event that the next post sets. The caller waits for
    ``done`` the same way, so neither side pays a futex wake while the
    other keeps calling. A posted block is claimed (under ``claim_lock``) by
    the worker, to run it, or by the caller, to cancel a block that only
    helps (:func:`run_beside`) and has not started.

    ``ready``: the address of a counter and a count, which the caller's own
    block reaches once it runs without the GIL; the worker waits for it
    before it takes the GIL, instead of asking for the GIL while the caller
    still holds it and being put to sleep. ``held`` keeps those counters
    alive until the worker has moved past them.
    """

    def __init__(self, index: int) -> None:
        self.posted, self.done = counters(2)
        self.ready = np.zeros(2, np.int64)
        self.held: dict[int, np.ndarray] = {}
        self.serial = 0  # the caller's number of the last block posted
        self.claimed = 0
        self.claim_lock = threading.Lock()
        self.job: tuple | None = None
        self.error: BaseException | None = None
        self.asleep = False
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"gradpath-{index}", daemon=True)
        self.thread.start()

    def post(self, fn: Callable, args: tuple, mode: int, failed, ready: tuple | None) -> int:
        self.serial += 1
        n = self.serial
        self.job = (n, fn, args, mode, failed)
        counter, count = (self.ready, 0) if ready is None else ready
        self.held[n] = counter
        publish(self.posted, n, self.ready, counter, count)
        if self.asleep:  # both flags are read and written under the GIL
            self.wake.set()
        return n

    def cancel(self, n: int) -> bool:
        """Claim block ``n`` for the caller (it will not run); False if the
        worker took it first."""
        with self.claim_lock:
            if self.claimed >= n:
                return False
            self.claimed = n
        self.job = None
        return True

    def wait(self, n: int) -> None:
        """Until block ``n`` is done; raise what it raised."""
        while not spin_until(self.done, n, _ALIVE_NS, _CLOCK):
            if not self.thread.is_alive():  # never expected: refuse rather than hang
                raise RuntimeError(f"gradpath: helper thread {self.thread.name} died "
                                   "before finishing its block")
        err, self.error, self.job = self.error, None, None
        if err is not None:
            raise err

    def _loop(self) -> None:
        seen = finished = 0
        mode = fp_mode()
        while True:
            if not finish_then_spin(self.done, finished, self.posted, seen + 1, self.ready,
                                    SPIN_NS, READY_NS, _CLOCK):
                self.asleep = True
                if self.posted[0] <= seen:
                    self.wake.wait()
                self.asleep = False
                self.wake.clear()
                continue
            seen = int(self.posted[0])
            for k in list(self.held):  # (list(): one step under the GIL; post adds keys)
                if k <= seen:  # no longer read
                    del self.held[k]
            job = self.job
            if job is None or job[0] != seen:
                continue  # cancelled
            with self.claim_lock:
                mine = self.claimed < seen
                if mine:
                    self.claimed = seen
            if not mine:
                continue
            _, fn, args, want, failed = job
            job = None
            try:
                if want != mode:  # the caller's floating-point mode (this thread keeps it)
                    set_fp_mode(want)
                    mode = want
                _guarded(fn, args, failed)
            except BaseException as exc:  # noqa: BLE001 - raised on the caller's thread
                self.error = exc
            del fn, args, failed
            finished = seen


_workers: list[_Worker] = []
_workers_lock = threading.Lock()


def _forget_workers() -> None:
    """In a forked child: the parent's worker threads and pool threads do
    not exist here (a copied executor could count a missing thread as idle
    and never run what it is given)."""
    global _workers_lock, _pool_lock
    _workers.clear()
    _workers_lock = threading.Lock()
    _pool_lock = threading.Lock()
    _pool["executor"], _pool["size"] = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


def _on_threads(calls: list[tuple[Callable, tuple]], failed: Callable[[], None] | None = None,
                optional: bool = False, ready: tuple | None = None):
    """``fn(*args)`` of the first call on the calling thread (its result
    returned), the others on helper threads at once (in the calling thread's
    floating-point mode); a call that raises calls ``failed`` first.
    ``optional``: the others only help the first, so one not started by the
    time the first returns is cancelled instead of waited for.

    The helpers are the spinning :class:`_Worker` s; a call made while
    another thread's call has them runs its helpers on a pool thread instead
    (each worker serves one caller at a time). ``ready``: (counter, count),
    a count the first call's ``fn`` reaches early once it runs without the
    GIL (:class:`_Worker`); only a hint, the helpers start without it after
    :data:`READY_NS`.
    """
    lock = _workers_lock
    if not lock.acquire(blocking=False):
        return _on_pool(calls, failed, optional)
    try:
        while len(_workers) < len(calls) - 1:
            _workers.append(_Worker(len(_workers)))
        mode = fp_mode()
        posted = [(w, w.post(fn, args, mode, failed, ready))
                  for w, (fn, args) in zip(_workers, calls[1:], strict=False)]
        try:
            return _guarded(*calls[0], failed)
        finally:
            for w, n in posted:
                if not (optional and w.cancel(n)):
                    w.wait(n)
    finally:
        lock.release()


def _on_pool(calls: list[tuple[Callable, tuple]], failed: Callable[[], None] | None,
             optional: bool):
    """:func:`_on_threads` with the helpers on a pool thread (woken per call)."""
    mode = fp_mode()
    futures = [_executor(len(calls) - 1).submit(_in_mode, mode, fn, args, failed)
               for fn, args in calls[1:]]
    try:
        return _guarded(*calls[0], failed)
    finally:
        for f in futures:
            if not (optional and f.cancel()):
                f.result()


def sum_parts(parts: list):
    """The sum of per-block partial results, accumulated into the first and
    always in block order (so the bits depend on the blocks, never on which
    thread finished first)."""
    total = parts[0]
    for p in parts[1:]:
        total += p
    return total

