"""The repository stands alone: its licence is the one pyproject.toml declares, and no
file cites design notes that live outside it."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_license_file_is_the_declared_mit_licence():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    text = (ROOT / "LICENSE").read_text()
    assert declared == "MIT"
    assert text.startswith("MIT License") and "Permission is hereby granted" in text


def test_no_file_cites_notes_outside_the_repository():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    # spelled in pieces so that this file does not match itself
    pattern = re.compile("|".join(["DESIGN" + r"\.md", "SCIENCE" + r"\.md", r"\.\./" + "shared"]))
    hits = []
    for name in tracked:
        path = ROOT / name
        if path.suffix in {".png", ".parquet"} or not path.is_file():
            continue
        for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if pattern.search(line):
                hits.append(f"{name}:{i}: {line.strip()}")
    assert not hits, "\n".join(hits)
    # and the check can fail: the pattern finds a citation
    assert pattern.search("see " + "SCIENCE" + ".md, section 2")
