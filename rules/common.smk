# Helpers shared by the rules: config validation, grid expansion, batches.

import sys

from snakemake.utils import validate

from gradpath import grid as gpgrid
from gradpath.provenance import code_id
from gradpath.resources import physical_memory_mb

if not config:
    raise ValueError(
        "no config given: pass one, e.g. --configfile configs/default.yaml "
        "(configs/smoke.yaml, configs/full.yaml)"
    )

# Checks every key and value against the JSON Schema and fills in defaults,
# before any job runs.
validate(config, "../configs/schema.yaml")

PYTHON = sys.executable
# Which code computes the runs: a batch reruns when it changes (a params
# change), and its runs computed by other code are recomputed.
CODE_ID = code_id()
RESULTS = f"results/{config['name']}"
RUNS_DIR = f"{RESULTS}/runs"

PROBE_RUNS = gpgrid.probe_runs(config["probe"])
TRAIN_RUNS = gpgrid.train_runs(config["train"])
SWEEP_RUNS = [r for r in TRAIN_RUNS if r.config["stage"] == gpgrid.SWEEP]
# Reported runs whose learning rate a sweep selects wait for the selection.
STAGE_BATCHES = gpgrid.stage_batches(PROBE_RUNS + TRAIN_RUNS, config["batch_seconds"])
BATCHES, SELECTED_BATCHES = STAGE_BATCHES["runs"], STAGE_BATCHES["selected"]
ALL_BATCHES = {**BATCHES, **SELECTED_BATCHES}
# A run that cannot fit in memory is refused here, naming its config section,
# before any job starts.
MAX_MEM_MB = config["max_mem_mb"] or physical_memory_mb()
gpgrid.check_memory(
    PROBE_RUNS + TRAIN_RUNS,
    MAX_MEM_MB,
    "max_mem_mb" if config["max_mem_mb"] else "this machine's memory (max_mem_mb: null)",
)
RUN_IDS = sorted(r.run_id for r in PROBE_RUNS + TRAIN_RUNS)
SWEEP_BATCHES = sorted(
    b for b, runs in BATCHES.items() if any(r.config.get("stage") == gpgrid.SWEEP for r in runs)
)
SELECTION = f"{RESULTS}/tables/selection.json"

FIGURE_NAMES = [
    "a_decay_curves",
    "b_decay_rate_theory",
    "c_training_curves",
    "d_success_by_length",
    "e_clipping_divergence",
    "f_decay_through_training",
    "g_lyapunov_spectrum",
]
FIGURES = [f"{RESULTS}/figures/{name}.png" for name in FIGURE_NAMES]


def batch_runs(wildcards):
    """The runs of one batch, as plain dicts for the job script."""
    return [
        {"kind": r.kind, "run_id": r.run_id, "config": r.config}
        for r in ALL_BATCHES[wildcards.batch]
    ]


# What each batch asks the scheduler for: mem_mb and runtime (minutes).
BATCH_RESOURCES = {b: gpgrid.batch_resources(runs) for b, runs in ALL_BATCHES.items()}


def batch_mem_mb(wildcards):
    """The batch's estimated peak memory (MiB), requested from the scheduler."""
    return BATCH_RESOURCES[wildcards.batch]["mem_mb"]


def batch_runtime(wildcards):
    """The batch's runtime request (minutes): its estimate with a safety factor."""
    return BATCH_RESOURCES[wildcards.batch]["runtime"]


def batch_group(wildcards):
    """The job group of a batch on a cluster (ignored locally): "runs" for
    batches that need nothing but the warm-up, "selected" for those that wait
    for the rate selection. Batches of one group never depend on each other,
    so group-components can pack several into one submission."""
    return "selected" if wildcards.batch in SELECTED_BATCHES else "runs"


def batch_inputs(wildcards):
    """A batch needs the warm Numba cache, and the selected rates if its runs wait for them."""
    needs = [f"{RESULTS}/.warmup"]
    if wildcards.batch in SELECTED_BATCHES:
        needs.append(SELECTION)
    return needs


def sweep_outputs(wildcards=None):
    """The completion markers of the batches that hold sweep runs."""
    return [f"{RESULTS}/batches/{b}.json" for b in SWEEP_BATCHES]


def batch_outputs(wildcards=None):
    """Every batch's completion marker."""
    return [f"{RESULTS}/batches/{b}.json" for b in sorted(ALL_BATCHES)]
