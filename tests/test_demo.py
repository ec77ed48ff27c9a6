"""`make run` until the grid exists: the decay table of the lecture."""

from __future__ import annotations

import subprocess
import sys

from gradpath.demo import DEMO_LAGS, decay_table, demo_lags_ok, format_table


def test_demo_table_shows_the_lecture():
    rows = decay_table(hidden=64, seq_len=101, batch=16, seed=0)
    assert {(r["activation"], r["init"]) for r in rows} == {
        (a, i) for a in ("tanh", "relu") for i in ("identity", "gaussian", "orthogonal")}
    get = {(r["activation"], r["init"]): r for r in rows}
    tg, ri = get[("tanh", "gaussian")], get[("relu", "identity")]
    # tanh + gaussian loses many orders of magnitude; the IRNN keeps most of its norm
    assert tg["lag_100"] / tg["lag_0"] < 1e-4
    assert ri["lag_100"] / ri["lag_0"] > 0.5
    assert demo_lags_ok(rows)
    text = format_table(rows)
    assert all(f"lag {k}" in text for k in DEMO_LAGS)


def test_demo_cli_prints_the_table():
    out = subprocess.run([sys.executable, "-m", "gradpath.cli", "demo", "--hidden", "32",
                          "--batch", "4"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "relu       identity" in out.stdout and "lag 100" in out.stdout


def test_demo_cli_bad_flag_is_one_line_and_status_2():
    out = subprocess.run([sys.executable, "-m", "gradpath.cli", "demo", "--seq-len", "50"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "seq_len" in out.stderr
    assert "Traceback" not in out.stderr
