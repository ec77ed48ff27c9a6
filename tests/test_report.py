"""The report's plumbing without a study: every finding names the figures
and tables that decide it, each has a caption and a report item, and the
front page's findings list renders with links that show them (the same
report in Chromium: tests/test_smoke_study.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pytest
from docutils.core import publish_parts

from gradpath.claims import FINDINGS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "analysis"))
from figure_table import (  # noqa: E402
    DPI,
    EVIDENCE,
    FIGURES,
    FORMAT,
    OTHER_FIGURES,
    TABLES,
    figure_file,
)
from study import study_table  # noqa: E402
from summarise import findings_rst  # noqa: E402

sys.path.pop(0)
CAPTIONS = ROOT / "reports" / "captions"


def test_every_finding_names_figures_and_tables_that_exist():
    assert [c.key for c in FINDINGS if c.key not in EVIDENCE] == []
    assert set(EVIDENCE) == {c.key for c in FINDINGS}, "evidence for a finding that is gone"
    for key, ev in EVIDENCE.items():
        assert ev.figures and ev.tables, key
        assert set(ev.figures) <= set(FIGURES) | set(OTHER_FIGURES), key
        assert set(ev.tables) <= set(TABLES), key


@pytest.mark.parametrize("name", [*FIGURES, *OTHER_FIGURES, *TABLES, "protocols", "config"])
def test_every_report_item_has_a_caption(name):
    assert (CAPTIONS / f"{name}.rst").read_text().strip()


def test_figures_are_vector_or_at_least_200_dpi():
    assert FORMAT == "svg" or (FORMAT == "png" and DPI >= 200)
    assert figure_file("a_decay_curves") == f"a_decay_curves.{FORMAT}"


def _found() -> pd.DataFrame:
    """A findings table as summarise writes it, with text full of reST markup."""
    return pd.DataFrame({"claim": [f"claim {c.key}: ||dL/dh_t|| *x* `y` [z] <w> a_" for c in
                                   FINDINGS],
                         "value": ["|1 - 2| = 1_"] * len(FINDINGS),
                         "verdict": ["holds"] * len(FINDINGS)})


def test_the_findings_list_renders_with_a_link_to_each_figure_and_table():
    paths = {n: f"results/my study/figures/{figure_file(n)}" for n in [*FIGURES, *OTHER_FIGURES]}
    paths |= {n: f"results/my study/tables/{n}.html" for n in TABLES}
    text = findings_rst(_found(), paths)
    html = publish_parts(text, writer="html",
                         settings_overrides={"report_level": 2, "halt_level": 2})["body"]
    assert html.count("<li>") == len(FINDINGS)
    # the text is shown as written: no markup taken from it
    assert html.count("||dL/dh_t|| *x* `y` [z] &lt;w&gt; a_") == len(FINDINGS)
    assert "<em>" not in html and "problematic" not in html
    for c in FINDINGS:
        ev = EVIDENCE[c.key]
        item = html.split(f"claim {c.key}:")[1].split("</li>")[0]
        for name, content in [*((f, "img") for f in ev.figures),
                              *((t, "html") for t in ev.tables)]:
            link = f'>{name}</a>'
            assert link in item, (c.key, name)
            href = unquote(item.split(link)[0].rsplit('href="', 1)[1].split('"')[0])
            assert href.startswith("javascript:app.setView(")
            assert f'resultPath:"{paths[name]}"' in href and f"content:'{content}'" in href
            assert f'contentPath:results["{paths[name]}"].data_uri' in href


def test_the_study_table_has_every_provenance_field():
    prov = {"code_id": "abc", "version_numpy": "2", "git_commit": "f00", "new_field": "x"}
    t = study_table({"name": "s", "probe": {}}, ["configs/s.yaml"], prov)
    fields = dict(zip(t["field"], t["value"], strict=True))
    assert fields["study"] == "s" and fields["config files"] == "configs/s.yaml"
    assert {k: fields[k] for k in prov} == prov
