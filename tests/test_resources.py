"""Memory estimates against the measured peak over hidden sizes from 8 to
4096 (the parameters, their gradients and optimiser state, the probe's input
matrix, the initialisation's temporaries: issue 17), and the up-front refusal
of a run that cannot fit, by the library and the command line alike."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from test_provenance import PEAK, SMALL

from gradpath import resources

# Short sequences and one update, so that the hidden size dominates.
TRAIN = {**SMALL, "seq_len": 5, "batch": 4, "steps": 1, "eval_every": 1, "eval_batches": 1}
PROBE = dict(cell="rnn", activation="tanh", init="orthogonal", gain=1.0, hidden=8, seq_len=5,
             batch=4, input_std=1.0, bias_std=0.1, seeds=[0], burn_in=2, lyapunov_k=2)
# (hidden, training dtype): from a size where the interpreter dominates to one
# where the weights do (at 4096 a probe's (G H)^2 input matrix is 2 GiB for
# the LSTM, and each case takes 3-25 s), both precisions. Orthogonal
# initialisation (a QR per H x H gate block: the RNN's largest transient) up
# to 1024; Gaussian above, where the QRs alone would take most of a minute
# (resources.INIT_BLOCK_TEMPS counts both).
SIZES = [(8, "float64"), (1024, "float32"), (4096, "float64")]
CASES = [pytest.param(kind, cell, hidden, dtype, id=f"{kind}-{cell}-{hidden}"
                      + (f"-{dtype}" if kind == "train" else ""),
                      marks=[pytest.mark.slow] if hidden >= 1024 else [])
         for hidden, dtype in SIZES for cell in ("rnn", "lstm", "gru")
         for kind in ("probe", "train")]


def _available_mb() -> float:
    meminfo = Path("/proc/meminfo")
    if not meminfo.exists():
        return math.inf
    line = next(ln for ln in meminfo.read_text().splitlines() if ln.startswith("MemAvailable:"))
    return int(line.split()[1]) / 1024


def _config(kind: str, cell: str, hidden: int, dtype: str) -> dict:
    base = PROBE if kind == "probe" else {**TRAIN, "dtype": dtype}
    return {**base, "cell": cell, "hidden": hidden,
            "init": "orthogonal" if hidden <= 1024 else "gaussian"}


class _Peaks:
    """The selected cases' peaks, measured in child processes two at a time
    (the large cases take most of the time, on one core each), as long as
    the estimates of the two running fit in 80% of the memory available.
    The largest start first; the first test waits for its case, so pytest's
    durations show most of the time there."""

    def __init__(self, cases: list[tuple], out_dir: Path) -> None:
        self.budget = 0.8 * _available_mb()
        self.held = 0.0
        self.cond = threading.Condition()
        self.pool = ThreadPoolExecutor(2)
        cases = sorted(cases, key=lambda c: -resources.estimate(c[0], _config(*c)).mem_mb)
        self.futures = {c: self.pool.submit(self._measure, c, out_dir / "-".join(map(str, c)))
                        for c in cases}

    def _measure(self, case: tuple, out_dir: Path) -> float | None:
        config = _config(*case)
        need = resources.estimate(case[0], config).mem_mb
        if need > self.budget:
            return None
        with self.cond:
            self.cond.wait_for(lambda: self.held + need <= self.budget)
            self.held += need
        try:
            out = subprocess.run([sys.executable, "-c", PEAK, case[0], json.dumps(config),
                                  str(out_dir)], capture_output=True, text=True)
        finally:
            with self.cond:
                self.held -= need
                self.cond.notify_all()
        if out.returncode:
            raise RuntimeError(f"the {case} run failed:\n{out.stderr[-3000:]}")
        return float(out.stdout.split()[-1])


PEAK_TEST = "test_memory_estimate_covers_the_peak_from_small_to_large_hidden"


@pytest.fixture(scope="module")
def peaks(request, tmp_path_factory):
    selected = [tuple(item.callspec.params[k] for k in ("kind", "cell", "hidden", "dtype"))
                for item in request.session.items
                if getattr(item, "originalname", "") == PEAK_TEST and hasattr(item, "callspec")]
    measured = _Peaks(selected, tmp_path_factory.mktemp("peaks"))
    yield measured.futures
    measured.pool.shutdown(cancel_futures=True)


@pytest.mark.parametrize("kind,cell,hidden,dtype", CASES)
def test_memory_estimate_covers_the_peak_from_small_to_large_hidden(peaks, kind, cell, hidden,
                                                                     dtype):
    """peak <= estimate <= 2 peak, the peak being the VmHWM of the run's own
    process (as in test_provenance), at sizes where the hidden size, not the
    sequence, dominates."""
    est = resources.estimate(kind, _config(kind, cell, hidden, dtype))
    peak = peaks[kind, cell, hidden, dtype].result()
    if peak is None:
        pytest.skip(f"needs about {est.mem_mb:.0f} MiB, {_available_mb():.0f} MiB available")
    assert peak <= est.mem_mb <= 2 * peak, (peak, est.mem_mb)


# -- refusing a run that cannot fit, before allocating ----------------------------------
# In a child process whose address space is capped (well under the 75 GiB a
# hidden=100000 LSTM's first weight draw needs), so that a run which did start
# allocating fails fast with MemoryError on any machine, whatever its
# overcommit policy, instead of meeting the OOM killer.
CAPPED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (8 * 2**30, resource.RLIM_INFINITY))
"""
LIBRARY = CAPPED + """
from gradpath.probe import ProbeConfig, probe
from gradpath.train import TrainConfig, train
call = {"train": lambda: train(TrainConfig(cell="lstm", hidden=100_000, seq_len=5, batch=4,
                                           steps=1)),
        "probe": lambda: probe(ProbeConfig(cell="lstm", hidden=100_000, seq_len=5, batch=4,
                                           burn_in=2))}[sys.argv[1]]
try:
    call()
except ValueError as exc:
    print("ValueError:", exc)
"""
CLI = CAPPED + """
sys.argv = ["gradpath", *sys.argv[1:]]
from gradpath.cli import main
sys.exit(main())
"""


def test_physical_memory_is_psutils_and_none_where_the_os_does_not_say(monkeypatch):
    assert resources.physical_memory_mb() == psutil.virtual_memory().total / 2**20
    assert 64 < resources.physical_memory_mb() < 2**30  # MiB: more than 64 MiB, below 1 PiB

    def no_proc():
        raise FileNotFoundError("/proc/meminfo")  # psutil without /proc (a container)

    monkeypatch.setattr(resources.psutil, "virtual_memory", no_proc)
    assert resources.physical_memory_mb() is None


@pytest.mark.parametrize("kind", ["train", "probe"])
def test_library_refuses_an_impossible_size_before_allocating(kind):
    if resources.physical_memory_mb() is None:
        pytest.skip("the OS does not say how much memory this machine has")
    out = subprocess.run([sys.executable, "-c", LIBRARY, kind], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "MemoryError" not in out.stdout + out.stderr
    assert out.stdout.startswith("ValueError: a lstm "), out.stdout
    assert "hidden=100000" in out.stdout and "more than this machine's memory" in out.stdout


@pytest.mark.parametrize("kind", ["train", "probe"])
def test_cli_refuses_an_impossible_size_in_one_line(kind):
    if resources.physical_memory_mb() is None:
        pytest.skip("the OS does not say how much memory this machine has")
    args = [kind, "--cell", "lstm", "--hidden", "100000", "--seq-len", "5", "--batch", "4"]
    args += ["--steps", "1"] if kind == "train" else ["--burn-in", "2"]
    out = subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True)
    assert out.returncode == 2  # the command line's status for a bad value
    assert "Traceback" not in out.stderr and "MemoryError" not in out.stderr, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "hidden=100000" in lines[0], out.stderr
