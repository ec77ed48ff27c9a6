"""The two installs: ``pip install gradpath`` brings the library and the CLI
alone, and the study extra's libraries are imported only where the study
needs them, with an error that says how to get them.

The install test builds the package from a copy of this checkout (the files
a wheel is built from: pyproject.toml, README.md, LICENSE, src/) and installs
it with its dependencies, resolved by pip from the configured indexes, into a
clean virtual environment; there it runs a probe through the console script
and a short training run through the API. It is slow (marked ``install``):
creating the venv, resolving and installing the dependencies, and compiling
the kernels into an empty Numba cache take one to two minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gradpath import extras

ROOT = Path(__file__).resolve().parents[1]
#: What the plain install must not bring: the study extra's libraries (and
#: torch, a dev tool of the oracle test).
STUDY_ONLY = ("snakemake", "seaborn", "matplotlib", "pyarrow", "pandas", "yaml", "jsonschema",
              "torch")


def test_a_missing_study_library_is_named_with_the_extra():
    lazy = extras.StudyModule("gradpath_no_such_library")
    with pytest.raises(ImportError, match=r"gradpath_no_such_library is not installed.*"
                                          r"pip install 'gradpath\[study\]'"):
        lazy.DataFrame  # noqa: B018 - the first attribute imports it
    assert extras.missing("json", "gradpath_no_such_library.sub") == ["gradpath_no_such_library"]


def test_a_broken_study_library_is_not_reported_missing(tmp_path, monkeypatch):
    """A library that is installed but fails to import (something it needs is
    missing) raises its own error, not the advice to install the extra."""
    (tmp_path / "gradpath_broken_library.py").write_text("import gradpath_its_missing_need\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="gradpath_its_missing_need"):
        extras.require("gradpath_broken_library")


def test_the_study_extra_holds_what_the_workflow_imports():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(meta["dependencies"])
    study = " ".join(meta["optional-dependencies"]["study"])
    for lib in ("snakemake", "pandas", "pyarrow", "matplotlib", "seaborn", "pyyaml",
                "jsonschema"):
        assert lib in study and lib not in core, lib
    assert "gradpath[study" in " ".join(meta["optional-dependencies"]["dev"])


def test_the_release_metadata_agree():
    """pyproject.toml's version (the one source: gradpath.__version__ reads the
    installed metadata) is the citation's and the changelog's latest release
    (an ``[Unreleased]`` section may come first, as Keep a Changelog has it)."""
    yaml = pytest.importorskip("yaml", reason="the study extra: pip install 'gradpath[study]'")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and str(cff["version"]) == version
    assert cff["license"] == "MIT" and cff["authors"] == [{"name": "The gradpath developers"}]
    releases = [line.split()[1] for line in (ROOT / "CHANGELOG.md").read_text().splitlines()
                if line.startswith("## [") and not line.startswith("## [Unreleased]")]
    assert releases and releases[0] == f"[{version}]"
    assert str(cff["date-released"]) in (ROOT / "CHANGELOG.md").read_text()


# The checks inside the clean venv: nothing of the study is there, the
# library imports and trains, and the study's functions say what they need.
INSIDE = r"""
import importlib.util, json, sys
import gradpath
from gradpath.train import TrainConfig, train

absent = [m for m in sys.argv[1].split(",") if importlib.util.find_spec(m) is not None]
errors = {}
from gradpath import claims, results  # import without pandas; fail on first use
for name, call in {"claims": lambda: claims.judge(claims.FINDINGS, {}),
                   "results": lambda: results.read_tables(".")}.items():
    try:
        call()
    except ImportError as exc:
        errors[name] = str(exc)
res = train(TrainConfig(task="adding", seq_len=10, hidden=8, batch=4, steps=20, eval_every=10,
                        eval_batches=1, dtype="float64"))
print(json.dumps({"version": gradpath.__version__, "file": gradpath.__file__,
                  "present": absent, "errors": errors, "status": res.status,
                  "steps": len(res.records["step"]), "final": res.final_metric}))
"""


@pytest.mark.slow
@pytest.mark.install
def test_plain_install_runs_a_probe_and_training_without_the_study(tmp_path):
    src = tmp_path / "gradpath-src"  # a copy: building in place would leave build/ here
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "src" / "gradpath", src / "src" / "gradpath",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    venv = tmp_path / "venv"
    # no PYTHONPATH (this checkout's src) and no outer venv: the venv's own install alone
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba-cache")

    def run(*cmd, timeout=600):
        out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env,
                             cwd=tmp_path, timeout=timeout, stdin=subprocess.DEVNULL)
        assert out.returncode == 0, f"{cmd}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        return out

    base = getattr(sys, "_base_executable", sys.executable)  # not this venv's python
    run(base, "-m", "venv", venv)
    py, exe = venv / "bin" / "python", venv / "bin" / "gradpath"
    # the dependencies resolved by pip (no --no-deps), from the configured indexes
    run(py, "-m", "pip", "install", "--no-input", "--disable-pip-version-check", src)

    inside = json.loads(run(py, "-c", INSIDE, ",".join(STUDY_ONLY)).stdout.splitlines()[-1])
    assert inside["present"] == [], f"the plain install brought {inside['present']}"
    assert Path(inside["file"]).is_relative_to(venv)  # the venv's copy, not this checkout
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert inside["version"] == version
    for name in ("claims", "results"):
        assert "pip install 'gradpath[study]'" in inside["errors"].get(name, ""), inside["errors"]
    assert inside["status"] == "finished" and inside["steps"] == 20 and inside["final"] > 0

    probe = run(exe, "probe", "--hidden", "16", "--seq-len", "40", "--batch", "2",
                "--burn-in", "5", "--lyapunov-k", "2", "--json", "--no-progress")
    out = json.loads(probe.stdout)
    assert out["decay_rate"] < 0 and len(out["log10_grad_norm"]) == 40

    # --out needs Parquet (the study extra): refused before the run, in one line
    refused = subprocess.run([str(exe), "probe", "--out", str(tmp_path / "out")], env=env,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and refused.stdout == ""
    assert "pip install 'gradpath[study]'" in refused.stderr and "Traceback" not in refused.stderr
