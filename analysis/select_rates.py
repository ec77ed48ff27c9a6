"""Snakemake job: each learning-rate sweep's selected rate.

``selection.json``: {selection key: lr}, read by the batches of reported
runs. ``selection.csv``: one row per sweep configuration and candidate rate
(model, init, clip, task, seq_len, lr, mean held-out metric over the selection
seeds, diverged runs, selected).
"""

import json
import logging

import pandas as pd
from summarise import to_html

from gradpath.grid import select_rates, sweep_table
from gradpath.results import read_tables


def main(run_ids: list[str], runs_dir: str, out: dict, log: str) -> None:
    logging.basicConfig(filename=log, level=logging.INFO, format="%(asctime)s %(message)s")
    runs = read_tables(runs_dir, run_ids)["runs"] if run_ids else pd.DataFrame(
        columns=["stage", "selection", "lr", "final_metric", "status"])
    rates = select_rates(runs)
    with open(out["selection"], "w") as f:
        json.dump(rates, f, indent=1, sort_keys=True)
    table = sweep_table(runs, rates)
    table.to_csv(out["table"], index=False)
    with open(out["html"], "w") as f:
        f.write(to_html(table, "Learning-rate sweeps (selection seeds) and the selected rates"))
    for key, lr in sorted(rates.items()):
        logging.info("%s: lr %g", key, lr)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
    main(sm.params.run_ids, sm.params.runs_dir,
         {"selection": sm.output.selection, "table": sm.output.table, "html": sm.output.html},
         sm.log[0])
