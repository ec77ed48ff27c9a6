"""Write the README's findings and reproductions tables from a study's tables.

The tables between ``<!-- findings:start -->`` / ``<!-- findings:end -->``
(from ``results/default/tables/findings.csv``) and ``<!-- reproductions:start
-->`` / ``<!-- reproductions:end -->`` (from
``results/paper/tables/reproductions.csv``) are generated, never edited by
hand: ``make readme`` reruns this.

    python scripts/readme_tables.py [--readme README.md] [--results results]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def markdown(df: pd.DataFrame, columns: list[str]) -> str:
    cols = [c for c in columns if c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = ["" if pd.isna(r[c]) else str(r[c]).replace("|", "\\|") for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def replace(text: str, name: str, table: str, source: str) -> str:
    pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README has no <!-- {name}:start --> ... <!-- {name}:end --> markers")
    block = f"(generated from `{source}` by `make readme`)\n\n{table}\n"
    return pattern.sub(lambda m: m.group(1) + block + m.group(2), text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--results", type=Path, default=ROOT / "results")
    args = ap.parse_args(argv)
    text = args.readme.read_text()
    found = args.results / "default" / "tables" / "findings.csv"
    rep = args.results / "paper" / "tables" / "reproductions.csv"
    done = []
    if found.exists():
        text = replace(text, "findings", markdown(pd.read_csv(found),
                                                  ["claim", "value", "verdict"]),
                       "results/default/tables/findings.csv")
        done.append(str(found))
    if rep.exists():
        text = replace(text, "reproductions", markdown(
            pd.read_csv(rep), ["claim", "source", "paper", "value", "budget", "verdict"]),
            "results/paper/tables/reproductions.csv")
        done.append(str(rep))
    if not done:
        print("no study tables found: run `make run` (and `make paper`) first", file=sys.stderr)
        return 1
    args.readme.write_text(text)
    print("README tables written from " + ", ".join(done))
    return 0


if __name__ == "__main__":
    sys.exit(main())
