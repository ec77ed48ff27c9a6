"""The benchmark scripts' statistics and tables, without timing anything: the
gate's bootstrap interval and verdicts (``bench/gate.py``) and the Markdown
tables of the gate, the target check and the peer comparison."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import check_targets  # noqa: E402
import gate  # noqa: E402
import peers  # noqa: E402
from bench_cases import CACHE_LOAD_KEY, Case, md_table  # noqa: E402


def rows(table: str) -> list[list[str]]:
    """Header and body rows of a Markdown table as stripped cells."""
    return [[c.strip() for c in line.strip().split("|")[1:-1]] for line in table.splitlines()
            if line.startswith("|") and not re.fullmatch(r"[|:\- ]+", line.strip())]


def alignments(table: str) -> str:
    """``l``/``r`` per column, from the separator row."""
    sep = next(line for line in table.splitlines() if re.fullmatch(r"[|:\- ]+", line.strip()))
    return "".join("r" if c.strip().endswith(":") and not c.strip().startswith(":") else "l"
                   for c in sep.strip().split("|")[1:-1])


def test_median_ci_is_reproducible_and_brackets_the_median():
    ratios = [1.02, 0.98, 1.10, 1.05, 0.97, 1.30, 1.01, 0.99]
    med, lo, hi = gate.median_ci(ratios)
    assert med == pytest.approx(np.median(ratios))
    assert min(ratios) <= lo <= med <= hi <= max(ratios)
    assert gate.median_ci(ratios) == (med, lo, hi)  # a fixed seed: the same verdict every time
    assert gate.median_ci(iter(ratios)) == (med, lo, hi)  # any iterable
    # another generator draws other resamples; a percentile interval of medians
    # still consists of values the medians of resamples can take
    _, lo2, hi2 = gate.median_ci(ratios, np.random.default_rng(7))
    assert min(ratios) <= lo2 <= hi2 <= max(ratios)
    assert gate.median_ci([1.2]) == (1.2, 1.2, 1.2)


def test_median_ci_interval_narrows_with_more_pairs():
    rng = np.random.default_rng(0)
    few = 1 + 0.1 * rng.standard_normal(7)
    many = 1 + 0.1 * rng.standard_normal(200)
    _, lo_f, hi_f = gate.median_ci(few)
    _, lo_m, hi_m = gate.median_ci(many)
    assert hi_m - lo_m < hi_f - lo_f


class FakeRounds:
    def __init__(self, head: list[float], base: list[float]) -> None:
        self.t = {"head": head, "base": base}

    def samples(self, side: str, key: str) -> list[float]:
        return self.t[side]


@pytest.mark.parametrize(("ratios", "verdict"), [
    ([1.0, 1.02, 0.97, 1.05, 0.99, 1.01, 1.03], "OK"),          # same code
    ([1.30, 1.35, 1.28, 1.40, 1.33, 1.31, 1.36], "FAIL"),       # slower, not by chance
    ([1.0, 1.25, 0.95, 1.4, 1.18, 1.3, 0.9], "WARN"),           # slower median, wide interval
    ([0.60, 0.62, 0.58, 0.65, 0.61, 0.59, 0.63], "FASTER"),
])
def test_gate_verdicts_from_the_interval(ratios, verdict):
    base = [0.010 * (1 + 0.01 * i) for i in range(len(ratios))]
    rounds = FakeRounds([r * b for r, b in zip(ratios, base, strict=True)], base)
    row = gate.gate_row(rounds, Case("rnn", "small", "float32"), 0.15)
    assert row["verdict"] == verdict, row
    assert row["pairs"] == len(ratios)
    assert row["ratio"] == pytest.approx(np.median(ratios))


def test_md_table_aligns_and_keeps_cells_as_written():
    table = md_table(["name", "value"], [["a", "1.10"], ["bb", "–"]], "lr")
    assert rows(table) == [["name", "value"], ["a", "1.10"], ["bb", "–"]]
    assert alignments(table) == "lr"
    assert len({len(line) for line in table.splitlines()}) == 1
    with pytest.raises(ValueError, match="align"):
        md_table(["name", "value"], [], "l")


def test_gate_markdown_tables(capsys):
    gate_rows = [
        {"case": "rnn-small-float32", "base_ms": 1.234, "head_ms": 1.5, "ratio": 1.2154,
         "ci": [1.1, 1.31], "pairs": 7, "verdict": "WARN"},
        {"case": "gru-small-float32", "base_ms": None, "head_ms": 2.0, "ratio": None,
         "ci": None, "pairs": 0, "verdict": "NEW", "base_error": "no GRU in base"},
    ]
    checks = [{"check": "lstm large float32 / float64", "ratio": 0.61, "ci": [0.58, 0.66],
               "pairs": 7, "limit": "< 1", "verdict": "OK"}]
    md = gate.print_tables(gate_rows, checks, 0.15)
    assert "rnn-small-float32" in capsys.readouterr().out  # the console table too
    tables = md.split("\n\n")
    assert rows(tables[0]) == [
        ["case", "base ms", "head ms", "head/base", "95 % CI", "pairs", "verdict"],
        ["rnn-small-float32", "1.23", "1.5", "1.215", "1.10-1.31", "7", "WARN"],
        ["gru-small-float32", "–", "2", "–", "–", "0", "NEW"]]
    assert alignments(tables[0]) == "lrrrrrl"
    assert "NEW: head only, not compared" in md and "no GRU in base" in md
    assert rows(tables[-1]) == [
        ["head-only check", "ratio", "95 % CI", "limit", "pairs", "verdict"],
        ["lstm large float32 / float64", "0.610", "0.58-0.66", "< 1", "7", "OK"]]
    assert md.endswith("|\n")


def test_target_check_markdown_table():
    m = {"cell": "lstm", "size": "medium", "B": 32, "H": 128, "D": 2, "T": 200,
         "dtype": "float32", "kernel_ms": 3.21, "twin_ms": 40.0, "speedup": 12.46}
    table = check_targets.markdown_table([
        {"key": "k", "m": m}, {"key": "absent", "m": None},
        {"key": CACHE_LOAD_KEY, "m": {"median_s": 0.42}}])
    body, cache = table.split("\n\n")
    assert rows(body)[0] == ["cell", "B", "H", "D", "T", "dtype", "kernel ms", "twin ms",
                             "speed-up", "target"]
    assert rows(body)[1][:6] == ["LSTM", "32", "128", "2", "200", "float32"]
    assert rows(body)[1][-1].startswith("≥ ") and len(rows(body)) == 2
    assert "**0.42 s**" in cache


def test_peers_markdown_table():
    row = {"key": "k", "kind": "kernel", "cell": "lstm", "B": 1, "H": 128, "D": 2, "T": 100,
           "dtype": "float32", "peer": True, "torch_path": peers.LOOP,
           "ms": {"gradpath": 1.5, "torch": 3.0, "jax": math.nan}, "vs_best_peer": 0.5,
           "problems": {"jax": "not installed"}, "gflops": 12.3, "roof_fraction": 0.25,
           "peak_mb": {"gradpath": 10.0, "torch": 20.0, "jax": math.nan},
           "memory_floor_mb": 8.0, "targets": {"fast": True, "roof": False}}
    update = {**row, "kind": "update", "peer": False, "torch_path": "nn", "problems": {},
              "targets": {}}
    for k in ("gflops", "roof_fraction", "peak_mb", "memory_floor_mb"):
        del update[k]
    table = peers.peers_table([row, update])
    got = rows(table)
    assert got[0][:5] == ["case", "dtype", "gradpath", "torch", "jax"] and len(got[0]) == 11
    assert got[1] == ["lstm 1,128,2,100", "float32", "1.5", "3 †", "–", "0.5", "12.3", "25",
                      "10 / 20 / –", "8", "roof; jax: not installed"]
    assert got[2][0] == "update lstm B1 H128 T100" and got[2][-1] == "no peer module"
    assert got[2][8] == "–"
    assert alignments(table) == "llrrrrrrrrl"


def _peer_row(cell, kind, B, dtype, ratio, targets, torch_path="nn.LSTM"):
    return {"key": f"{kind}-{cell}-{B}-{dtype}", "kind": kind, "cell": cell, "B": B, "H": 64,
            "D": 2, "T": 100, "dtype": dtype, "peer": True, "torch_path": torch_path,
            "ms": {"gradpath": ratio, "torch": 1.0, "jax": 2.0}, "vs_best_peer": ratio,
            "problems": {}, "roof_fraction": 0.5, "targets": targets}


def test_peers_readme_block_counts_targets_and_names_misses(tmp_path):
    slower = "no slower than the faster peer"
    b1 = f">= {peers.B1_VS_BEST:g}x the faster peer at B = 1"
    upd = f">= {peers.TRAIN_VS_BEST:g}x the faster peer per update"
    data = {"cpu": "Some CPU (family 1, model 2)", "threads": 2, "date": "2026-12-06",
            "versions": {"gradpath": "1.0", "torch": "2.0", "jax": "0.1"},
            "roof_gflops": {"float32": 200.0, "float64": 100.0},
            "scaling": {"slopes": {"lstm H gradpath": 1.95, "lstm H torch": 2.2}},
            "rows": [_peer_row("lstm", "kernel", 16, "float32", 1.07, {slower: False}),
                     _peer_row("lstm", "kernel", 16, "float64", 0.4, {slower: True}),
                     _peer_row("lstm", "kernel", 1, "float64", 0.51, {slower: True, b1: False}),
                     _peer_row("lstm", "train", 16, "float32", 0.4, {slower: True, upd: True}),
                     _peer_row("lstm", "train", 64, "float32", 0.8, {slower: True, upd: False}),
                     # a cell PyTorch runs in a Python loop: not in the README's block
                     _peer_row("indrnn", "kernel", 16, "float32", 3.0, {slower: False},
                               torch_path=peers.LOOP)]}
    block = peers.readme_block(data)
    assert "Some CPU (family 1, model 2)" in block and "2026-12-06" in block
    assert "PyTorch 2.0" in block and "JAX 0.1" in block
    header, *table = rows(block)
    assert header == ["cell", "B, H, D, T", "f32 gradpath", "f32 torch", "f32 jax", "f32 ratio",
                      "f64 gradpath", "f64 torch", "f64 jax", "f64 ratio"]
    # one row per cell and size, both precisions side by side; the loop-run cell is left out
    assert table == [["lstm", "16, 64, 2, 100", "1.07", "1", "2", "1.07", "0.4", "1", "2", "0.4"],
                     ["lstm", "1, 64, 2, 100", "–", "–", "–", "–", "0.51", "1", "2", "0.51"]]
    assert "no slower than the faster peer: 1 of 2; missed: lstm 16,64,2,100 float32 " \
           "(1.07x the faster peer's time)" in block
    assert "faster peer: 0 of 1; missed: lstm 1,64,2,100 float64 (1.96x)" in block
    # a miss never rounds onto its target: 1 / 0.5005 = 1.998 reads 1.99x, not 2
    near = {**data, "rows": [_peer_row("rnn", "kernel", 1, "float32", 0.5005,
                                       {slower: True, b1: False})]}
    assert "(1.99x)" in peers.readme_block(near)
    assert "per update" not in block and \
        "1 of 2; missed: update lstm B64 H64 T100 float32 (1.25x)" in block and \
        "faster in 2 of 2" in block
    assert "slope at most 2.1: lstm 1.95" in block and "2.2" not in block.split("slope")[-1]

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{peers.README_START}\nold\n{peers.README_END}\n\nrest\n")
    peers.write_readme(readme, block)
    peers.write_readme(readme, block)  # idempotent: the block replaces itself
    text = readme.read_text()
    assert "old" not in text and text.count(block) == 1 and text.endswith("\n\nrest\n")
    assert peers.readme_block({**data, "rows": data["rows"][-1:]}) is None
    with pytest.raises(SystemExit, match="no <!-- peers:start -->"):
        peers.write_readme(_no_markers(tmp_path), block)


def _no_markers(tmp_path):
    p = tmp_path / "plain.md"
    p.write_text("# nothing to replace\n")
    return p


def test_a_revision_is_built_by_two_workers_and_then_runs_every_case():
    """``gate.build``: a helper worker builds the float32 cases while the
    base's own worker builds the float64 ones, then the base worker loads the
    float32 ones too and times every case; a case the base cannot run comes
    back as an error, from either half. Here on the suite's warm kernel cache
    (so nothing compiles), with the suite's own sources as the base."""
    from gradpath.kernels import jit

    class NoSuchCell(Case):  # a cell this revision does not have
        def spec(self) -> dict:
            return {**super().spec(), "cell": "nosuch"}

    cases = [Case("rnn", "small", "float32"), Case("gru", "small", "float64"),
             Case("rnn", "small", "float64")]
    missing = [NoSuchCell("indrnn", "small", "float32"), NoSuchCell("indrnn", "small", "float64")]
    base, errors = gate.build("base", Path(jit.__file__).parents[2], cases + missing,
                              {"NUMBA_CACHE_DIR": str(jit.CACHE_DIR.parent)})
    try:
        assert sorted(errors) == sorted(c.key for c in missing)
        assert all("no cell 'nosuch'" in e for e in errors.values()), errors
        for case in cases:
            assert base.time(case.key, 1) > 0, case.key
    finally:
        base.close()
    assert base.proc.returncode == 0


def test_the_worker_times_a_training_update_for_ab_updates():
    """``bench/ab_updates.py``'s cases: a ``train`` spec of ``peer_cases`` is
    one training update in the gate's worker, built like ``make
    bench-peers``'s gradpath update; a cell the revision lacks is an error."""
    from peer_cases import train_specs

    from gradpath.kernels import jit

    spec = next(s for s in train_specs() if s["key"] == "train-rnn-B16-H64-T100-float64")
    worker = gate.Worker("head", Path(jit.__file__).parents[2],
                         {"NUMBA_CACHE_DIR": str(jit.CACHE_DIR.parent)})
    try:
        reply = worker.request(cmd="setup", cases=[spec, {**spec, "cell": "nosuch",
                                                          "key": "nosuch"}])
        assert reply["ok"] == [spec["key"]] and list(reply["errors"]) == ["nosuch"], reply
        assert worker.time(spec["key"], 2) > 0
    finally:
        worker.close()
    assert worker.proc.returncode == 0
