"""The compile notice: a line on stderr while the Numba kernels compile.

On a cache miss (a fresh clone, a new machine, an edited kernel file) the
first call of a kernel compiles it instead of loading it from Numba's
on-disk cache, for tens of seconds; :class:`CompileNotice` says so while it
happens, and the entry point that returns closes it with the compile time
(:func:`gradpath.kernels.fpenv.entry`). ``GRADPATH_QUIET=1`` silences it, and
so does the ``gradpath`` logger (:func:`say`).

Importing this module registers :data:`COMPILE_NOTICE` as a listener of
Numba's ``"numba:compile"`` event; :mod:`gradpath.kernels.jit` imports it, so
it listens before any kernel is compiled.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable

from numba.core import event

#: Environment variable that silences the compile notice (any value but "" or "0").
QUIET_ENV = "GRADPATH_QUIET"
#: Compiling for this long (in total, in one process) before the notice shows:
#: a kernel loaded from the cache never compiles, and a stray small compile
#: (well under a second) is not worth a word.
NOTICE_DELAY_S = 1.0
NOTICE = ("compiling the Numba kernels for this machine (first use after an install or an "
          "update: 15-30 s per model and dtype, cached afterwards)...")

NOTICE_AGAIN = "compiling more Numba kernels for this machine (cached afterwards)..."

log = logging.getLogger("gradpath")


def say(message: str) -> None:
    """Tell the user ``message``: through the ``gradpath`` logger at INFO if
    logging is configured (any handler on it or its ancestors), else as a
    ``gradpath: ...`` line on stderr unless that logger's level was set above
    INFO; nothing with ``$GRADPATH_QUIET`` set."""
    if os.environ.get(QUIET_ENV, "").strip() not in ("", "0"):
        return
    if log.hasHandlers():
        log.info(message)
    elif log.level <= logging.INFO:  # NOTSET included: not configured
        try:
            sys.stderr.write(f"gradpath: {message}\n")
            sys.stderr.flush()
        except (AttributeError, OSError, ValueError):  # no stderr, or closed
            pass


class CompileNotice(event.Listener):
    """Says on stderr that the kernels are compiling, while they do.

    A listener of Numba's ``"numba:compile"`` event (Numba's event API,
    ``numba.core.event``), which a dispatcher broadcasts around a real
    compilation only: a signature already compiled in the process, or loaded
    from the on-disk cache, broadcasts nothing. Once a process has spent
    ``delay`` seconds compiling and is still at it, a timer thread prints
    :data:`NOTICE` (:data:`NOTICE_AGAIN` after the first); the next kernel
    entry point to return (:func:`gradpath.kernels.fpenv.entry`) then prints
    the compile time and closes the notice, which re-arms it. Compiles of
    Numba code outside gradpath are ignored. Entry points test only :attr:`open` (a bool)
    after each call; the listener itself runs only while Numba compiles.

    Thread-safe: compiles may start on any thread (Numba serialises them
    with its compiler lock), nested compiles count once, and the state is
    changed under a lock.
    """

    def __init__(self, delay: float = NOTICE_DELAY_S,
                 emit: Callable[[str], None] = say, package: str = "gradpath") -> None:
        #: notice shown and its closing line not yet: what entry points test
        self.open = False
        self.delay = delay
        self._emit = emit
        self._lock = threading.Lock()
        self._depth = threading.local()  # nested compiles on this thread
        self._package = package  # compiles of functions from other modules are ignored
        self._shown = False
        self._notices = 0  # notices said so far
        self._closed_at = 0.0  # compile seconds when the last notice closed
        self._active = 0  # threads inside a top-level compile
        self._grouped = 0  # open grouped() blocks: one notice for all their compiles
        self._since = 0.0  # perf_counter when _active last became nonzero
        self._seconds = 0.0  # compiling time before _since
        self._epoch = 0  # counts the 0 -> 1 transitions of _active
        self._timer: threading.Timer | None = None

    def compile_seconds(self) -> float:
        """Time this process has spent compiling so far (wall clock)."""
        with self._lock:
            return self._seconds_locked()

    def _seconds_locked(self) -> float:
        running = time.perf_counter() - self._since if self._active else 0.0
        return self._seconds + running

    def _ours(self, event) -> bool:
        """Whether the compile is of a gradpath kernel (not the user's own Numba code)."""
        disp = (event.data or {}).get("dispatcher") if hasattr(event, "data") else None
        func = getattr(disp, "py_func", None)
        return func is None or getattr(func, "__module__", "").startswith(self._package)

    def on_start(self, event) -> None:
        if not self._ours(event):
            return
        depth = getattr(self._depth, "n", 0)
        self._depth.n = depth + 1
        if depth:
            return
        with self._lock:
            self._active += 1
            if self._active > 1:
                return
            self._since = time.perf_counter()
            self._epoch += 1
            if not self._shown:
                wait = max(0.0, self.delay - (self._seconds - self._closed_at))
                self._timer = threading.Timer(wait, self._announce, (self._epoch,))
                self._timer.daemon = True  # never holds up the interpreter's exit
                self._timer.start()

    def on_end(self, event) -> None:
        if not self._ours(event):
            return
        self._depth.n -= 1
        if self._depth.n:
            return
        with self._lock:
            self._active -= 1
            if self._active:
                return
            self._seconds += time.perf_counter() - self._since
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _announce(self, epoch: int) -> None:
        # emitted under the lock, so the closing line can never come first
        with self._lock:
            if self._shown or not self._active or epoch != self._epoch:
                return  # the compile ended (or another began) meanwhile
            self._shown = True
            self.open = True
            self._emit(NOTICE if self._notices == 0 else NOTICE_AGAIN)
            self._notices += 1

    @contextlib.contextmanager
    def grouped(self):
        """Within the block, all compiles share one notice, closed (with their
        total time) when the block ends, instead of one per entry point
        (:func:`gradpath.warmup` compiles a dozen of them in a row)."""
        with self._lock:
            self._grouped += 1
        try:
            yield self
        finally:
            with self._lock:
                self._grouped -= 1
            self.finish()

    def finish(self) -> None:
        """Print the compile time and close the notice, unless a compile is
        still running (on another thread): a later return closes it then."""
        with self._lock:
            if not self.open or self._active or self._grouped:
                return
            self.open = False
            # re-armed: a later compile in this process (another kernel, dtype
            # or shape class) that runs long is announced again, timed afresh
            self._shown = False
            seconds, self._closed_at = self._seconds - self._closed_at, self._seconds
            self._emit(f"compiled in {seconds:.0f} s")


#: The process's notice, listening from the import of this module on.
COMPILE_NOTICE = CompileNotice()
event.register("numba:compile", COMPILE_NOTICE)
