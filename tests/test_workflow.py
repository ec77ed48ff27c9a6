"""The Snakemake workflow: config validation, grid expansion, lint, the smoke
study end to end, resuming after a kill, and the report in headless Chromium."""

from __future__ import annotations

import copy
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import needs
import pandas as pd
import pytest
import yaml
from conftest import CLUSTER_COMMAND
from snakemake.utils import validate
from studies import ROOT, SNAKEMAKE, assert_same_tables, snakemake, tables, unlock_if_stale

from gradpath import grid as gpgrid

SCHEMA = ROOT / "configs" / "schema.yaml"

#: report categories and what each holds
CATEGORIES = [
    ("0. Findings", "table"),
    ("1. Decay at initialisation", "figure"),
    ("2. Theory", "figure"),
    ("3. Training", "figure"),
    ("4. Sequence length", "figure"),
    ("5. Clipping", "figure"),
    ("6. Training changes the decay", "figure"),
    ("7. Summary", "table"),
    ("8. Reproductions", "any"),
    ("9. Config and provenance", "table"),
]
#: Chromium as the report tests start it: headless, offline, no sandbox (root)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())


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
    t0 = time.perf_counter()
    out = subprocess.run([*SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path / "w"),
                          "--configfile", str(path), "--cores", "1"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "rnn-sigmoid" in text and "rnn-tanh" in text and "models" in text
    assert not (tmp_path / "w" / "results").exists()  # no job ran
    assert time.perf_counter() - t0 < 60


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
def _spec(name="smoke"):
    cfg = load(name)
    validate(cfg, str(SCHEMA))
    return cfg


def _stage_batches(name="smoke") -> dict:
    cfg = _spec(name)
    return gpgrid.stage_batches(gpgrid.probe_runs(cfg["probe"]) + gpgrid.train_runs(cfg["train"]),
                                cfg["batch_seconds"])


def test_grid_sizes_and_stable_ids():
    cfg = _spec()
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
    cfg = _spec()
    runs = gpgrid.probe_runs(cfg["probe"]) + gpgrid.train_runs(cfg["train"])
    b = gpgrid.batches(runs, cfg["batch_seconds"])
    members = [r.run_id for rs in b.values() for r in rs]
    assert sorted(members) == sorted(r.run_id for r in runs)
    assert all(len({r.kind for r in rs}) == 1 for rs in b.values())
    more = copy.deepcopy(cfg)
    more["train"][0]["seeds"] = [*cfg["train"][0]["seeds"], 7]
    new = {r.run_id for r in gpgrid.train_runs(more["train"])}
    assert {r.run_id for r in gpgrid.train_runs(cfg["train"])} < new


@pytest.mark.parametrize("factor", [1, 4])
def test_grid_expansion_scales_linearly(factor):
    cfg = _spec()
    cfg["train"][0]["seeds"] = list(range(3 * factor))
    t0 = time.perf_counter()
    runs = gpgrid.train_runs(cfg["train"])
    gpgrid.batches(runs, 20)
    per_run = (time.perf_counter() - t0) / len(runs)
    assert per_run < 2e-3  # a few hundred microseconds per run, whatever the grid size


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


# -- code provenance: results that know which code made them ----------------------------------
def _code_copy(tmp_path: Path) -> Path:
    """A copy of the gradpath package whose computing code differs (an added
    statement in theory.py), importable through PYTHONPATH."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "gradpath", src / "gradpath",
                    ignore=shutil.ignore_patterns("__pycache__"))
    theory = src / "gradpath" / "theory.py"
    theory.write_text(theory.read_text() + "\n_CHANGED_BY_THE_TEST = True\n")
    return src


# -- the smoke study end to end ------------------------------------------------------------
@pytest.mark.slow
def test_smoke_study_end_to_end(smoke_study):
    work, seconds = smoke_study
    assert seconds < 180, f"smoke study with report took {seconds:.0f} s"
    t = tables(work)
    cfg = _spec()
    n = len(gpgrid.probe_runs(cfg["probe"])) + len(gpgrid.train_runs(cfg["train"]))
    assert len(t["runs"]) == n and t["runs"]["run_id"].is_unique
    for name in ("a_decay_curves", "b_decay_rate_theory", "c_training_curves",
                 "d_success_by_length", "e_clipping_divergence", "f_decay_through_training",
                 "g_lyapunov_spectrum", "h_pascanu_cliff"):
        png = work / "results" / "smoke" / "figures" / f"{name}.png"
        assert png.stat().st_size > 10_000, name
    logs = list((work / "results" / "smoke" / "logs").rglob("*.log"))
    assert len(logs) >= 5 and all(p.stat().st_size > 0 for p in logs)
    findings = pd.read_csv(work / "results" / "smoke" / "tables" / "findings.csv")
    assert {"claim", "value", "verdict"} <= set(findings.columns)
    assert (work / "report.html").stat().st_size > 100_000


@pytest.mark.slow
def test_rerun_does_nothing(smoke_study):
    work, _ = smoke_study
    out = snakemake(work, "-n")
    assert "Nothing to be done" in out.stdout + out.stderr
    prov = pd.read_csv(work / "results" / "smoke" / "tables" / "provenance.csv")
    assert len(prov) == 1 and prov["current_code"].all()  # one code, one machine
    assert prov["runs"].sum() == len(tables(work)["runs"])


@pytest.mark.slow
def test_changed_code_reruns_the_batches_and_says_why(smoke_study, tmp_path):
    """Finished runs are not reused silently by other code: with the computing
    code changed (another code_id), every batch is due again because of it
    (its runs are then recomputed: tests/test_provenance.py)."""
    work, _ = smoke_study
    env = {**os.environ, "PYTHONPATH": str(_code_copy(tmp_path))}
    out = snakemake(work, "-n", env=env)
    text = out.stdout + out.stderr
    assert "Nothing to be done" not in text
    n_batches = len(_stage_batches()["runs"])
    assert text.count("rule run_batch:") >= n_batches
    assert "Params have changed since last execution" in text, text[-2000:]


def _interrupt_after(work: Path, runs: int, sig: int) -> set[str]:
    """Start the smoke grid on one core in ``work``, interrupt it with ``sig``
    once ``runs`` more runs are on disk, and return the finished runs' files."""
    runs_dir = work / "results" / "smoke" / "runs"
    before = len(list(runs_dir.glob("*.json"))) if runs_dir.exists() else 0
    # one core: the batches run one after another, so the interrupt lands mid-grid
    proc = snakemake(work, "--cores", "1", popen=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if runs_dir.exists() and len(list(runs_dir.glob("*.json"))) >= before + runs:
            break
        time.sleep(0.2)
    if sig == signal.SIGKILL:
        os.killpg(proc.pid, sig)  # snakemake and its jobs die at once, leaving the lock
        proc.wait(timeout=120)
    else:  # Ctrl-C, pressed again each second until Snakemake has stopped its jobs
        for _ in range(120):
            if proc.poll() is not None:
                break
            os.kill(proc.pid, sig)
            try:
                proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        assert proc.poll() is not None, "snakemake ignored Ctrl-C for two minutes"
    return {p.name for p in runs_dir.glob("*.json")}


@pytest.mark.slow
def test_interrupted_grid_resumes_without_redoing_or_losing_runs_on_one_core(smoke_study,
                                                                             tmp_path):
    """Killed (SIGKILL, as by the OOM killer), then interrupted (Ctrl-C), then
    finished, all on one core: no finished run is redone or lost, and the
    tables equal the two-core run's bit for bit."""
    ref_work, _ = smoke_study
    work = tmp_path / "interrupted"
    runs_dir = work / "results" / "smoke" / "runs"
    killed = _interrupt_after(work, 5, signal.SIGKILL)
    assert len(killed) >= 5
    mtimes = {n: (runs_dir / n).stat().st_mtime_ns for n in killed}
    unlock_if_stale(work)
    stopped = _interrupt_after(work, 3, signal.SIGINT)
    assert killed < stopped, "the second start added no runs"
    mtimes.update({n: (runs_dir / n).stat().st_mtime_ns for n in stopped - killed})
    # the interrupts came mid-grid: the tables were never written
    assert not (work / "results" / "smoke" / "tables" / "runs.parquet").exists()
    unlock_if_stale(work)
    snakemake(work, "--cores", "1")
    after = {p.name: p.stat().st_mtime_ns for p in runs_dir.glob("*.json")}
    assert all(after[k] == v for k, v in mtimes.items()), "finished runs were redone"
    assert_same_tables(ref_work, work)


def test_the_cluster_page_runs_what_the_cluster_test_runs():
    readme = (ROOT / "docs" / "cluster.md").read_text()
    assert "snakemake " + " ".join(CLUSTER_COMMAND) in readme
    assert "profiles/slurm" in readme and "max_mem_mb" in readme


# -- on a real (local, one-node) SLURM cluster ---------------------------------------------------
@pytest.mark.slow
@pytest.mark.needs("slurm")
def test_smoke_study_on_slurm_gives_the_local_tables(smoke_study, slurm_smoke_run):
    """The README's cluster command on a SLURM started here (conftest.py starts
    it with the session): the jobs go through sbatch, batches grouped two to a
    submission, and the tables equal the local run's bit for bit, wall time
    aside."""
    assert slurm_smoke_run.error is None, slurm_smoke_run.error
    rc, text = slurm_smoke_run.finish()
    assert rc == 0, text[-4000:]
    submitted = re.findall(r"submitted with SLURM jobid (\d+)", text)
    stages = _stage_batches()
    free, selected = stages["runs"], stages["selected"]
    # warm-up, select_rates, and the batches two to a group job
    expected = 2 + math.ceil(len(free) / 2) + math.ceil(len(selected) / 2)
    assert len(submitted) == expected, (submitted, expected, text[-3000:])
    assert "Group job runs" in text and "localrule aggregate" in text
    # each batch asked SLURM for its estimated memory and runtime
    asked = re.findall(r"rule run_batch:\n(?:.*\n)*?\s+resources: .*?mem_mb=(\d+),.*?runtime=(\d+)",
                       text)
    want = [gpgrid.batch_resources(b) for b in [*free.values(), *selected.values()]]
    assert sorted((int(m), int(t)) for m, t in asked) == sorted(
        (w["mem_mb"], w["runtime"]) for w in want), (asked, want)
    assert_same_tables(smoke_study[0], slurm_smoke_run.work)


# -- the report in headless Chromium -----------------------------------------------------------
@pytest.mark.slow
@pytest.mark.needs("chromium")
def test_report_opens_offline_without_console_errors(smoke_study, tmp_path):
    from playwright.sync_api import sync_playwright

    work, _ = smoke_study
    report = work / "report.html"
    errors, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=needs.chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(report.as_uri(), wait_until="load")
        page.wait_for_timeout(1500)
        body = page.inner_text("body")
        assert "gradpath" in body and "smoke" in body  # the workflow description opens the page
        shown = 0
        for cat, kind in CATEGORIES:
            assert cat in body, cat
            page.get_by_text(cat, exact=True).first.click()
            page.wait_for_timeout(400)
            # the first item shown in the page (a CSV's button downloads it instead)
            page.locator('a[iconname="eye"][href="#"]').first.click()
            page.wait_for_timeout(800)
            widths = page.eval_on_selector_all(
                "img", "els => els.filter(e => e.src.startsWith('data:image/png'))"
                       ".map(e => e.naturalWidth)")
            figure = bool(widths) and max(widths) > 300  # the PNG is embedded and decodes
            table = page.locator("iframe").count() >= 1  # the HTML table is embedded
            assert {"figure": figure, "table": table, "any": figure or table}[kind], cat
            shown += 1
            page.goto(report.as_uri(), wait_until="load")
            page.wait_for_timeout(600)
        assert shown == len(CATEGORIES)
        page.screenshot(path=str(tmp_path / "report.png"))
        browser.close()
    assert errors == [], errors
    external = [u for u in requests if not u.startswith(("file:", "data:", "blob:", "about:"))]
    assert external == [], f"the report fetched {external[:3]} (must open offline)"
    html = report.read_text(errors="replace")
    for name in ("a_decay_curves", "b_decay_rate_theory", "c_training_curves",
                 "d_success_by_length", "e_clipping_divergence", "f_decay_through_training",
                 "g_lyapunov_spectrum", "h_pascanu_cliff"):
        assert name in html, name


def _report_page(p, report: Path):
    """A Chromium page on the report, its console errors collected in ``page.errors``."""
    browser = p.chromium.launch(executable_path=needs.chromium_path(), args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page.errors = []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(report.as_uri(), wait_until="load")
    page.wait_for_timeout(800)
    return browser, page


@pytest.mark.slow
@pytest.mark.needs("chromium")
def test_report_downloads_every_table_as_its_csv_and_links_each_finding(smoke_study, tmp_path):
    """The report as a source of numbers: every table it shows is also a CSV
    whose download holds the file the workflow wrote (and the shown table's
    rows); the config as used and every provenance field are in it; and each
    finding on the front page links to the figure and the table that decide it."""
    from playwright.sync_api import sync_playwright

    from gradpath.results import run_provenance as provenance

    work, _ = smoke_study
    study = work / "results" / "smoke"
    report = work / "report.html"
    content = "div.h-screen.overflow-auto"  # the report's main panel
    with sync_playwright() as p:
        browser, page = _report_page(p, report)
        # the report's own index of its items (file name, type, label, category)
        items = {i["name"]: i for i in page.evaluate(
            """() => Object.entries(categories).flatMap(([cat, subs]) =>
                 Object.values(subs).flat().map(path => ({path, category: cat,
                   name: results[path].filename, mime: results[path].mime_type,
                   label: Object.values(results[path].labels)[0]})))""")}

        def open_category(name: str):
            page.goto(report.as_uri(), wait_until="load")
            page.get_by_text(items[name]["category"], exact=True).first.click()
            page.wait_for_timeout(300)
            row = page.locator("tr").filter(has=page.get_by_text(items[name]["label"],
                                                                exact=True))
            return row.locator('a[iconname="eye"]')

        csvs = {n for n, i in items.items() if i["mime"] == "text/csv"}
        shown = {n for n, i in items.items() if i["mime"] == "text/html"}
        # every table shown is also a CSV; every CSV the workflow wrote is in the report
        assert {n.removesuffix(".html") + ".csv" for n in shown} <= csvs
        assert csvs == {f.name for f in (study / "tables").glob("*.csv")}
        for name in sorted([*csvs, "config.yaml"]):
            with page.expect_download() as got:
                open_category(name).click()
            saved = tmp_path / name
            got.value.save_as(saved)
            disk = study / "tables" / name if name in csvs else study / name
            assert saved.read_bytes() == disk.read_bytes(), name
            twin = name.removesuffix(".csv") + ".html"
            if twin not in shown:
                continue
            table = pd.read_csv(saved)
            assert len(table) > 0, name
            # the table shown holds its rows (provenance: one column per row)
            open_category(twin).click()
            page.wait_for_timeout(500)
            frame = page.frame_locator(f"{content} iframe")
            rows = frame.locator("table tbody tr").count()
            cols = frame.locator("table thead th").count()
            assert (cols - 1 if name == "provenance.csv" else rows) == len(table), name
        # the config as used: plain YAML that runs the same grid as the config given
        used = yaml.safe_load((study / "config.yaml").read_text())
        validate(used, str(SCHEMA))
        assert ([r.run_id for r in gpgrid.train_runs(used["train"])]
                == [r.run_id for r in gpgrid.train_runs(_spec()["train"])])
        # every field of the provenance the runs record, as this process sees it
        fields = pd.read_csv(study / "tables" / "study.csv", dtype=str, keep_default_na=False)
        fields = dict(zip(fields["field"], fields["value"], strict=True))
        assert {k: fields.get(k) for k in provenance()} == provenance()
        # each finding on the front page: its figure and its table, one click away
        found = pd.read_csv(study / "tables" / "findings.csv")
        page.goto(report.as_uri(), wait_until="load")
        assert page.locator("div.findings li").count() == len(found)
        for k, row in found.iterrows():
            figure, table = row["figure"].split("; ")[0], row["table"].split("; ")[0]
            for name, kind in ((figure, "img"), (table.replace(".csv", ".html"), "iframe")):
                assert name in items, name
                page.goto(report.as_uri(), wait_until="load")
                finding = page.locator("div.findings li").nth(k)
                assert row["claim"] in finding.inner_text()
                finding.get_by_role("link", name=name.rsplit(".", 1)[0], exact=True).click()
                page.wait_for_timeout(300)
                shows = page.locator(f"{content} {kind}")
                assert f";filename={name};" in shows.get_attribute("src"), (row["claim"], name)
                if kind == "img":
                    assert shows.evaluate("e => e.naturalWidth") > 300, name
        errors = page.errors
        browser.close()
    assert errors == [], errors
