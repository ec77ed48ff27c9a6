# Helpers shared by the rules: config validation, grid expansion, batches.

import sys

from snakemake.utils import validate

from gradpath import grid as gpgrid

if not config:
    raise ValueError(
        "no config given: pass one, e.g. --configfile configs/default.yaml "
        "(configs/smoke.yaml, configs/full.yaml)"
    )

# Checks every key and value against the JSON Schema and fills in defaults,
# before any job runs.
validate(config, "../configs/schema.yaml")

PYTHON = sys.executable
RESULTS = f"results/{config['name']}"
RUNS_DIR = f"{RESULTS}/runs"

PROBE_RUNS = gpgrid.probe_runs(config["probe"])
TRAIN_RUNS = gpgrid.train_runs(config["train"])
BATCHES = gpgrid.batches(PROBE_RUNS + TRAIN_RUNS, config["batch_seconds"])
RUN_IDS = sorted(r.run_id for r in PROBE_RUNS + TRAIN_RUNS)

FIGURE_NAMES = [
    "a_decay_curves",
    "b_decay_rate_theory",
    "c_training_curves",
    "d_success_by_length",
    "e_clipping_divergence",
    "f_decay_before_after",
]
FIGURES = [f"{RESULTS}/figures/{name}.png" for name in FIGURE_NAMES]


def batch_runs(wildcards):
    """The runs of one batch, as plain dicts for the job script."""
    return [
        {"kind": r.kind, "run_id": r.run_id, "config": r.config}
        for r in BATCHES[wildcards.batch]
    ]


def batch_outputs(wildcards=None):
    """Every batch's completion marker."""
    return [f"{RESULTS}/batches/{b}.json" for b in sorted(BATCHES)]
