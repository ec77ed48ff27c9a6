"""Snakemake job: each sweep's selected setting (learning rate and clip threshold).

``selection.json``: {selection key: {"lr": ..., "clip_threshold": ...}}, read
by the batches of reported runs. ``selection.csv``: one row per sweep
configuration and candidate setting (model, init, clip, task, seq_len, lr,
clip_threshold, mean held-out metric over the selection seeds, diverged runs,
selected).
"""

import json
import logging

import pandas as pd
from summarise import to_html

from gradpath.grid import select_settings, sweep_table
from gradpath.results import read_tables


def main(run_ids: list[str], runs_dir: str, out: dict, log: str) -> None:
    logging.basicConfig(filename=log, level=logging.INFO, format="%(asctime)s %(message)s")
    runs = read_tables(runs_dir, run_ids)["runs"] if run_ids else pd.DataFrame(
        columns=["stage", "selection", "lr", "clip_threshold", "final_metric", "status"])
    rates = select_settings(runs)
    with open(out["selection"], "w") as f:
        json.dump(rates, f, indent=1, sort_keys=True)
    table = sweep_table(runs, rates)
    table.to_csv(out["table"], index=False)
    with open(out["html"], "w") as f:
        f.write(to_html(table, "Sweeps (selection seeds) and the selected settings"))
    for key, chosen in sorted(rates.items()):
        logging.info("%s: %s", key, chosen)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
    main(sm.params.run_ids, sm.params.runs_dir,
         {"selection": sm.output.selection, "table": sm.output.table, "html": sm.output.html},
         sm.log[0])
