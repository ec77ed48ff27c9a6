# The grid: one warm-up job, then one job per batch of runs.


rule warmup:
    """Fill Numba's on-disk cache once, before parallel jobs start."""
    output:
        f"{RESULTS}/.warmup",
    log:
        f"{RESULTS}/logs/warmup.log",
    params:
        python=PYTHON,
    conda:
        "../envs/gradpath.yaml"
    shell:
        "({params.python} -m gradpath.cli demo --warmup && touch {output}) > {log} 2>&1"


rule run_batch:
    """Run a batch of probes or trainings; finished runs are skipped, so an
    interrupted batch resumes where it stopped."""
    input:
        f"{RESULTS}/.warmup",
    output:
        f"{RESULTS}/batches/{{batch}}.json",
    log:
        f"{RESULTS}/logs/batches/{{batch}}.log",
    params:
        runs=batch_runs,
        runs_dir=RUNS_DIR,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../envs/gradpath.yaml"
    script:
        "../analysis/run_batch.py"
