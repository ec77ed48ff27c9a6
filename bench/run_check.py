"""``make bench``: the kernel suite against absolute targets, then the paired gate.

1. ``pytest bench`` (pytest-benchmark): every kernel against its numpy twin,
   and the fresh-process cache load; ``check_targets.py`` holds the speed-ups
   to their absolute targets. Entries that fail are measured ``--retries``
   more times (default 2) and the median of the attempts counts: on a shared
   machine another process can make one benchmark many times slower, but
   rarely two attempts out of three, while a real shortfall shows in every
   attempt.
2. ``gate.py``: head against the base revision (``$BENCH_BASE``, default the
   previous commit), interleaved in one run, plus the head-only subnormal and
   precision checks.

::

    python bench/run_check.py                  # both, all sizes
    python bench/run_check.py --sizes ci       # the kernel suite's fast subset
    python bench/run_check.py --no-gate        # the kernel suite alone
    BENCH_BASE=v0.1 python bench/run_check.py  # gate against another revision

JSON and markdown go to bench/results/ (git-ignored). Exit status 1 when
either part fails.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import check_targets
from bench_cases import CACHE_LOAD_KEY, SIZES_ENV

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def pytest_cmd(json_path: Path, sizes: str, tests: list[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", *tests, "-q", "-p", "no:cacheprovider",
            f"--bench-sizes={sizes}", f"--benchmark-json={json_path}",
            "--benchmark-columns=min,median,iqr,rounds", "--benchmark-sort=name"]


def node_ids(keys: list[str]) -> list[str]:
    """pytest node ids of the kernel and twin benchmarks of the given entries."""
    ids = []
    for key in keys:
        if key == CACHE_LOAD_KEY:
            ids.append("bench/test_cache_load.py::test_cache_load")
        else:
            ids += [f"bench/test_kernels.py::test_loss_and_grads[{key}-{impl}]"
                    for impl in ("kernel", "twin")]
    return ids


def run(cmd: list[str]) -> int:
    print("$", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT)


def kernel_suite(sizes: str, retries: int, out: Path) -> int:
    jsons = [out / "bench.json"]
    rc = run(pytest_cmd(jsons[0], sizes, ["bench"]))
    if rc != 0:
        print(f"benchmark suite failed (pytest exit {rc})", file=sys.stderr)
        return rc
    json_args = ["--json", str(jsons[0])]
    failing = check_targets.failing_entries(json_args) if retries else []
    if failing:
        print(f"\n{len(failing)} entr{'y' if len(failing) == 1 else 'ies'} failed: "
              f"{', '.join(failing)}\nre-measuring {retries} more time(s); the median of "
              "the attempts counts\n", flush=True)
        for attempt in range(1, retries + 1):
            jsons.append(out / f"retry{attempt}.json")
            json_args += ["--json", str(jsons[-1])]
            rc = run(pytest_cmd(jsons[-1], "all", node_ids(failing)))
            if rc != 0:
                print(f"benchmark re-run failed (pytest exit {rc})", file=sys.stderr)
                return rc
    print()
    return check_targets.main([*json_args, "--markdown", str(out / "targets.md")])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="Other options go to gate.py (see its --help).")
    ap.add_argument("--sizes", default=os.environ.get(SIZES_ENV) or "all",
                    help=f"kernel-suite sizes: names or subsets, e.g. 'ci', 'small,large', "
                         f"'all' (default: ${SIZES_ENV}, else all)")
    ap.add_argument("--retries", type=int, default=2,
                    help="re-measure failing kernel-suite entries this many more times "
                         "(default: 2)")
    ap.add_argument("--no-gate", action="store_true", help="skip the paired gate")
    ap.add_argument("--out", type=Path, default=BENCH / "results",
                    help="directory for JSON and markdown results (default: bench/results)")
    args, rest = ap.parse_known_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    targets = kernel_suite(args.sizes, args.retries, args.out)
    gate = 0
    if not args.no_gate:
        print("\n" + "=" * 30 + " paired gate " + "=" * 30 + "\n", flush=True)
        gate = run([sys.executable, str(BENCH / "gate.py"), "--out", str(args.out), *rest])
    ok = targets == 0 and gate == 0
    print(f"\nRESULT: {'PASS' if ok else 'FAIL'} (targets: {'PASS' if targets == 0 else 'FAIL'}"
          f", gate: {'skipped' if args.no_gate else 'PASS' if gate == 0 else 'FAIL'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
