"""Shared pytest configuration: the hypothesis profile of the property tests,
the machine needs of a few tests (tests/needs.py), and the smoke study."""

from __future__ import annotations

import os
from pathlib import Path

# One BLAS thread: on a small shared machine a multi-threaded OpenBLAS call
# (a 500 x 500 QR in the probes) can stall for seconds waiting for a busy core.
# Set before numpy loads; an explicit setting in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import needs  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# Deterministic property tests (same examples on every run, nothing written to
# .hypothesis/), no per-example deadline: the first call into a kernel loads it
# from Numba's cache.
settings.register_profile(
    "gradpath",
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("gradpath")


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``needs`` marker (``--strict-markers`` refuses unknown ones)."""
    config.addinivalue_line(
        "markers",
        "needs(what): the test needs something root or a package manager provides "
        f"({', '.join(sorted(needs.NEEDS))}); without it the test is skipped, naming it, "
        f"or fails under {needs.REQUIRE_ALL}=1 (make test)")


#: The one file of the tests of the session's smoke study (the ``smoke_study``
#: fixture). ``make test`` spreads the suite over the cores with pytest-xdist
#: (``--dist loadfile``: a file's tests stay on one worker), and a session
#: fixture is per worker process: a test of the study in another file would
#: make a second worker build it again.
SMOKE_FILE = "test_smoke_study.py"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse a smoke-study test outside :data:`SMOKE_FILE`, and put that file
    first: its study is the suite's longest chain (build, then its tests), so
    it starts at once on one worker while the others take the rest."""
    stray = [item.nodeid for item in items if "smoke_study" in getattr(item, "fixturenames", ())
             and item.path.name != SMOKE_FILE]
    if stray:
        raise pytest.UsageError(f"tests of the smoke study belong in tests/{SMOKE_FILE} "
                                f"(one xdist worker builds it once): {', '.join(stray)}")
    items.sort(key=lambda item: item.path.name != SMOKE_FILE)  # stable: the rest keep order


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Check a test's needs before its fixtures run: a test that cannot run here
    must not first spend minutes on the smoke study."""
    for mark in item.iter_markers("needs"):
        for what in mark.args:
            needs.enforce(what)


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh ``default_rng(0)`` per test."""
    return np.random.default_rng(0)


#: The README's cluster command for the smoke study (after `snakemake`); a test
#: holds the README to it.
CLUSTER_COMMAND = ("--profile", "profiles/slurm", "--configfile", "configs/smoke.yaml")
SLURM_TEST = "test_smoke_study_on_slurm_gives_the_local_tables"


class SlurmRun:
    """The smoke study on a local SLURM, running in the background."""

    #: set by __init__: why the cluster could not run, or None
    error: str | None

    def __init__(self, root: Path, work: Path) -> None:
        import subprocess
        import sys

        import local_slurm

        self.work, self.error, self.proc, self.cluster = work, local_slurm.missing(), None, None
        self.log, self._out = root / "snakemake.log", None  # stop() works even if never started
        if self.error:
            return
        repo = Path(__file__).resolve().parents[1]
        self.cluster = local_slurm.LocalSlurm(root)
        try:
            self.cluster.start()
            cmd = self.cluster.command(sys.executable, "-m", "snakemake", "-s",
                                       str(repo / "Snakefile"), "-d", str(work),
                                       *CLUSTER_COMMAND, cwd=repo)
            self._out = open(self.log, "w")  # noqa: SIM115 - closed in stop()
            self.proc = subprocess.Popen(cmd, env=self.cluster.env, stdout=self._out,
                                         stderr=subprocess.STDOUT, text=True)
        except Exception as exc:  # the test reports it; no daemon is left behind
            self.error = f"the local SLURM could not start: {exc}"
            self.stop()

    def finish(self, timeout: float = 600) -> tuple[int, str]:
        """Wait for Snakemake; its exit status and output."""
        try:
            rc = self.proc.wait(timeout=timeout)
        finally:
            self.stop()
        return rc, self.log.read_text()

    def stop(self) -> None:
        """Kill Snakemake if it still runs, then stop the cluster's daemons."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._out is not None:
            self._out.close()
            self._out = None
        if self.cluster is not None:
            self.cluster.stop()


@pytest.fixture(scope="session")
def smoke_study(request, tmp_path_factory):
    """The smoke study and its report, once per test session (one xdist worker)."""
    import time

    from studies import snakemake

    # the cluster test's run first, so that it overlaps this one
    if any(item.name == SLURM_TEST for item in request.session.items):
        request.getfixturevalue("slurm_smoke_run")
    work = tmp_path_factory.mktemp("smoke")
    t0 = time.perf_counter()
    snakemake(work)
    snakemake(work, "--report", str(work / "report.html"))
    return work, time.perf_counter() - t0


@pytest.fixture(scope="session")
def slurm_smoke_run(tmp_path_factory):
    """The cluster test's SLURM run, started before the smoke study (which asks
    for it first when the session holds the cluster test): its jobs mostly
    wait on the scheduler's status polling, so it overlaps the smoke study and
    the tests after it instead of adding its wall time."""
    root = tmp_path_factory.mktemp("slurm")
    run = SlurmRun(root / "cluster", root / "work")
    try:
        yield run
    finally:
        run.stop()
