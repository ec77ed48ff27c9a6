"""Tests for every user: without root (or without Chromium) the SLURM and report
tests are skipped, naming what they need; under GRADPATH_REQUIRE_ALL=1
(`make test`, CI) the same reasons are failures, so nothing is hidden there."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap

import local_slurm
import needs
import pytest
from studies import ROOT

SLURM_TEST = "tests/test_smoke_study.py::test_smoke_study_on_slurm_gives_the_local_tables"
REPORT_TEST = "tests/test_smoke_study.py::test_report_opens_offline_without_console_errors"


@pytest.fixture
def ordinary_user(monkeypatch):
    """This process as a user without root and without Chromium, outside `make test`."""
    monkeypatch.setattr(needs, "is_root", lambda: False)
    monkeypatch.setattr(needs, "chromium_path", lambda: None)
    monkeypatch.delenv(needs.REQUIRE_ALL, raising=False)


def test_without_root_the_slurm_test_is_skipped_saying_it_needs_root(ordinary_user):
    with pytest.raises(pytest.skip.Exception) as info:
        needs.enforce("slurm")
    why = str(info.value)
    assert why == local_slurm.missing()
    for word in ("needs root", "slurmd", "munged", "`make test` as root"):
        assert word in why, (word, why)


def test_without_chromium_the_report_test_is_skipped_saying_how_to_install_it(ordinary_user):
    with pytest.raises(pytest.skip.Exception) as info:
        needs.enforce("chromium")
    assert "needs Chromium on PATH" in str(info.value)
    assert "sudo apt-get install chromium" in str(info.value)


@pytest.mark.parametrize("need", sorted(needs.NEEDS))
def test_require_all_turns_the_skip_into_a_failure_with_the_same_reason(ordinary_user,
                                                                        monkeypatch, need):
    why = needs.NEEDS[need]()
    assert why and why.startswith("needs ")
    monkeypatch.setenv(needs.REQUIRE_ALL, "1")
    with pytest.raises(pytest.fail.Exception) as info:
        needs.enforce(need)
    assert why in str(info.value) and needs.REQUIRE_ALL in str(info.value)


@pytest.mark.parametrize(("value", "strict"), [("1", True), ("yes", True), ("0", False),
                                               ("", False), ("false", False)])
def test_require_all_reads_the_variable(monkeypatch, value, strict):
    monkeypatch.setenv(needs.REQUIRE_ALL, value)
    assert needs.require_all() is strict


def test_a_met_need_neither_skips_nor_fails(monkeypatch):
    monkeypatch.setenv(needs.REQUIRE_ALL, "1")
    monkeypatch.setitem(needs.NEEDS, "chromium", lambda: None)
    assert needs.enforce("chromium") is None
    with pytest.raises(ValueError, match="unknown need 'gpu'"):
        needs.enforce("gpu")


def test_a_cluster_that_cannot_start_here_says_why_and_stops_cleanly(ordinary_user, tmp_path):
    """The session's SLURM fixture on a machine without root: nothing starts,
    and its teardown does not fail the last test of the session."""
    from conftest import SlurmRun

    run = SlurmRun(tmp_path / "cluster", tmp_path / "work")
    assert run.error == local_slurm.missing() and run.error.startswith("needs root")
    assert run.proc is None and run.cluster is None
    run.stop()


def test_root_is_asked_of_the_os():
    assert needs.is_root() == (os.name == "posix" and os.geteuid() == 0)


def _uses(fn: ast.FunctionDef, word: str) -> bool:
    return word in ast.unparse(fn)


def _needs_marks(fn: ast.FunctionDef) -> set[str]:
    marks = set()
    for dec in fn.decorator_list:
        if (isinstance(dec, ast.Call) and ast.unparse(dec.func) == "pytest.mark.needs"):
            marks |= {a.value for a in dec.args if isinstance(a, ast.Constant)}
    return marks


def test_every_test_that_drives_chromium_or_slurm_declares_the_need():
    """A new browser or cluster test without the marker would fail for every
    user without root instead of skipping: each one must carry it."""
    found = {"chromium": 0, "slurm": 0}
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        if path.name == "test_needs.py":
            continue
        for fn in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(fn, ast.FunctionDef) and fn.name.startswith("test_")):
                continue
            for need, word in (("chromium", "playwright"), ("slurm", "slurm_smoke_run")):
                if _uses(fn, word):
                    assert need in _needs_marks(fn), f"{path.name}::{fn.name} lacks needs({need!r})"
                    found[need] += 1
    assert found["chromium"] >= 1 and found["slurm"] >= 1, found


# What an ordinary user's machine looks like to the suite: installed by -p
# before conftest.py runs, in a pytest of its own.
FAKE_USER = """
import needs

needs.is_root = lambda: False
needs.chromium_path = lambda: None
"""


def _pytest_as_ordinary_user(tmp_path, require_all: bool) -> tuple[subprocess.CompletedProcess,
                                                                    list[str]]:
    """The run, and what its pytest left in its temporary folder (the smoke
    study's fixture makes one named ``smoke*`` there)."""
    (tmp_path / "gp_fake_user.py").write_text(textwrap.dedent(FAKE_USER))
    env = {k: v for k, v in os.environ.items() if k != needs.REQUIRE_ALL}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(tmp_path), str(ROOT / "tests"), *filter(None, [env.get("PYTHONPATH")])])
    if require_all:
        env[needs.REQUIRE_ALL] = "1"
    base = tmp_path / f"basetemp-{int(require_all)}"
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "gp_fake_user", "-p",
                          "no:cacheprovider", "-rsE", "-q", f"--basetemp={base}", SLURM_TEST,
                          REPORT_TEST], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    return out, sorted(p.name for p in base.iterdir()) if base.exists() else []


@pytest.mark.slow
def test_plain_pytest_as_an_ordinary_user_skips_both_with_reasons_and_fails_under_make_test(
        tmp_path):
    """The real tests, in a pytest of their own: skipped before their fixtures
    (the smoke study is not run for them), each naming its need; with
    GRADPATH_REQUIRE_ALL=1 both are errors with the same reasons."""
    out, made = _pytest_as_ordinary_user(tmp_path, require_all=False)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "2 skipped" in text and "passed" not in text, text[-3000:]
    assert "needs root to start slurmctld, slurmd and munged" in text, text[-3000:]
    assert "needs Chromium on PATH" in text, text[-3000:]
    assert not [n for n in made if n.startswith("smoke")], f"the smoke study ran: {made}"

    out, made = _pytest_as_ordinary_user(tmp_path, require_all=True)
    text = out.stdout + out.stderr
    assert out.returncode != 0, text[-3000:]
    assert "2 errors" in text and "skipped" not in text, text[-3000:]
    assert text.count(f"{needs.REQUIRE_ALL}=1 (make test, CI) runs every test") >= 2, text[-3000:]
    assert "needs root" in text and "needs Chromium" in text
    assert not [n for n in made if n.startswith("smoke")], f"the smoke study ran: {made}"


def test_make_test_runs_the_whole_suite_with_require_all_and_ci_runs_make_test():
    """Every Makefile line that runs the whole suite (pytest without a path)
    sets GRADPATH_REQUIRE_ALL=1; CI's entry point runs `make test`."""
    whole = [line.strip() for line in (ROOT / "Makefile").read_text().splitlines()
             if "/pytest" in line and "tests/" not in line]
    assert whole, "no Makefile line runs the suite"
    assert all(f"{needs.REQUIRE_ALL}=1 " in line for line in whole), whole
    assert "make test" in (ROOT / ".ci" / "run").read_text()
