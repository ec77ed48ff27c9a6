"""Snakemake job: run one batch of the grid (called by rules/runs.smk).

Each run writes its own files as soon as it finishes; a run whose files
read back is skipped, so a killed job loses at most the run in progress, and
a damaged run file is recomputed. A finished run computed by other code
(another ``code_id``) is recomputed, and the log says why. The batch's
marker, written last, records the size of every file of its runs
(:func:`gradpath.grid.batch_marker`), which the workflow checks at start-up.
"""

import json
import logging
import os
import sys
import time
from pathlib import Path

# One thread per job (BLAS and gradpath's kernels): jobs already run side by
# side on the cores, and a threaded call that waits for a descheduled thread
# runs ~10x slower. (Set before numpy loads OpenBLAS.)
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
             "GRADPATH_NUM_THREADS"):
    os.environ[_var] = "1"

from gradpath.grid import Run, batch_marker, execute  # noqa: E402
from gradpath.provenance import code_id, machine  # noqa: E402
from gradpath.results import atomic_write  # noqa: E402


def describe(run: Run) -> str:
    """A run in a few words, for the progress line on the terminal."""
    c = run.spec
    if run.kind == "probe":
        return f"probe {c.cell}-{c.activation} {c.init} gain {c.gain:g} H={c.hidden}"
    return (f"{run.stage} {c.task} T={c.seq_len} {c.cell}-{c.activation} {c.init} "
            f"clip {c.clip} lr {c.lr:g}")


def main(runs: list[dict], runs_dir: str, out: str, log: str, inputs: list[str],
         stale: str = "recompute") -> None:
    logging.basicConfig(filename=log, level=logging.INFO, format="%(asctime)s %(message)s")
    # One line per run on the terminal too (Snakemake shows a job's stderr), so
    # a long study says where it is between Snakemake's job counts.
    batch = Path(out).stem
    t0 = time.perf_counter()
    logging.info("code_id %s on %s", code_id(), machine())
    # the selected learning rates, when this batch's runs wait for a sweep
    selection = [p for p in inputs if p.endswith("selection.json")]
    rates = json.loads(Path(selection[0]).read_text()) if selection else None
    statuses = {}
    for i, r in enumerate(runs, 1):
        run = Run.from_record(r)
        t = time.perf_counter()
        status = execute(run, runs_dir, rates, stale)
        statuses[run.run_id] = status
        took = time.perf_counter() - t
        logging.info("%d/%d %s %s %s (%.1f s)", i, len(runs), run.kind, run.run_id, status,
                     took)
        print(f"[{batch} {i}/{len(runs)}] {describe(run)}: {status} ({took:.1f} s)",
              file=sys.stderr, flush=True)
    logging.info("batch done in %.1f s", time.perf_counter() - t0)
    marker = json.dumps(batch_marker(statuses, runs_dir), indent=1, sort_keys=True)
    atomic_write(Path(out), lambda p: p.write_text(marker))


if "snakemake" in globals():
    sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
    main(sm.params.runs, sm.params.runs_dir, sm.output[0], sm.log[0], list(sm.input),
         sm.params.stale_runs)
