# The grid: one warm-up job, then one job per batch of runs.


rule warmup:
    """Fill Numba's on-disk cache once, before parallel jobs start."""
    output:
        f"{RESULTS}/.warmup",
    log:
        f"{RESULTS}/logs/warmup.log",
    params:
        python=PYTHON,
        code_id=CODE_ID,
    shell:
        "({params.python} -m gradpath.cli demo --warmup && touch {output}) > {log} 2>&1"


rule run_batch:
    """Run a batch of probes or trainings; finished runs are skipped, so an
    interrupted batch resumes where it stopped. Reported runs of a
    learning-rate sweep wait for the selection."""
    input:
        batch_inputs,
    output:
        f"{RESULTS}/batches/{{batch}}.json",
    log:
        f"{RESULTS}/logs/batches/{{batch}}.log",
    params:
        runs=batch_runs,
        runs_dir=RUNS_DIR,
        code_id=CODE_ID,
        stale_runs=config["stale_runs"],
    threads: 1
    group:
        batch_group
    resources:
        mem_mb=batch_mem_mb,
        runtime=batch_runtime,
    script:
        "../analysis/run_batch.py"


rule select_rates:
    """Pick each sweep's learning rate and clip threshold from its sweep runs (lowest
    held-out metric)."""
    input:
        sweep_outputs,
    output:
        selection=SELECTION,
        table=report_table("selection", "csv"),
        html=report_table("selection", "html"),
    log:
        f"{RESULTS}/logs/select_rates.log",
    params:
        run_ids=sorted(r.run_id for r in SWEEP_RUNS),
        runs_dir=RUNS_DIR,
    script:
        "../analysis/select_rates.py"
