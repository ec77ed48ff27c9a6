"""The README and docs/ stay readable and true: every relative link resolves
(file and, where given, heading), the README stays short, and the generated
API reference matches the docstrings."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")),
         ROOT / "bench" / "README.md"]
# [text](target) and ![alt](target), skipping code spans and fenced blocks.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
CODE = re.compile(r"`[^`\n]*`")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    text = CODE.sub(lambda m: m.group(0).strip("`"), heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, re.M)}


def links(page: Path) -> list[str]:
    text = CODE.sub("", FENCE.sub("", page.read_text()))
    return LINK.findall(text)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    bad = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not bad, f"{page.relative_to(ROOT)}: broken links: {bad}"


def test_link_checker_sees_broken_links(tmp_path):
    """The checker itself can fail: a missing file and a missing heading."""
    (tmp_path / "a.md").write_text("# Title\n\n## Two words\n")
    page = tmp_path / "b.md"
    page.write_text("[ok](a.md#two-words) [gone](c.md) [bad](a.md#nope) `[code](x.md)`\n")
    assert links(page) == ["a.md#two-words", "c.md", "a.md#nope"]
    assert "two-words" in anchors(tmp_path / "a.md")
    assert "nope" not in anchors(tmp_path / "a.md")


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= 250, f"README.md has {lines} lines; the long material belongs in docs/"


def test_readme_points_to_the_docs():
    readme = (ROOT / "README.md").read_text()
    for page in ("docs/speed.md", "docs/cluster.md", "docs/study.md", "docs/cli.md",
                 "docs/api.md", "docs/theory.md", "docs/reproductions.md"):
        assert f"]({page}" in readme, f"README.md does not link {page}"


def test_api_reference_is_current():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "api_docs.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
