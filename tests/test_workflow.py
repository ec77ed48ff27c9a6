"""The Snakemake workflow: config validation, the default and given configs,
grid expansion, lint and the profiles (the smoke study itself runs in
tests/test_smoke_study.py)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml
from conftest import CLUSTER_COMMAND
from snakemake.utils import validate
from studies import ROOT, SCHEMA, SNAKEMAKE, load, spec

from gradpath import grid as gpgrid


# -- config validation (in-process: snakemake.utils.validate, as the Snakefile does) --
def _all(cfg: dict, key: str) -> set:
    return {v for block in cfg["train"] for v in block[key]}


@pytest.mark.parametrize("name", ["default", "smoke", "full", "paper", "paper-full"])
def test_shipped_configs_validate(name):
    cfg = load(name)
    validate(cfg, str(SCHEMA))
    gpgrid.train_runs(cfg["train"])  # steps per length, disjoint selection seeds
    assert all(len(block["seeds"]) >= 3 for block in cfg["train"])
    if not name.startswith("paper"):
        assert _all(cfg, "clips") == {"none", "norm", "value"}
        assert len(_all(cfg, "seq_lens")) >= 3


def test_default_study_shape():
    cfg = load("default")
    assert {100, 200} <= _all(cfg, "seq_lens")
    assert {"rnn-tanh", "rnn-relu", "lstm"} <= _all(cfg, "models")
    assert any(len(block["lrs"]) >= 3 for block in cfg["train"])  # learning-rate sweeps
    assert {"float32", "float64"} == {block["dtype"] for block in cfg["train"]}
    assert "lstm" in cfg["probe"]["models"]
    gains = cfg["probe"]["gains"]
    assert min(gains) < 1.0 and max(gains) > 2.0  # both sides of the tanh and ReLU edges
    full = load("full")
    assert "copy" in _all(full, "tasks")
    assert max(_all(full, "seq_lens")) > max(_all(cfg, "seq_lens"))


def test_validate_fills_defaults():
    cfg = {"name": "x"}
    validate(cfg, str(SCHEMA))
    assert cfg["train"][0]["optimizer"] == "adam" and cfg["probe"]["hidden"] == 512
    assert cfg["train"][0]["lrs"] == [] and cfg["train"][0]["dtype"] == "float32"


BAD = [
    ("unknown top-level key", lambda c: c.update(colour="red"), ["colour", "unexpected"]),
    ("unknown train key", lambda c: c["train"][0].update(stepz=3), ["stepz", "unexpected"]),
    ("wrong type", lambda c: c["train"][0].update(batch="many"), ["batch", "many", "integer"]),
    ("wrong steps", lambda c: c["train"][0].update(steps="many"), ["steps", "many"]),
    ("unknown model", lambda c: c["train"][0].update(models=["rnn-sigmoid"]),
     ["rnn-sigmoid", "rnn-tanh", "rnn-relu", "lstm"]),
    ("unknown init", lambda c: c["probe"].update(inits=["zeros"]),
     ["zeros", "identity", "gaussian", "orthogonal"]),
    ("unknown clip", lambda c: c["train"][0].update(clips=["norm", "global"]),
     ["global", "none", "norm", "value"]),
    ("unknown task", lambda c: c["train"][0].update(tasks=["parity"]),
     ["parity", "adding", "copy", "sine"]),
    ("non-positive length", lambda c: c["train"][0].update(seq_lens=[50, 0]),
     ["seq_lens", "0", "minimum"]),
    ("negative gain", lambda c: c["probe"].update(gains=[-1.0]), ["gains", "-1.0", "minimum"]),
]


@pytest.mark.parametrize("case", BAD, ids=[b[0] for b in BAD])
def test_bad_config_is_rejected_naming_key_and_allowed_values(case):
    _, mutate, words = case
    cfg = copy.deepcopy(load("smoke"))
    mutate(cfg)
    with pytest.raises(Exception) as info:
        validate(cfg, str(SCHEMA))
    text = str(info.value) + str(getattr(info.value, "__cause__", ""))
    for w in words:
        assert w in text, (w, text)


def test_bad_config_fails_fast_before_any_job(tmp_path):
    cfg = copy.deepcopy(load("smoke"))
    cfg["train"][0]["models"] = ["rnn-sigmoid"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = subprocess.run([*SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path / "w"),
                          "--configfile", str(path), "--cores", "1"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "rnn-sigmoid" in text and "rnn-tanh" in text and "models" in text
    assert not (tmp_path / "w" / "results").exists()  # no job ran


# -- the default config: `snakemake --cores 2` runs the default study ------------------------
def _planned_batches(tmp_path: Path, *args: str) -> tuple[int, str]:
    """How many batch jobs a dry run from another folder plans, and its output."""
    out = subprocess.run([*SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path / "w"),
                          "-n", *args], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    return text.count("rule run_batch:"), text


def _batches(cfg: dict) -> int:
    """How many batch jobs the config's study has (the schema's defaults filled in)."""
    cfg = copy.deepcopy(cfg)
    validate(cfg, str(SCHEMA))
    stages = gpgrid.stage_batches(gpgrid.probe_runs(cfg["probe"]) + gpgrid.train_runs(cfg["train"]),
                                  cfg["batch_seconds"])
    return len(stages["runs"]) + len(stages["selected"])


def test_without_a_configfile_snakemake_plans_the_default_study(tmp_path):
    n, text = _planned_batches(tmp_path)
    assert n == _batches(load("default")), text[-2000:]
    assert "results/default/batches/" in text
    # --config still overrides single keys of the default study
    n, text = _planned_batches(tmp_path, "--config", "name=renamed")
    assert n == _batches(load("default")) and "results/renamed/batches/" in text
    assert "results/default/" not in text


def test_a_configfile_replaces_the_default_config_not_merges_into_it(tmp_path):
    """A key the given file leaves out takes the schema's default, not the
    default study's value (Snakemake would merge the two files key by key)."""
    minimal = tmp_path / "minimal.yaml"
    minimal.write_text("name: minimal\n")  # every other key from the schema
    assert _batches({"name": "minimal"}) != _batches(load("default"))  # else blind
    n, text = _planned_batches(tmp_path, "--configfile", str(minimal))
    assert n == _batches({"name": "minimal"}), text[-2000:]
    assert "results/minimal/batches/" in text and "results/default/" not in text
    n, _ = _planned_batches(tmp_path, "--configfile", str(ROOT / "configs" / "smoke.yaml"))
    assert n == _batches(load("smoke"))


def test_a_run_too_big_for_memory_fails_the_dry_run_naming_the_key(tmp_path):
    cfg = copy.deepcopy(load("smoke"))
    cfg["train"][1]["seq_lens"] = [100_000_000]
    path = tmp_path / "huge.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = subprocess.run([*SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path / "w"),
                          "--configfile", str(path), "-n"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    for word in ("train[1] (exploding).seq_lens", "seq_len=100000000", "max_mem_mb", "GiB"):
        assert word in text, (word, text[-2000:])
    assert "MemoryError" not in text  # refused from the estimate, not by numpy
    assert not (tmp_path / "w" / "results").exists()


# -- grid expansion ---------------------------------------------------------------------

def test_grid_sizes_and_stable_ids():
    cfg = spec()
    p, t = gpgrid.probe_runs(cfg["probe"]), gpgrid.train_runs(cfg["train"])
    pc = cfg["probe"]
    assert len(p) == len(pc["models"]) * len(pc["inits"]) * len(pc["gains"]) * len(pc["seeds"])
    expected = 0
    for tc in cfg["train"]:
        configs = (len(tc["tasks"]) * len(tc["models"]) * len(tc["inits"]) * len(tc["clips"])
                   * len(tc["seq_lens"]))
        sweep = len(tc["lrs"]) * len(tc["selection_seeds"]) if len(tc["lrs"]) > 1 else 0
        expected += configs * (len(tc["seeds"]) + sweep)
    assert len(t) == expected
    ids = [r.run_id for r in p + t]
    assert len(set(ids)) == len(ids)
    again = [r.run_id for r in gpgrid.probe_runs(cfg["probe"]) + gpgrid.train_runs(cfg["train"])]
    assert again == ids


def test_batches_cover_every_run_once_and_adding_seeds_keeps_old_ids():
    cfg = spec()
    runs = gpgrid.probe_runs(cfg["probe"]) + gpgrid.train_runs(cfg["train"])
    b = gpgrid.batches(runs, cfg["batch_seconds"])
    members = [r.run_id for rs in b.values() for r in rs]
    assert sorted(members) == sorted(r.run_id for r in runs)
    assert all(len({r.kind for r in rs}) == 1 for rs in b.values())
    more = copy.deepcopy(cfg)
    more["train"][0]["seeds"] = [*cfg["train"][0]["seeds"], 7]
    new = {r.run_id for r in gpgrid.train_runs(more["train"])}
    assert {r.run_id for r in gpgrid.train_runs(cfg["train"])} < new


def _calls_per_run(seeds: int) -> tuple[float, int]:
    """Python function calls per run of expanding the smoke grid with ``seeds``
    seeds in its first block and batching it: a count, not a time, so that it
    does not depend on the machine or its load."""
    cfg = spec()
    cfg["train"][0]["seeds"] = list(range(seeds))
    calls = [0]

    def count(frame, event, arg):
        if event == "call":
            calls[0] += 1

    sys.setprofile(count)
    try:
        runs = gpgrid.train_runs(cfg["train"])
        gpgrid.batches(runs, 20)
    finally:
        sys.setprofile(None)
    return calls[0] / len(runs), len(runs)


def test_grid_expansion_scales_linearly():
    """Four times the seeds: four times the runs of that block, and no more
    work per run (a quadratic step, such as a duplicate check against every
    earlier run, would multiply it)."""
    small, n_small = _calls_per_run(3)
    large, n_large = _calls_per_run(12)
    assert n_large > n_small
    assert large <= 1.1 * small, (small, large)


@pytest.mark.parametrize("args", [(), ("--configfile", "configs/smoke.yaml")],
                         ids=["default-config", "smoke"])
def test_snakemake_lint_is_clean(args):
    """`make lint`: every lint but the conda/container one (the rules run in the
    project's venv: docs/workflow.md) fails, with the default config or another."""
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "lint_workflow.py"), *args],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_lint_filter_lets_only_the_conda_lint_through():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from lint_workflow import unaccepted
    finally:
        sys.path.pop(0)
    conda = ("Lints for rule a (line 1, x.smk):\n"
             "    * Specify a conda environment or container for each rule.:\n"
             "      This way, the used software ...\n")
    log = ("Lints for rule b (line 9, x.smk):\n"
           "    * No log directive defined:\n      Without a log directive ...\n")
    assert unaccepted(conda) == []
    assert unaccepted(conda + log) == ["Lints for rule b (line 9, x.smk): No log directive defined"]


def test_unlock_if_stale_sees_a_live_snakemake_on_any_os(tmp_path):
    """It asks psutil, not /proc (which macOS lacks), for a Snakemake in this folder."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import unlock_if_stale
    finally:
        sys.path.pop(0)
    assert unlock_if_stale.is_snakemake(["/x/.venv/bin/snakemake", "--cores", "2"])
    assert unlock_if_stale.is_snakemake(["python3", "-m", "snakemake", "-n"])
    assert not unlock_if_stale.is_snakemake(["python3", "-m", "pytest", "snakemake.py"])
    fake = tmp_path / "snakemake"  # a process whose command line runs "snakemake"
    fake.write_text("import time\ntime.sleep(60)\n")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert not unlock_if_stale.other_snakemake_here()
        proc = subprocess.Popen([sys.executable, str(fake)], cwd=tmp_path)
        try:
            deadline = time.time() + 10
            while not unlock_if_stale.other_snakemake_here() and time.time() < deadline:
                time.sleep(0.05)
            assert unlock_if_stale.other_snakemake_here()
        finally:
            proc.kill()
            proc.wait()
    finally:
        os.chdir(cwd)


# -- profiles: each applies the settings it states, and none overrides another ---------------
def _profile_args(*argv: str):
    from snakemake.cli import parse_args

    cwd = os.getcwd()
    os.chdir(ROOT)  # where `make run` and the README's cluster command run
    try:
        _, args = parse_args(["--configfile", "configs/smoke.yaml", *argv])
    finally:
        os.chdir(cwd)
    return args


def _as_mapping(value, keys=None) -> dict[str, str]:
    """A profile's "k=v" list or mapping, or Snakemake's parsed mapping, as {k: str(v)}
    (only ``keys``, if given: some parsed resources are evaluated per rule)."""
    if isinstance(value, Mapping):
        return {k: str(getattr(value[k], "value", value[k])) for k in keys or value
                if k in value}
    return dict(item.split("=", 1) for item in value)


@pytest.mark.parametrize("name", ["local", "slurm"])
def test_profile_applies_what_it_states(name):
    stated = yaml.safe_load((ROOT / "profiles" / name / "config.yaml").read_text())
    args = _profile_args("--profile", f"profiles/{name}")
    for key, value in stated.items():
        got = getattr(args, key.replace("-", "_"))
        if isinstance(value, dict | list):
            want = _as_mapping(value)
            assert _as_mapping(got, want) == want, key
        else:
            assert got == value, (key, got, value)


def test_no_profile_applies_unless_asked():
    """No workflow profile (profiles/default) is loaded behind the user's back:
    it would override a cluster profile's settings."""
    assert not (ROOT / "profiles" / "default").exists()
    bare = _profile_args()
    assert bare.executor is None and bare.cores is None and not bare.rerun_incomplete


def test_the_cluster_page_runs_what_the_cluster_test_runs():
    readme = (ROOT / "docs" / "cluster.md").read_text()
    assert "snakemake " + " ".join(CLUSTER_COMMAND) in readme
    assert "profiles/slurm" in readme and "max_mem_mb" in readme
