"""Snakemake job: the study's runs -> results/<study>/tables/*.parquet.

Reads exactly the runs of the current grid (by id), so stale runs of an
earlier config in the same folder never leak in; linear in the number of runs.
"""

import logging

from gradpath.results import read_tables


def main(run_ids: list[str], runs_dir: str, outputs: dict, log: str) -> None:
    logging.basicConfig(filename=log, level=logging.INFO, format="%(asctime)s %(message)s")
    tables = read_tables(runs_dir, run_ids)
    for name, df in tables.items():
        df.to_parquet(outputs[name], index=False)
        logging.info("%s: %d rows", name, len(df))


if "snakemake" in globals():
    sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
    main(sm.params.run_ids, sm.params.runs_dir,
         {k: sm.output[k] for k in ("runs", "curves", "training")}, sm.log[0])
