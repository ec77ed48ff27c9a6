"""The notice on stderr while the Numba kernels compile (issue 11: "the first
call on a fresh clone compiles for about 30 s in silence").

It shows when a process compiles (an empty Numba cache) and not when it loads
the kernels from the cache; it is said once, closed by the compile time, and
``GRADPATH_QUIET=1`` or the ``gradpath`` logger silence it.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
import time

import numba
import pytest
from numba.core import event

from gradpath.kernels import fpenv
from gradpath.notice import (
    COMPILE_NOTICE,
    NOTICE,
    NOTICE_AGAIN,
    NOTICE_DELAY_S,
    QUIET_ENV,
    CompileNotice,
    log,
    say,
)

#: One small kernel (the RNN adjoint: about 5 s to compile), then a marker on
#: stderr once the call has returned, and the process's compile time on stdout.
SCRIPT = """
import sys
import numpy as np
from gradpath.cells.rnn import adjoint_lognorms
from gradpath.notice import COMPILE_NOTICE
out = adjoint_lognorms(np.zeros((4, 1, 2)), np.eye(2), 0, np.ones((1, 2)))
sys.stderr.write("RETURNED\\n")
print(out.ravel().tolist(), COMPILE_NOTICE.compile_seconds())
"""


def _run(cache_dir) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != QUIET_ENV}
    env["NUMBA_CACHE_DIR"] = str(cache_dir)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.slow
def test_notice_while_compiling_and_not_when_loading_from_the_cache(tmp_path):
    cache = tmp_path / "numba-cache"
    cold = _run(cache)  # an empty cache: compiles
    ours = [line for line in cold.stderr.splitlines()
            if line.startswith("gradpath:") or line == "RETURNED"]
    assert ours[0] == f"gradpath: {NOTICE}", cold.stderr
    assert re.fullmatch(r"gradpath: compiled in \d+ s", ours[1]), cold.stderr
    assert ours[2:] == ["RETURNED"], cold.stderr  # said while compiling, closed before return
    values, seconds = cold.stdout.rsplit("]", 1)
    assert float(seconds) > NOTICE_DELAY_S
    assert any(cache.rglob("*.nbi"))  # the cache was filled

    warm = _run(cache)  # the same cache, now filled: loads
    assert "gradpath" not in warm.stderr and "RETURNED" in warm.stderr
    values_warm, seconds_warm = warm.stdout.rsplit("]", 1)
    assert float(seconds_warm) == 0.0  # nothing compiled at all
    assert values_warm == values


# -- the notice's logic, with Numba's compile events simulated -----------------------------------
class Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, message: str) -> None:
        with self.lock:
            self.lines.append(message)

    def wait_for(self, n: int, timeout: float = 10.0) -> list[str]:
        end = time.monotonic() + timeout
        while len(self.lines) < n and time.monotonic() < end:
            time.sleep(0.005)
        return list(self.lines)


def closing(line: str) -> bool:
    return re.fullmatch(r"compiled in \d+ s", line) is not None


def _notice(delay: float = 0.05, package: str = "gradpath") -> tuple[CompileNotice, Recorder]:
    said = Recorder()
    return CompileNotice(delay=delay, emit=said, package=package), said


def test_a_short_compile_says_nothing():
    notice, said = _notice(delay=0.2)
    notice.on_start(None)
    notice.on_end(None)
    time.sleep(0.4)
    assert said.lines == [] and not notice.open
    notice.finish()
    assert said.lines == []


def test_a_long_compile_is_said_and_closed_with_its_time_then_rearmed():
    notice, said = _notice()
    notice.on_start(None)
    notice.on_start(None)  # a nested compile (a callee) counts once
    notice.on_end(None)
    assert said.wait_for(1) == [NOTICE]  # still compiling: said now
    assert notice.open
    notice.finish()  # an entry returning while a compile runs (another thread's)
    assert said.lines == [NOTICE] and notice.open
    notice.on_end(None)
    notice.finish()
    assert said.lines[0] == NOTICE and closing(said.lines[1]) and not notice.open
    notice.on_start(None)  # a later long compile (another kernel): said again
    assert said.wait_for(3)[2] == NOTICE_AGAIN
    notice.on_end(None)
    notice.finish()
    assert len(said.lines) == 4 and closing(said.lines[3]) and not notice.open


def test_a_grouped_block_says_it_once_for_all_its_compiles():
    notice, said = _notice()
    with notice.grouped():
        for _ in range(3):  # three entry points, each compiling for a while
            notice.on_start(None)
            time.sleep(0.15)
            notice.on_end(None)
            notice.finish()  # an entry point returning inside the block
        assert said.lines == [NOTICE] and notice.open
    assert said.lines[0] == NOTICE and closing(said.lines[1]) and len(said.lines) == 2
    assert not notice.open


def test_compile_time_adds_up_across_short_compiles():
    notice, said = _notice(delay=0.3)
    notice.on_start(None)
    time.sleep(0.2)
    notice.on_end(None)
    time.sleep(0.2)
    assert said.lines == []  # 0.2 s of compiling: below the delay
    notice.on_start(None)  # another compile takes the total past it
    assert said.wait_for(1) == [NOTICE]
    assert notice.compile_seconds() >= 0.3
    notice.on_end(None)


def test_compiles_on_many_threads_say_it_once():
    notice, said = _notice()
    go = threading.Barrier(8)

    def compile_for_a_while():
        go.wait()
        notice.on_start(None)
        time.sleep(0.3)
        notice.on_end(None)
        notice.finish()

    threads = [threading.Thread(target=compile_for_a_while) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert said.lines[0] == NOTICE
    assert len(said.lines) == 2 and closing(said.lines[1])
    assert not notice.open


def test_entry_points_close_the_notice(monkeypatch):
    notice, said = _notice()
    monkeypatch.setattr(fpenv, "COMPILE_NOTICE", notice)

    def kernel(x):
        notice.on_start(None)  # what Numba does on a cache miss
        said.wait_for(1)
        notice.on_end(None)
        return x + 1

    call = fpenv.entry(kernel, blas=False)
    assert call(1) == 2
    assert said.lines[0] == NOTICE and closing(said.lines[1])
    assert call(2) == 3 and len(said.lines) == 2


def test_numba_compile_events_reach_the_listener():
    """Numba broadcasts "numba:compile" around a real compilation only."""
    notice, said = _notice(delay=60.0, package=__name__)
    others, _ = _notice(delay=60.0)  # listens for gradpath's kernels only

    @numba.njit(cache=False)
    def add_one(x):
        return x + 1

    with event.install_listener("numba:compile", notice), \
            event.install_listener("numba:compile", others):
        assert add_one(1) == 2  # compiles
        first = notice.compile_seconds()
        assert add_one(2) == 3  # compiled already
    assert first > 0.0 and notice.compile_seconds() == first
    assert said.lines == []
    assert others.compile_seconds() == 0.0  # a user's own Numba code is not ours


def test_the_process_listens():
    assert COMPILE_NOTICE in event._registered["numba:compile"]
    assert fpenv.COMPILE_NOTICE is COMPILE_NOTICE  # the one the entry points close


# -- where it is said ------------------------------------------------------------------------------
def unconfigure_logging(monkeypatch):
    """Logging as in a script that never configures it. (pytest adds handlers to
    the root logger at the start of each test phase: call this in the test.)"""
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    monkeypatch.setattr(log, "handlers", [])
    monkeypatch.setattr(log, "level", logging.NOTSET)
    monkeypatch.delenv(QUIET_ENV, raising=False)


def test_said_on_stderr_when_logging_is_not_configured(monkeypatch, capsys):
    unconfigure_logging(monkeypatch)
    say("hello")
    assert capsys.readouterr() == ("", "gradpath: hello\n")


@pytest.mark.parametrize("value", ["1", "yes"])
def test_quiet_environment_variable(monkeypatch, capsys, value):
    unconfigure_logging(monkeypatch)
    monkeypatch.setenv(QUIET_ENV, value)
    say("hello")
    assert capsys.readouterr() == ("", "")
    monkeypatch.setenv(QUIET_ENV, "0")
    say("hello")
    assert capsys.readouterr().err == "gradpath: hello\n"


def test_silenced_by_the_loggers_level(monkeypatch, capsys):
    unconfigure_logging(monkeypatch)
    log.setLevel(logging.WARNING)
    say("hello")
    assert capsys.readouterr() == ("", "")


def test_said_through_logging_when_configured(capsys, caplog, monkeypatch):
    monkeypatch.delenv(QUIET_ENV, raising=False)
    with caplog.at_level(logging.INFO, logger="gradpath"):
        say("hello")
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == \
        [("gradpath", logging.INFO, "hello")]
    assert capsys.readouterr().err == ""
