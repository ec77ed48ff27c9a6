"""The command line, run as a user runs it: in a subprocess."""

from __future__ import annotations

import argparse
import inspect
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from gradpath import cli, grid, vocab
from gradpath.cli import build_parser, main

PROBE_FLAGS = ("--cell", "--activation", "--init", "--gain", "--hidden", "--seq-len", "--batch",
               "--input-std", "--bias-std", "--seed", "--out", "--json", "--progress")
TRAIN_FLAGS = ("--task", "--cell", "--activation", "--init", "--gain", "--clip",
               "--clip-threshold", "--optimizer", "--lr", "--hidden", "--seq-len", "--batch",
               "--steps", "--seed", "--out", "--json")


def gradpath(*args: str, script: bool = False) -> subprocess.CompletedProcess:
    """Run the CLI: ``python -m gradpath.cli`` or the installed console script."""
    cmd = [str(Path(sys.executable).parent / "gradpath")] if script else \
        [sys.executable, "-m", "gradpath.cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300)


def test_python_dash_m_gradpath_is_the_cli():
    out = subprocess.run([sys.executable, "-m", "gradpath", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "probe" in out.stdout and "train" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "gradpath", "probe", "--cell", "transformer"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--cell" in bad.stderr


def test_train_progress_on_stderr_only_when_asked():
    """Step, loss, clipped share and ETA on stderr (the JSON on stdout stays clean);
    off by default when stderr is not a terminal."""
    args = ("train", "--steps", "30", "--seq-len", "10", "--hidden", "8", "--json")
    shown = gradpath(*args, "--progress")
    assert shown.returncode == 0
    json.loads(shown.stdout)
    last = shown.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"step 30/30  loss \S+  clipped \d+%  elapsed \d+ s  ETA 0 s", last), last
    quiet = gradpath(*args)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_probe_progress_on_stderr_only_when_asked():
    """Step (of the Lyapunov pass: burn-in + T per seed) and ETA on stderr; the
    same numbers with and without it."""
    args = ("probe", "--seq-len", "30", "--burn-in", "10", "--hidden", "8", "--json")
    shown = gradpath(*args, "--progress")
    assert shown.returncode == 0
    last = shown.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"step 40/40  elapsed \d+ s  ETA 0 s", last), last
    quiet = gradpath(*args)
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert json.loads(shown.stdout) == json.loads(quiet.stdout)


def _json(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout  # one JSON object, nothing else

    def no_nan(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(lines[0], parse_constant=no_nan)


# -- probe ---------------------------------------------------------------------------------
def test_probe_json_and_out(tmp_path):
    out = _json(gradpath("probe", "--cell", "rnn", "--activation", "tanh", "--init", "gaussian",
                         "--gain", "1.0", "--hidden", "64", "--seq-len", "120", "--batch", "4",
                         "--input-std", "1.0", "--bias-std", "0.1", "--seed", "3",
                         "--out", str(tmp_path), "--json"))
    for key in ("decay_rate", "theory_slope", "lyapunov", "horizon", "log10_grad_norm"):
        assert key in out
    assert isinstance(out["decay_rate"], float) and out["decay_rate"] < -0.1
    assert abs(out["theory_slope"] - out["decay_rate"]) < 0.05
    assert isinstance(out["lyapunov"], float)
    assert isinstance(out["horizon"], int) and 0 < out["horizon"] < 120
    curve = out["log10_grad_norm"]
    assert len(curve) == 120 and all(isinstance(v, float) for v in curve)
    assert curve[0] == pytest.approx(0.0, abs=1e-12)  # indexed by lag: lag 0 first
    assert curve[out["horizon"]] < -6 <= curve[out["horizon"] - 1]
    rid = out["run_id"]
    for suffix in (".json", ".runs.parquet", ".curves.parquet", ".training.parquet"):
        assert (tmp_path / f"{rid}{suffix}").exists()
    summary = json.loads((tmp_path / f"{rid}.json").read_text())
    assert summary["decay_rate"] == out["decay_rate"] and summary["seed"] == 3


def test_probe_json_nulls_where_no_theory_and_no_horizon():
    out = _json(gradpath("probe", "--activation", "relu", "--init", "identity", "--hidden", "32",
                         "--seq-len", "60", "--batch", "2", "--json", script=True))
    assert out["theory_slope"] is None
    assert out["horizon"] is None
    assert abs(out["decay_rate"]) < 0.05


# -- train -----------------------------------------------------------------------------------
TRAIN_KEYS = ("status", "diverged_at", "final_loss", "baseline", "success", "clipped_fraction",
              "steps")


def test_train_json_and_out(tmp_path):
    out = _json(gradpath("train", "--task", "sine", "--cell", "rnn", "--activation", "tanh",
                         "--init", "orthogonal", "--gain", "1.0", "--clip", "norm",
                         "--clip-threshold", "1.0", "--optimizer", "adam", "--lr", "0.01",
                         "--hidden", "16", "--seq-len", "20", "--batch", "8", "--steps", "40",
                         "--seed", "1", "--out", str(tmp_path), "--json"))
    for key in TRAIN_KEYS:
        assert key in out
    assert out["status"] == "finished" and out["diverged_at"] is None
    assert out["steps"] == 40
    assert isinstance(out["final_loss"], float) and math.isfinite(out["final_loss"])
    assert out["baseline"] == pytest.approx(0.0754, abs=1e-4)  # sine: predicting the last value
    assert isinstance(out["success"], bool)
    assert 0.0 <= out["clipped_fraction"] <= 1.0
    rid = out["run_id"]
    for suffix in (".json", ".runs.parquet", ".curves.parquet", ".training.parquet"):
        assert (tmp_path / f"{rid}{suffix}").exists()


def test_train_divergence_is_a_result_and_clipping_fixes_it():
    args = ("train", "--task", "adding", "--activation", "relu", "--init", "gaussian", "--gain",
            "3", "--optimizer", "sgd", "--lr", "0.01", "--hidden", "32", "--seq-len", "50",
            "--steps", "30", "--json")
    out = _json(gradpath(*args, "--clip", "none"))
    assert out["status"] == "diverged"
    assert isinstance(out["diverged_at"], int) and out["steps"] == out["diverged_at"]
    assert out["final_loss"] is None and out["success"] is False
    clipped = _json(gradpath(*args, "--clip", "norm", "--clip-threshold", "1"))
    assert clipped["status"] == "finished" and clipped["steps"] == 30
    assert clipped["clipped_fraction"] > 0


# -- help ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("command, flags", [("probe", PROBE_FLAGS), ("train", TRAIN_FLAGS)])
def test_help_documents_every_flag(command, flags):
    proc = gradpath(command, "--help")
    assert proc.returncode == 0 and proc.stderr == ""
    for flag in flags:
        assert flag in proc.stdout, flag
    # every option carries a help text (in-process: the same parser)
    sub = next(a for a in build_parser()._subparsers._group_actions).choices[command]
    for action in sub._actions:
        assert action.help, action.option_strings


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, named", [
    (("probe", "--cell", "transformer"), "--cell"),  # unknown choice
    (("probe", "--gain", "-1"), "--gain"),  # negative gain
    (("train", "--hidden", "2.5"), "--hidden"),  # non-integer
    (("train", "--frobnicate", "3"), "--frobnicate"),  # unknown flag
    (("train", "--seq-len", "1", "--steps", "1"), "seq_len"),  # caught by the library
    (("train", "--seq-len", "3000000000"), "seq_len=3000000000"),  # cannot fit in memory
    (("probe", "--seq-len", "3000000000"), "seq_len + burn_in=3000000"),
])
def test_bad_flags_give_a_one_line_error_and_status_2(args, named):
    proc = gradpath(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert named in lines[0] and "error" in lines[0]


@pytest.mark.parametrize("args, named", [
    (["probe", "--init", "xavier"], "--init"),
    (["probe", "--activation", "sigmoid"], "--activation"),
    (["probe", "--hidden", "0"], "--hidden"),
    (["probe", "--batch", "-4"], "--batch"),
    (["probe", "--seq-len", "ten"], "--seq-len"),
    (["probe", "--input-std", "nan"], "--input-std"),
    (["probe", "--bias-std", "inf"], "--bias-std"),
    (["probe", "--seed", "-1"], "--seed"),
    (["probe", "--seq-len", "2"], "seq_len"),
    (["train", "--task", "parity"], "--task"),
    (["train", "--clip", "global"], "--clip"),
    (["train", "--clip-threshold", "0"], "--clip-threshold"),
    (["train", "--optimizer", "lbfgs"], "--optimizer"),
    (["train", "--lr", "-0.1"], "--lr"),
    (["train", "--steps", "1.5"], "--steps"),
    (["train", "--gain", "abc"], "--gain"),
    (["frobnicate"], "frobnicate"),
])
def test_more_bad_values_in_process(args, named, capsys):
    try:
        status = main(args)
    except SystemExit as exc:
        status = exc.code
    assert status == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], captured.err


# -- defaults: the default study's ---------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]


def _study(name: str = "default") -> dict:
    """A shipped config with the schema's defaults filled in, as the workflow sees it."""
    cfg = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())
    validate(cfg, str(ROOT / "configs" / "schema.yaml"))
    return cfg


def _schema_defaults() -> dict:
    cfg = {"name": "defaults"}
    validate(cfg, str(ROOT / "configs" / "schema.yaml"))
    return cfg


def test_probe_defaults_are_the_default_studys():
    """`gradpath probe` with its defaults is one of the default study's probes:
    the same settings as configs/default.yaml and the schema's defaults, and
    the same run id."""
    cfg = cli.probe_config(build_parser().parse_args(["probe"]))
    study, schema = _study()["probe"], _schema_defaults()["probe"]
    for key in ("hidden", "seq_len", "batch", "input_std", "bias_std", "burn_in", "lyapunov_k"):
        assert getattr(cfg, key) == study[key] == schema[key], key
    assert vocab.model_of(cfg.cell, cfg.activation).label in study["models"]
    assert cfg.init in study["inits"] and cfg.gain in study["gains"]
    assert set(cfg.seeds) <= set(study["seeds"])
    assert cfg.run_id in {r.run_id for r in grid.probe_runs(study)}
    # the schema's names by default are the default study's
    assert schema["models"] == study["models"] and schema["inits"] == study["inits"]


def test_train_defaults_are_the_default_studys():
    """`gradpath train` with its defaults shares every setting with the schema's
    block defaults and with a reported run of the default study, except what
    its help says differs (the study's learning-rate sweep)."""
    cfg = cli.train_config(build_parser().parse_args(["train"]))
    block = _schema_defaults()["train"][0]
    for key in ("gain", "clip_threshold", "optimizer", "lr", "hidden", "batch", "steps",
                "eval_every", "eval_batches", "ragged", "dtype"):
        assert getattr(cfg, key) == block[key], key
    mine = {k: v for k, v in cfg.as_dict().items() if k not in ("lr", "clip_threshold")}
    same = [r for r in grid.train_runs(_study()["train"])
            if r.config["stage"] == grid.REPORT
            and {k: r.config.get(k) for k in mine} == mine]
    assert same, "no reported run of the default study has the CLI's defaults"
    run = same[0]
    if run.config["lr"] is None:  # the study sweeps the rate: --help says so
        assert [cfg.lr, cfg.clip_threshold] in run.config["candidates"]
        assert "sweep" in cli.TRAIN_NOT_STUDY
        assert " ".join(cli.TRAIN_NOT_STUDY.split()) in " ".join(
            gradpath("train", "--help").stdout.split())
    else:  # the same run
        assert cfg.lr == run.config["lr"] and cfg.clip_threshold == run.config[
            "clip_threshold"] and cfg.run_id() == run.run_id


DEFAULT_TABLES = {"demo": "DEMO_DEFAULTS", "probe": "PROBE_DEFAULTS", "train": "TRAIN_DEFAULTS"}


def _flags(command: str) -> dict:
    """The options of a sub-command, by destination."""
    sub = next(a for a in build_parser()._actions
               if isinstance(a, argparse._SubParsersAction)).choices[command]
    return {a.dest: a for a in sub._actions if a.option_strings and a.dest != "help"}


def _other(value):
    """A value of the same type that no table holds."""
    return value + "-x" if isinstance(value, str) else value + (7919 if isinstance(value, int)
                                                                else 0.123)


@pytest.mark.parametrize("command", sorted(DEFAULT_TABLES))
def test_every_cli_default_comes_from_its_table(command, monkeypatch):
    """One place per default: a sub-command's flags take their defaults (and
    their help the values) from its table in gradpath.cli, and no other flag
    has a default but off (None, False)."""
    table = getattr(cli, DEFAULT_TABLES[command])
    flags = _flags(command)
    assert set(table) <= set(flags), set(table) - set(flags)
    for dest, action in flags.items():
        if dest in table:
            assert action.default == table[dest], dest
            assert str(table[dest]) in action.help, (dest, action.help)
        else:
            assert action.default in (None, False), (dest, action.default)
    for key, value in table.items():  # read from the table, not equal to it by chance
        monkeypatch.setitem(table, key, _other(value))
    assert {d: a.default for d, a in _flags(command).items() if d in table} == table


def test_demo_defaults_are_the_demo_tables():
    """`gradpath demo` with its defaults prints decay_table() with its defaults."""
    from gradpath.demo import decay_table

    params = inspect.signature(decay_table).parameters
    assert cli.DEMO_DEFAULTS == {k: params[k].default for k in cli.DEMO_DEFAULTS}


# -- --out: checked before any work; a finished run is never lost (issue 17, D4) ------------
TINY_TRAIN = ("train", "--task", "adding", "--hidden", "8", "--seq-len", "6", "--batch", "4",
              "--eval-every", "2")


@pytest.mark.parametrize("kind", ["file", "under-a-file"])
@pytest.mark.parametrize("command", ["train", "probe"])
def test_an_out_path_that_cannot_take_the_run_fails_before_any_work(tmp_path, capsys, kind,
                                                                    command):
    existing = tmp_path / "results.txt"
    existing.write_text("not a folder")
    out = existing if kind == "file" else existing / "runs"
    # a run that would take minutes: refused at once, before it starts
    args = [*TINY_TRAIN, "--steps", "10000000"] if command == "train" else [
        "probe", "--hidden", "8", "--seq-len", "10000000"]
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0] and str(existing) in err[0], err
    assert existing.read_text() == "not a folder"


def test_a_run_whose_files_cannot_be_written_at_the_end_is_not_lost(tmp_path, capsys,
                                                                   monkeypatch):
    from gradpath import results

    write_run = results.write_run
    target = tmp_path / "out"

    def disk_full(out_dir, tables):
        if Path(out_dir) == target:
            raise OSError(28, "No space left on device")
        return write_run(out_dir, tables)

    monkeypatch.setattr(results, "write_run", disk_full)
    assert main([*TINY_TRAIN, "--steps", "4", "--out", str(target), "--json"]) == 1
    captured = capsys.readouterr()
    out = json.loads(captured.out)  # the result still reaches stdout
    assert out["status"] == "finished" and out["steps"] == 4
    line = captured.err.strip().splitlines()[-1]
    assert "No space left on device" in line and "its files are in" in line
    fallback = Path(line.rsplit("its files are in ", 1)[1])
    assert (fallback / f"{out['run_id']}.json").exists()
    assert results.is_finished(fallback, out["run_id"])
