# Helpers shared by the rules: config validation, grid expansion, batches.

import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import yaml
from snakemake.utils import validate

from gradpath import grid as gpgrid
from gradpath.provenance import code_id
from gradpath.resources import physical_memory_mb
# Every field a run records of its code and machine, as one dict: the report
# shows all of them, so a field the library gains (a git commit) shows too.
# Private, but importing it here keeps gradpath.results (whose code is part of
# the code id) unchanged.
from gradpath.results import run_provenance

# The report's figures and tables, and what decides each finding: plain data
# that the job scripts beside it read too.
sys.path.insert(0, str(Path(workflow.basedir) / "analysis"))
from figure_table import FIGURES, OTHER_FIGURES, TABLES, figure_file  # noqa: E402


class _StrictLoader(yaml.SafeLoader):
    """YAML that refuses a key given twice in one mapping (PyYAML keeps the
    last one silently)."""


def _no_duplicate_keys(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ValueError(f"{key_node.start_mark.name}, line {key_node.start_mark.line + 1}: "
                             f"key {key!r} is given twice in one mapping")
        seen.add(key)
    return loader.construct_mapping(node, deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


def check_config_files(paths):
    """Refuse config files with a duplicate key, or that ask for Snakemake's YTE
    templating (Python code in the config; gradpath configs are plain data)."""
    for path in paths:
        with open(path) as f:  # the stream's name is the path the messages give
            data = yaml.load(f, Loader=_StrictLoader)
        if isinstance(data, dict) and "__use_yte__" in data:
            raise ValueError(f"{path}: __use_yte__ is not allowed in a gradpath config "
                             "(a config is plain data, not a template)")


check_config_files(workflow.configfiles)
# Settings of a training block that the schema's defaults would hide (lr and
# lrs given together), before they are filled in.
gpgrid.check_raw_train(config.get("train"))
# Checks every key and value against the JSON Schema and fills in defaults,
# before any job runs.
validate(config, "../configs/schema.yaml")

PYTHON = sys.executable
# Which code computes the runs: a batch reruns when it changes (a params
# change), and its runs computed by other code are recomputed.
CODE_ID = code_id()
RESULTS = gpgrid.study_dir(config["name"])
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


def drop_stale_markers(batch_ids):
    """Remove the completion marker of every batch whose runs' files changed
    since it finished (a truncated or deleted run file), saying why, so that
    Snakemake runs that batch again: its intact runs are skipped, the damaged
    ones recomputed, and the tables rebuilt from them. A dry run removes it
    too: the marker is false, and without it the plan shows the batch."""
    for b in batch_ids:
        marker = Path(f"{RESULTS}/batches/{b}.json")
        if not marker.exists():
            continue
        why = gpgrid.marker_problem(marker, RUNS_DIR)
        if why:
            print(f"gradpath: batch {b} runs again: {why}", file=sys.stderr)
            marker.unlink()


# Only where the workflow is planned: a job (a cluster job re-reads this file
# on its node) must not second-guess markers the main process has checked.
if workflow.is_main_process:
    drop_stale_markers(sorted(ALL_BATCHES))


def batch_runs(wildcards):
    """The runs of one batch, as plain dicts for the job script."""
    return [r.record() for r in ALL_BATCHES[wildcards.batch]]


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


def report_selection_outputs(wildcards=None):
    """The learning-rate selection's tables, in a study with sweeps."""
    if not SWEEP_RUNS:
        return []
    return [SELECTION, f"{RESULTS}/tables/selection.csv", f"{RESULTS}/tables/selection.html"]


def batch_outputs(wildcards=None):
    """Every batch's completion marker."""
    return [f"{RESULTS}/batches/{b}.json" for b in sorted(ALL_BATCHES)]


# -- the report ----------------------------------------------------------------------
#: The report's category of the study's config and provenance.
STUDY_CATEGORY = "9. Config and provenance"
#: Per table (figure_table.TABLES): its report category and label. Each is in
#: the report twice, ``tables/<name>.html`` to read and ``tables/<name>.csv``
#: to download (labelled "... (CSV)", listed after it), with one caption,
#: ``reports/captions/<name>.rst``.
TABLE_ITEMS = {
    "findings": ("0. Findings", "what the study shows"),
    "summary": ("7. Summary", "success, divergence and decay by configuration"),
    "probes": ("7. Summary", "probes: decay rate, theory (or n/a) and Lyapunov by network"),
    "selection": ("7. Summary", "learning-rate sweeps and the selected rates"),
    "reproductions": ("8. Reproductions", "published claims, measured here"),
    "provenance": (STUDY_CATEGORY, "provenance of the runs: code and machines"),
    "study": (STUDY_CATEGORY, "the study: config files, code, versions, machine"),
}
assert set(TABLE_ITEMS) == set(TABLES), "figure_table.TABLES and TABLE_ITEMS disagree"


def report_table(name, fmt):
    """Table ``name``'s file in format ``fmt`` ("html" or "csv"), marked for the report."""
    category, label = TABLE_ITEMS[name]
    return report(
        f"{RESULTS}/tables/{name}.{fmt}",
        caption=f"../reports/captions/{name}.rst",
        category=category,
        labels={"table": label if fmt == "html" else f"{label} (CSV)"},
    )


#: Each figure's and table's item in the report by name: the path Snakemake's
#: report knows it by (from the working directory; a table's HTML view), for
#: the links from each finding to what decides it.
REPORT_PATHS = {
    **{n: f"{RESULTS}/figures/{figure_file(n)}" for n in [*FIGURES, *OTHER_FIGURES]},
    **{n: f"{RESULTS}/tables/{n}.html" for n in TABLES},
}
#: The workflow's own libraries, whose versions the report's provenance adds.
WORKFLOW_LIBRARIES = ("snakemake", "matplotlib", "seaborn", "pyarrow")


def study_provenance(wildcards=None):
    """What analysed the study: every field a run records of its code and
    machine (the code id, versions, the machine, and any field the library
    gains), and the versions of the workflow's libraries."""
    out = dict(run_provenance())
    for lib in WORKFLOW_LIBRARIES:
        try:
            out[f"version_{lib}"] = version(lib)
        except PackageNotFoundError:
            out[f"version_{lib}"] = "not installed"
    return out
