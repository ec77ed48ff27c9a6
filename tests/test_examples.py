"""The examples run as a user runs them, and show what they say they show."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_sine_wave_example_learns_and_plots(tmp_path):
    """The lecture's exercise: the RNN's held-out one-step error ends well below
    repeating the last value, and the figure is written."""
    png = tmp_path / "sine.png"
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "sine_wave.py"), "--steps",
                          "200", "--out", str(png)], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    mse, baseline = (float(v) for v in re.findall(r"(\d+\.\d+)", out.stdout)[:2])
    assert mse < 0.5 * baseline, out.stdout
    assert png.stat().st_size > 20_000
