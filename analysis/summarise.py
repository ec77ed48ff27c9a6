"""Snakemake job: the summary table and the study's findings.

``summary.csv``: one row per trained configuration (task, model, init, gain,
clip, seq_len, dtype), over its reported seeds: the learning rate used,
success rate, median final metric relative to the baseline, divergences,
share of clipped updates and the decay rate at initialisation.
``findings.csv``: the claims of :mod:`gradpath.claims`, each judged on this
study's runs, with the number that decides it, whether it holds here, and
the figures and tables that decide it (figure_table.EVIDENCE);
``findings.rst`` the same as a list whose figure and table names link to
them in the report (the report's front page includes it).
``probes.csv``: one row per probed network (model, init, gain), over its
seeds: the measured decay rate of the hidden adjoint (and of the cell
adjoint for the LSTM), mean-field theory's 1/2 ln chi where it applies (the
vanilla RNN with gaussian or orthogonal weights; "n/a" otherwise), the top
Lyapunov exponent and the horizon.
``provenance.csv``: the code ids, library versions and machines that
computed the runs, and whether each code id is the current code's.
"""

import json
import logging
import math
import re
from urllib.parse import quote

import pandas as pd
from figure_table import EVIDENCE, figure_file

from gradpath import vocab
from gradpath.claims import FINDINGS, judge, primary, report_runs, successes
from gradpath.grid import REPORT_KEYS
from gradpath.provenance import code_id
from gradpath.results import PROVENANCE_COLUMNS

KEYS = list(REPORT_KEYS)
PROBE_KEYS = ["model", "init", "gain"]
#: Shown where a quantity does not exist for a network (no mean-field theory
#: for a gated cell, no cell state in an RNN or a GRU).
NA = "n/a"


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per trained configuration, aggregated over its reported seeds (the
    sweep-selected ones where a configuration also has fixed-rate twins)."""
    tr = primary(report_runs(runs), KEYS).copy()
    if tr.empty:
        return pd.DataFrame()
    tr["final_over_baseline"] = tr["final_metric"] / tr["baseline"]
    tr["diverged"] = tr["status"] == "diverged"
    tr["succeeded"] = successes(tr)
    g = tr.groupby(KEYS, sort=True)
    out = g.agg(
        lr=("lr", "first"),
        steps=("steps", "first"),
        seeds=("seed", "nunique"),
        success_rate=("succeeded", "mean"),
        median_final_over_baseline=("final_over_baseline", "median"),
        diverged=("diverged", "sum"),
        clipped_fraction=("clipped_fraction", "mean"),
        decay_rate_init=("decay_rate", "mean"),
        lyapunov_init=("lyapunov_1", "mean"),
    ).reset_index()
    return out.round(4)


def probe_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per probed network (model, init, gain), averaged over its seeds, with
    "n/a" where a quantity does not apply to the network."""
    pr = runs[runs["kind"] == "probe"]
    if pr.empty:
        return pd.DataFrame()
    # horizon -1: the norm never fell by HORIZON_FRACTION within T (infinitely far)
    pr = pr.assign(horizon=pr["horizon"].where(pr["horizon"] >= 0, math.inf))
    order = {**{m: i for i, m in enumerate(vocab.MODELS)},
             **{n: i for i, n in enumerate(vocab.INITS)}}
    out = (pr.groupby(PROBE_KEYS, sort=False)
           .agg(seeds=("seed", "nunique"), hidden=("hidden", "first"),
                decay_rate=("decay_rate", "mean"), cell_decay_rate=("cell_decay_rate", "mean"),
                half_ln_chi=("theory_slope", "mean"), lyapunov_1=("lyapunov_1", "mean"),
                horizon=("horizon", "median"))
           .reset_index())
    out = out.sort_values(["model", "init", "gain"], key=lambda c: c.map(order)
                          if c.name != "gain" else c, ignore_index=True).round(4)
    out["horizon"] = out["horizon"].map(lambda h: "beyond T" if h == math.inf else round(h))
    for col in ("cell_decay_rate", "half_ln_chi"):
        out[col] = out[col].astype(object).where(out[col].notna(), NA)
    return out


def findings(runs: pd.DataFrame, training: pd.DataFrame | None = None) -> pd.DataFrame:
    """The claims, each judged on this study's tables, with the files that
    decide each: ``figure`` (its figures, the first the one to look at) and
    ``table`` (the tables with its numbers)."""
    found = judge(FINDINGS, {"runs": runs, "training": training})
    evidence = [EVIDENCE[c.key] for c in FINDINGS]  # judge keeps the claims' order
    found["figure"] = ["; ".join(map(figure_file, e.figures)) for e in evidence]
    found["table"] = ["; ".join(f"{t}.csv" for t in e.tables) for e in evidence]
    return found


_RST_MARKUP = re.compile(r"([\\`*_|<>\[\]])")


def _rst(text) -> str:
    """``text`` as literal reStructuredText: its markup characters escaped."""
    return _RST_MARKUP.sub(r"\\\1", str(text))


def _show(path: str, content: str) -> str:
    """A link that shows report item ``path`` (as Snakemake's report names it:
    the path of the file from the working directory) in the report's main
    panel, ``content`` "img" or "html", with its caption beside it. The
    report's own links to an item (``name_``) open its caption only; this
    calls the same app with the view a click on the item's eye sets. The
    path is a JSON string, percent-encoded, as a javascript: URL is decoded
    before it runs."""
    p = quote(json.dumps(path), safe="/")
    return (f"javascript:app.setView({{navbarMode:'resultinfo',resultPath:{p},"
            f"content:'{content}',contentPath:results[{p}].data_uri}})")


def findings_rst(found: pd.DataFrame, paths: dict[str, str]) -> str:
    """The findings as a reStructuredText list for the report's front page:
    per finding its verdict, claim and value, and links that show the
    figures and tables that decide it. ``paths``: each figure's and table's
    item in the report (its file from the working directory; a table's HTML
    view) by name."""
    lines = [".. container:: findings", ""]
    for c, (_, row) in zip(FINDINGS, found.iterrows(), strict=True):
        ev = EVIDENCE[c.key]
        figs = ", ".join(f"`{f} <{_show(paths[f], 'img')}>`__" for f in ev.figures)
        tabs = ", ".join(f"`{t} <{_show(paths[t], 'html')}>`__ (``{t}.csv``)"
                         for t in ev.tables)
        value = f": {_rst(row['value'])}" if row["value"] else ""  # none when n/a
        lines += [f"   #. **{_rst(row['verdict'])}**: {_rst(row['claim'])}{value}",
                  f"      (figure {figs}; table {tabs})", ""]
    return "\n".join(lines)


STYLE = """<style>
body { font-family: system-ui, sans-serif; font-size: 13px; margin: 12px; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f3f6; }
td.holds { background: #e6f4ea; } td.fails { background: #fce8e6; }
td.undecided { background: #fff4d6; }
</style>"""


def provenance_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Which code and machines computed the runs: one row per code id, versions
    and machine, with its run count and whether it is the current code."""
    keys = ["code_id", *(c for c in PROVENANCE_COLUMNS if c != "code_id")]
    # runs kept from before provenance was recorded (stale_runs: keep) lack it
    runs = runs.reindex(columns=[*keys, "run_id"]).fillna({k: "unrecorded" for k in keys})
    out = (runs.groupby(keys, dropna=False).agg(runs=("run_id", "size")).reset_index()
           .sort_values(["runs", "code_id"], ascending=[False, True], ignore_index=True))
    out.insert(1, "current_code", out["code_id"] == code_id())
    return out


def to_html(df: pd.DataFrame, title: str) -> str:
    """A standalone HTML page (no external resources) with the table."""
    body = df.to_html(index=False, border=0, na_rep="", escape=True)
    body = body.replace("<td>holds</td>", '<td class="holds">holds</td>')
    body = body.replace("<td>does not hold</td>", '<td class="fails">does not hold</td>')
    body = body.replace("<td>undecided at this budget</td>",
                        '<td class="undecided">undecided at this budget</td>')
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"{STYLE}</head><body><h3>{title}</h3>{body}</body></html>")


def main(runs_path: str, training_path: str, out: dict, paths: dict[str, str],
         log: str) -> None:
    logging.basicConfig(filename=log, level=logging.INFO, format="%(asctime)s %(message)s")
    runs = pd.read_parquet(runs_path)
    training = pd.read_parquet(training_path)
    summary, found = summary_table(runs), findings(runs, training)
    summary.to_csv(out["summary"], index=False)
    found.to_csv(out["findings"], index=False)
    with open(out["findings_rst"], "w") as f:
        f.write(findings_rst(found, paths))
    prov = provenance_table(runs)
    prov.to_csv(out["provenance"], index=False)
    # one column per code/machine combination: the fields read down the page
    wide = prov.astype(str).T.reset_index()
    wide.columns = ["field", *(f"#{i + 1}" for i in range(len(prov)))]
    with open(out["provenance_html"], "w") as f:
        f.write(to_html(wide, "Provenance: the code and machines that computed the runs"))
    if not prov["current_code"].all():
        logging.warning("%d runs were computed by other code than the current %s",
                        int(prov.loc[~prov["current_code"], "runs"].sum()), code_id())
    with open(out["summary_html"], "w") as f:
        f.write(to_html(summary, "Training grid by configuration"))
    probes = probe_table(runs)
    probes.to_csv(out["probes"], index=False)
    with open(out["probes_html"], "w") as f:
        f.write(to_html(probes, "Probes at initialisation by network"))
    with open(out["findings_html"], "w") as f:
        f.write(to_html(found, "What this study shows"))
    for _, r in found.iterrows():
        logging.info("%s: %s (%s)", r["claim"], r["verdict"], r["value"])


if "snakemake" in globals():
    sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
    main(sm.input.runs, sm.input.training,
         {k: sm.output[k] for k in ("summary", "findings", "findings_rst", "summary_html",
                                    "findings_html", "probes", "probes_html", "provenance",
                                    "provenance_html")},
         sm.params.report_paths, sm.log[0])
