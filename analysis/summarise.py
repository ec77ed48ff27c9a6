"""Snakemake job: the summary table and the study's findings.

``summary.csv``: one row per training configuration (task, model, init,
clip, seq_len) with success rate over seeds, median final metric relative to
the baseline, divergences, share of clipped updates and the decay rate at
initialisation. ``findings.csv``: the lecture's claims, each measured from the
runs table with the number that decides it, and whether it holds here.
"""

import logging
import math

import numpy as np
import pandas as pd

SQRT2 = math.sqrt(2.0)


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per training configuration, aggregated over seeds."""
    tr = runs[runs["kind"] == "train"].copy()
    if tr.empty:
        return pd.DataFrame()
    tr["final_over_baseline"] = tr["final_metric"] / tr["baseline"]
    tr["diverged"] = tr["status"] == "diverged"
    g = tr.groupby(["task", "model", "init", "clip", "seq_len"], sort=True)
    out = g.agg(
        seeds=("seed", "nunique"),
        success_rate=("success", "mean"),
        median_final_over_baseline=("final_over_baseline", "median"),
        diverged=("diverged", "sum"),
        clipped_fraction=("clipped_fraction", "mean"),
        decay_rate_init=("decay_rate", "mean"),
        lyapunov_init=("lyapunov_1", "mean"),
    ).reset_index()
    return out.round(4)


def _probe(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["kind"] == "probe"]


def _row(claim: str, measure: str, value, holds: bool | None, detail: str = "") -> dict:
    verdict = "n/a (not in this grid)" if holds is None else ("holds" if holds else "does not hold")
    return {"claim": claim, "measure": measure, "value": value, "verdict": verdict,
            "detail": detail}


def findings(runs: pd.DataFrame) -> pd.DataFrame:
    """The lecture's claims, each decided by a number measured in this study."""
    pr = _probe(runs)
    tr = runs[runs["kind"] == "train"]
    rows = []

    # 1. tanh + gaussian vanishes
    sel = pr[(pr["model"] == "rnn-tanh") & (pr["init"] == "gaussian")
             & np.isclose(pr["gain"], 1.0)]
    if len(sel):
        rate = float(sel["decay_rate"].mean())
        rows.append(_row("tanh + gaussian init (gain 1) vanishes",
                         "probe decay rate of ln||dL/dh_t|| per step; orders of magnitude "
                         "lost over the probed lags", f"{rate:+.3f}/step "
                         f"({rate * sel['seq_len'].iloc[0] / math.log(10):.0f} decades)",
                         rate < -0.01))
    else:
        rows.append(_row("tanh + gaussian init (gain 1) vanishes", "probe decay rate", "", None))

    # 2. ReLU above sqrt(2) explodes unless clipped
    sel = pr[(pr["model"] == "rnn-relu") & (pr["init"] == "gaussian") & (pr["gain"] > SQRT2)]
    if len(sel):
        rates = sel.groupby("gain")["decay_rate"].mean()
        ok = bool((rates > 0).all())
        rows.append(_row("ReLU + gaussian above gain sqrt(2) explodes",
                         "probe decay rate at each gain > sqrt(2)",
                         ", ".join(f"gain {g:g}: {r:+.3f}" for g, r in rates.items()), ok))
    else:
        rows.append(_row("ReLU + gaussian above gain sqrt(2) explodes", "probe decay rate",
                         "", None))

    # 3. clipping prevents divergence
    if len(tr) and {"none"} < set(tr["clip"]):
        div = tr.groupby("clip")["status"].apply(lambda s: int((s == "diverged").sum()))
        none = int(div.get("none", 0))
        clipped = int(sum(v for k, v in div.items() if k != "none"))
        rows.append(_row("clipping prevents divergence",
                         "diverged training runs by clip mode",
                         ", ".join(f"{k}: {v}" for k, v in div.items()),
                         none > 0 and clipped == 0 if none > 0 else None,
                         "" if none > 0 else "no unclipped run diverged, so the grid cannot "
                         "show it"))
    else:
        rows.append(_row("clipping prevents divergence", "diverged runs by clip mode", "", None))

    # 4. the IRNN and the LSTM carry gradients across the longest lengths
    sel = pr[np.isclose(pr["gain"], 1.0)]
    carriers = sel[((sel["model"] == "rnn-relu") & (sel["init"] == "identity"))
                   | ((sel["model"] == "lstm") & (sel["init"] == "orthogonal"))]
    tanh_g = sel[(sel["model"] == "rnn-tanh") & (sel["init"] == "gaussian")]
    if len(carriers) and len(tanh_g):
        irnn = carriers[carriers["model"] == "rnn-relu"]["decay_rate"].mean()
        lstm = carriers[carriers["model"] == "lstm"]["cell_decay_rate"].mean()
        tg = tanh_g["decay_rate"].mean()
        ok = bool(abs(irnn) < 0.02 and lstm > tg)
        rows.append(_row("the IRNN and the LSTM carry gradients further than tanh + gaussian",
                         "probe decay rate per step at gain 1: IRNN hidden path, LSTM "
                         "(orthogonal) cell path, tanh + gaussian",
                         f"IRNN {irnn:+.4f}, LSTM cell {lstm:+.3f}, tanh+gaussian {tg:+.3f}",
                         ok))
    else:
        rows.append(_row("the IRNN and the LSTM carry gradients further", "probe decay rates",
                         "", None))

    # 5. theory predicts the decay rates
    th = pr.dropna(subset=["theory_slope", "decay_rate"])
    th = th[np.isfinite(th["theory_slope"]) & np.isfinite(th["decay_rate"])]
    th = th[~((th["model"] == "rnn-relu") & (th["gain"] >= SQRT2))]  # q* diverges there
    if len(th):
        err = (th["decay_rate"] - th["theory_slope"]).abs()
        n = int(th["hidden"].min())
        tol = 0.02 if n >= 500 else 0.05
        rows.append(_row("mean-field theory predicts the decay rates",
                         f"max |measured - 0.5 ln chi| over {len(th)} gaussian/orthogonal RNN "
                         f"probes (N = {n}; ReLU below sqrt(2))",
                         f"{err.max():.4f} (median {err.median():.4f})", bool(err.max() < tol),
                         f"tolerance {tol} at N = {n}"))
    else:
        rows.append(_row("mean-field theory predicts the decay rates", "", "", None))
    return pd.DataFrame(rows)


STYLE = """<style>
body { font-family: system-ui, sans-serif; font-size: 13px; margin: 12px; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f3f6; }
td.holds { background: #e6f4ea; } td.fails { background: #fce8e6; }
</style>"""


def to_html(df: pd.DataFrame, title: str) -> str:
    """A standalone HTML page (no external resources) with the table."""
    body = df.to_html(index=False, border=0, na_rep="", escape=True)
    body = body.replace("<td>holds</td>", '<td class="holds">holds</td>')
    body = body.replace("<td>does not hold</td>", '<td class="fails">does not hold</td>')
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"{STYLE}</head><body><h3>{title}</h3>{body}</body></html>")


def main(runs_path: str, out: dict, log: str) -> None:
    logging.basicConfig(filename=log, level=logging.INFO, format="%(asctime)s %(message)s")
    runs = pd.read_parquet(runs_path)
    summary, found = summary_table(runs), findings(runs)
    summary.to_csv(out["summary"], index=False)
    found.to_csv(out["findings"], index=False)
    with open(out["summary_html"], "w") as f:
        f.write(to_html(summary, "Training grid by configuration"))
    with open(out["findings_html"], "w") as f:
        f.write(to_html(found, "What this study shows"))
    for _, r in found.iterrows():
        logging.info("%s: %s (%s)", r["claim"], r["verdict"], r["value"])


if "snakemake" in globals():
    sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
    main(sm.input.runs, {k: sm.output[k] for k in ("summary", "findings", "summary_html",
                                                   "findings_html")}, sm.log[0])
