"""The README's findings table and reproductions summary are generated from a study's
tables (scripts/readme_tables.py), never copied by hand."""

import importlib.util
import re
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("readme_tables",
                                              ROOT / "scripts" / "readme_tables.py")
readme_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_tables)


def _rows(block: str) -> list[list[str]]:
    """A Markdown table's header and body rows as lists of cells, stripped of the
    padding that aligns the columns (``|`` inside a cell is escaped)."""
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            for line in block.splitlines()
            if line.startswith("|") and not re.fullmatch(r"[|:\- ]+", line.strip())]


def test_markdown_keeps_every_value_as_written():
    df = pd.DataFrame({"claim": ["a | b", "c"], "value": ["1.50", None], "n": [3, 4],
                       "unused": ["x", "y"]})
    table = readme_tables.markdown(df, ["claim", "value", "n", "missing"])
    lines = table.splitlines()
    assert len(lines) == 4 and re.fullmatch(r"\|(:?-+:?\|)+", lines[1]), table
    assert len({len(line) for line in lines}) == 1, "columns are aligned"
    # "1.50" stays "1.50" (no number parsing), a missing value is an empty cell
    assert _rows(table) == [["claim", "value", "n"], ["a \\| b", "1.50", "3"], ["c", "", "4"]]


def _block(text: str, name: str) -> str:
    m = re.search(rf"<!-- {name}:start -->\n(.*?)<!-- {name}:end -->", text, re.S)
    assert m, f"README has no {name} markers"
    return m.group(1)


def test_the_readme_has_both_generated_blocks():
    text = (ROOT / "README.md").read_text()
    for name in ("findings", "reproductions"):
        assert "generated from" in _block(text, name), name


def test_tables_are_written_between_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- findings:start -->\nstale table\n<!-- findings:end -->\n"
                      "<!-- reproductions:start -->\n<!-- reproductions:end -->\ntail\n")
    tables = tmp_path / "results" / "default" / "tables"
    tables.mkdir(parents=True)
    pd.DataFrame({"claim": ["a | b"], "value": ["1 of 3"], "verdict": ["does not hold"],
                  "detail": ["x"]}).to_csv(tables / "findings.csv", index=False)
    assert readme_tables.main(["--readme", str(readme), "--results",
                               str(tmp_path / "results")]) == 0
    text = readme.read_text()
    block = _block(text, "findings")
    assert "stale table" not in block
    assert ["a \\| b", "1 of 3", "does not hold"] in _rows(block)
    assert text.startswith("intro\n") and text.endswith("tail\n")
    assert _block(text, "reproductions") == ""  # no paper study: left as it was


def test_missing_markers_are_an_error(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    tables = tmp_path / "results" / "default" / "tables"
    tables.mkdir(parents=True)
    pd.DataFrame({"claim": ["a"], "value": ["v"], "verdict": ["holds"]}).to_csv(
        tables / "findings.csv", index=False)
    with pytest.raises(SystemExit, match="markers"):
        readme_tables.main(["--readme", str(readme), "--results", str(tmp_path / "results")])


def test_the_reproductions_page_has_both_protocols_and_the_deviations(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- findings:start -->\n<!-- findings:end -->\n"
                      "<!-- reproductions:start -->\n<!-- reproductions:end -->\n")
    tables = tmp_path / "results" / "paper" / "tables"
    tables.mkdir(parents=True)
    pd.DataFrame({"kind": ["reproduction"], "claim": ["c"], "value": ["v"],
                  "verdict": ["undecided at this budget"], "detail": ["undecided: why"]}
                 ).to_csv(tables / "reproductions.csv", index=False)
    pd.DataFrame({"claim": ["le-150", "le-150"], "field": ["hidden", "lr"],
                  "paper": ["100", "grid"], "gradpath": ["100", "0.1"],
                  "deviation": ["", "a subset"]}).to_csv(tables / "protocols.csv", index=False)
    assert readme_tables.main(["--readme", str(readme), "--results",
                               str(tmp_path / "results")]) == 0
    line = _block(readme.read_text(), "reproductions")
    assert "**1 published results**" in line and "undecided at this budget 1" in line, line
    assert "docs/reproductions.md" in line
    page = (tmp_path / "docs" / "reproductions.md").read_text()
    assert any(r[:2] == ["reproduction", "c"] and "undecided at this budget" in r
               for r in _rows(page))
    assert ["hidden", "100", "100", ""] in _rows(page) and ["lr", "grid", "0.1", "a subset"] \
        in _rows(page)
    assert "Le, Jaitly & Hinton 2015" in page  # the claim's source, from gradpath.claims


def test_the_summary_counts_each_verdict_by_kind():
    table = pd.DataFrame({
        "kind": ["reproduction", "reproduction", "positive control", "reproduction", "theory",
                 "code check"],
        "verdict": ["holds", "does not hold", "undecided at this budget",
                    "n/a (not in this study)", "holds", "does not hold"]})
    line = readme_tables.summary(table)
    assert line.startswith("**4 published results** (reproductions and positive controls): "
                           "holds 1, does not hold 1, undecided at this budget 1, "
                           "not in this study 1; **2 theory rows and code checks**: holds 1, "
                           "does not hold 1."), line
