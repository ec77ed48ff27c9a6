"""Paired performance gate: head against a base revision, interleaved, on this machine.

A speed-up committed from one machine cannot judge another (AMD or Intel,
cache sizes, BLAS kernels), so the gate never compares with stored numbers.
It builds the base revision (``--base``, default ``$BENCH_BASE``, else the
previous commit ``HEAD~1``) into a temporary git worktree with its own Numba
cache, starts one timing worker per revision (``bench/worker.py``; a revision
whose kernels must compile is built on two cores, see :func:`build`), and
times every kernel case in both, interleaved: each round visits the cases in
a shuffled order and times base and head back to back (in random order), so
both see the same machine state. Per case, the statistic is the **median of
the paired ratios head/base** with a 95 % bootstrap interval:

* FAIL when the interval's lower end exceeds 1 + tolerance (default 0.15:
  head is slower beyond the tolerance, and not by chance);
* WARN when only the median exceeds it.

Cases whose interval still contains the limit after ``--min-pairs`` rounds
get more rounds, up to ``--max-pairs``. The same rounds also time head-only cases for
two checks on head alone: a vanishing case (values reach the subnormal range)
costs at most 1.3x its steady twin (``bench_cases.SUBNORMAL_CHECKS``), and
float32 beats float64 at the large size, each as the median of per-round
ratios.

A case the base cannot run (a cell added by head, such as the GRU against a
base from before it: the base worker reports the case as an error) is timed
in head alone and listed as NEW: not compared, never a failure. When the base
cannot be built (a shallow clone, no parent, an unknown revision), or its
timed code (``TIMED_SOURCES``: the kernels, the models and the timing worker)
is the same as head's, the gate says so and runs the head-only checks alone,
timing only the cases they read.
Exit status 0 on PASS, 1 on FAIL, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from bench_cases import (
    FLOAT32_FASTER_SIZES,
    GATE_CASES,
    MAX_VANISHING_RATIO,
    SIZES,
    STEADY_CASES,
    SUBNORMAL_CHECKS,
    Case,
    md_table,
)
from scipy import stats

from gradpath.provenance import cpu_model  # the one CPU-model reader

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORKER = BENCH / "worker.py"

#: Fail when head is slower than base by more than this fraction (with the
#: bootstrap interval's lower end above it). Paired, interleaved ratios on a
#: shared 2-core machine scatter by 5-40 % per pair; with identical code the
#: median of 7+ pairs came out up to 1.13 and the interval's lower end up to
#: 1.04, while a real 1.2x slow-down of one kernel gave lower ends of 1.16-1.18
#: (bench/README.md).
DEFAULT_TOLERANCE = 0.15
MIN_PAIRS = 7
MAX_PAIRS = 15
#: Each timing sample repeats a call until it lasts about this long, so that
#: millisecond calls are not at the mercy of timer and scheduler jitter.
SAMPLE_S = 0.05
BOOTSTRAP_SAMPLES = 2000
#: Seed of every interval's resampling: the same ratios always give the same
#: interval, so a verdict never depends on the random draw or on the order in
#: which cases are judged.
BOOTSTRAP_SEED = 1
CONFIDENCE = 0.95


def median_ci(ratios: Iterable[float], rng: np.random.Generator | None = None
              ) -> tuple[float, float, float]:
    """Median of ``ratios`` and a 95 % percentile-bootstrap interval of it.

    Parameters
    ----------
    ratios
        Paired ratios head/base (or of two head cases), one per round.
    rng
        Generator for the resampling; default: a fresh one seeded with
        :data:`BOOTSTRAP_SEED`, so the interval is a function of ``ratios``.

    Returns
    -------
    tuple of float
        The median, and the interval's lower and upper ends
        (``scipy.stats.bootstrap``, percentile method, :data:`BOOTSTRAP_SAMPLES`
        resamples). With one ratio, all three are that ratio.
    """
    r = np.asarray(list(ratios), dtype=float)
    med = float(np.median(r))
    if r.size < 2:  # nothing to resample (scipy refuses one observation)
        return med, med, med
    res = stats.bootstrap((r,), np.median, n_resamples=BOOTSTRAP_SAMPLES,
                          confidence_level=CONFIDENCE, method="percentile",
                          rng=np.random.default_rng(BOOTSTRAP_SEED) if rng is None else rng)
    return med, float(res.confidence_interval.low), float(res.confidence_interval.high)


# ---------------------------------------------------------------------------
# workers
# ---------------------------------------------------------------------------
class Worker:
    """A ``bench/worker.py`` process importing gradpath from ``src``."""

    def __init__(self, name: str, src: Path, env_extra: dict | None = None) -> None:
        self.name = name
        env = dict(os.environ, PYTHONPATH=str(src), **(env_extra or {}))
        self.proc = subprocess.Popen([sys.executable, str(WORKER)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env, cwd=BENCH)
        hello = self.receive()
        where = Path(hello["gradpath"]).resolve()
        if src.resolve() not in where.parents:
            self.close()
            raise RuntimeError(f"{name} worker imported gradpath from {where}, not from {src}")

    def receive(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} worker exited (status {self.proc.wait()})")
        return json.loads(line)

    def send(self, **req) -> None:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()

    def request(self, **req) -> dict:
        self.send(**req)
        return self.receive()

    def time(self, key: str, calls: int) -> float:
        return self.request(cmd="time", key=key, calls=calls)["s"]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.request(cmd="quit")
            except (BrokenPipeError, RuntimeError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def build(name: str, src: Path, cases: list[Case], env: dict | None = None
          ) -> tuple[Worker, dict]:
    """A worker importing gradpath from ``src``, its cases built: (worker, {key: error}).

    Where the revision's kernels are not in its Numba cache yet (the base, in
    a cache of its own; head, after an edit), building compiles them, one
    process a core's work (Numba compiles on the calling thread). So a helper
    worker on the same cache builds the float32 cases while the worker builds
    the float64 ones (gradpath's cache writes are locked, as for
    :func:`gradpath.warmup`), and the worker then loads the float32 kernels
    from the cache. On one core, or with one precision, the worker builds
    everything alone.
    """
    worker = Worker(name, src, env)
    own = [c for c in cases if c.dtype != "float32"]
    helped = [c for c in cases if c.dtype == "float32"]  # built by the helper first
    if (os.cpu_count() or 1) < 2 or not own or not helped:
        own, helped = cases, []
    helper = None
    try:
        if helped:
            helper = Worker(f"{name}-float32", src, env)
            helper.send(cmd="setup", cases=[c.spec() for c in helped])
        errors = dict(worker.request(cmd="setup", cases=[c.spec() for c in own])["errors"])
        if helper is not None:
            helper.receive()  # its kernels are in the cache now; its errors recur below
            errors.update(worker.request(cmd="setup", cases=[c.spec() for c in helped])["errors"])
    except BaseException:
        worker.close()
        raise
    finally:
        if helper is not None:
            helper.close()
    return worker, errors


def release(workers: Iterable[Worker | None], tmp: Path) -> None:
    """Close the workers that started, remove the base's worktree under
    ``tmp`` (if any) and ``tmp`` itself."""
    for w in workers:
        if w is not None:
            w.close()
    git("worktree", "remove", "--force", str(tmp / "base"), check=False)
    git("worktree", "prune", check=False)
    shutil.rmtree(tmp, ignore_errors=True)


def git(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=check)


#: What the timed calls execute: when none of it differs between base and head,
#: a paired comparison would time the same code twice, and is not run.
TIMED_SOURCES: tuple[str, ...] = (
    "src/gradpath/kernels", "src/gradpath/cells", "src/gradpath/models.py",
    "src/gradpath/checks.py", "src/gradpath/rng.py", "src/gradpath/__init__.py",
    "bench/worker.py", "bench/bench_cases.py", "pyproject.toml",
)


def base_worktree(rev: str, tmp: Path) -> tuple[Path | None, str]:
    """Check out ``rev`` into a worktree under ``tmp``; (path, description) or (None, why).

    None too when the timed code (:data:`TIMED_SOURCES`) of ``rev`` and of the
    working tree are the same."""
    try:
        found = git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
    except FileNotFoundError:
        return None, "git is not installed"
    if found.returncode != 0:
        shallow = git("rev-parse", "--is-shallow-repository", check=False).stdout.strip()
        why = "a shallow clone" if shallow == "true" else "no such commit (no parent?)"
        return None, f"base revision {rev!r} cannot be resolved: {why}"
    sha = found.stdout.strip()
    if git("diff", "--quiet", sha, "--", *TIMED_SOURCES, check=False).returncode == 0:
        subject = git("log", "-1", "--format=%h", sha).stdout.strip()
        return None, (f"the timed code ({', '.join(TIMED_SOURCES)}) is the same at {rev} "
                      f"({subject}) and here, so head and base would time the same calls")
    path = tmp / "base"
    added = git("worktree", "add", "--detach", "--force", str(path), sha, check=False)
    if added.returncode != 0:
        return None, f"git worktree add failed: {added.stderr.strip()}"
    subject = git("log", "-1", "--format=%h %s", sha).stdout.strip()
    return path, subject


# ---------------------------------------------------------------------------
# the measurement
# ---------------------------------------------------------------------------
class Rounds:
    """Interleaved timing rounds over head (all cases) and base (the gate cases
    it can run: ``base_keys``)."""

    def __init__(self, head: Worker, base: Worker | None, gated: list[Case],
                 head_only: list[Case], base_keys: set[str], seed: int = 0) -> None:
        self.head, self.base = head, base
        self.gated, self.head_only = gated, head_only
        self.base_keys = base_keys if base is not None else set()
        self.rng = np.random.default_rng(seed)
        self.calls: dict[str, int] = {}
        self.t: dict[tuple[str, str], list[float]] = {}

    def calibrate(self) -> None:
        for case in self.gated + self.head_only:
            one = self.head.time(case.key, 1)
            self.calls[case.key] = max(1, math.ceil(SAMPLE_S / max(one, 1e-6)))

    def run(self, cases: list[Case], rounds: int) -> None:
        for _ in range(rounds):
            for i in self.rng.permutation(len(cases)):
                case = cases[i]
                sides = [("head", self.head)]
                if case.key in self.base_keys:
                    sides.append(("base", self.base))
                    if self.rng.random() < 0.5:
                        sides.reverse()
                for side, worker in sides:
                    s = worker.time(case.key, self.calls[case.key])
                    self.t.setdefault((side, case.key), []).append(s)

    def samples(self, side: str, key: str) -> list[float]:
        return self.t.get((side, key), [])


def gate_row(r: Rounds, case: Case, tol: float, rng=None) -> dict:
    h, b = r.samples("head", case.key), r.samples("base", case.key)
    n = min(len(h), len(b))
    ratios = [h[i] / b[i] for i in range(n)]
    med, lo, hi = median_ci(ratios, rng)
    if lo > 1 + tol:
        verdict = "FAIL"
    elif med > 1 + tol:
        verdict = "WARN"
    elif hi < 1 - tol:
        verdict = "FASTER"
    else:
        verdict = "OK"
    return {"case": case.key, "base_ms": 1e3 * float(np.median(b[:n])),
            "head_ms": 1e3 * float(np.median(h[:n])), "ratio": med, "ci": [lo, hi],
            "pairs": n, "verdict": verdict, "cases": [case], "bound": 1 + tol}


def new_row(r: Rounds, case: Case, why: str) -> dict:
    """A case head runs and base cannot (a new cell): head's time, no verdict."""
    h = r.samples("head", case.key)
    return {"case": case.key, "base_ms": None, "head_ms": 1e3 * float(np.median(h)),
            "ratio": None, "ci": None, "pairs": 0, "verdict": "NEW", "base_error": why,
            "cases": [case], "bound": None}


def check_pairs() -> list[tuple[str, Case, Case, float, bool, bool]]:
    """The head-only checks' ratios: (label, numerator, denominator, bound,
    strict, enforced), vanishing against steady (at most the bound), then
    float32 against float64 (below 1)."""
    pairs = []
    for cell, size, regime, enforced in SUBNORMAL_CHECKS:
        for dtype in ("float32", "float64"):
            van, steady = Case(cell, size, dtype), Case(cell, size, dtype, regime)
            pairs.append((f"{van.key} / {regime}", van, steady, MAX_VANISHING_RATIO, False,
                          enforced))
    for cell in sorted({c.cell for c in GATE_CASES}):
        for size in FLOAT32_FASTER_SIZES:
            pairs.append((f"{cell} {size} float32 / float64", Case(cell, size, "float32"),
                          Case(cell, size, "float64"), 1.0, True, True))
    return pairs


def head_checks(r: Rounds, rng=None) -> list[dict]:
    """Vanishing against steady, and float32 against float64 (head only)."""
    rows = []
    for label, num, den, bound, strict, enforced in check_pairs():
        a, b = r.samples("head", num.key), r.samples("head", den.key)
        n = min(len(a), len(b))
        if not n:
            continue
        med, lo, hi = median_ci([a[i] / b[i] for i in range(n)], rng)
        ok = med < bound if strict else med <= bound
        rows.append({"check": label, "ratio": med, "ci": [lo, hi], "pairs": n,
                     "limit": f"< {bound:g}" if strict else f"<= {bound:g}",
                     "bound": bound, "cases": [num, den] if enforced else [],
                     "verdict": ("OK" if ok else "FAIL") if enforced else "info"})
    return rows


# ---------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------
def fmt_ms(v: float) -> str:
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def print_tables(gate: list[dict], checks: list[dict], tol: float) -> str:
    """Print both tables; return them as markdown."""
    md = []
    if gate:
        head = (f"{'case':<36} {'base ms':>9} {'head ms':>9} {'head/base':>9} "
                f"{'95% CI':>13} {'pairs':>5}  verdict")
        print(head + "\n" + "-" * len(head))
        cells = []
        for g in gate:
            new = g["verdict"] == "NEW"
            ci = "–" if new else f"{g['ci'][0]:.2f}-{g['ci'][1]:.2f}"
            base_ms = "–" if new else fmt_ms(g["base_ms"])
            ratio = "–" if new else f"{g['ratio']:.3f}"
            print(f"{g['case']:<36} {base_ms:>9} {fmt_ms(g['head_ms']):>9} "
                  f"{ratio:>9} {ci:>13} {g['pairs']:>5}  {g['verdict']}")
            cells.append([g["case"], base_ms, fmt_ms(g["head_ms"]), ratio, ci,
                          str(g["pairs"]), g["verdict"]])
        md.append(md_table(["case", "base ms", "head ms", "head/base", "95 % CI", "pairs",
                                  "verdict"], cells, "lrrrrrl"))
        print(f"(FAIL: the interval's lower end above 1 + {tol:g}; WARN: the median above it)")
        new = {g["base_error"] for g in gate if g["verdict"] == "NEW"}
        if new:
            note = (f"NEW: head only, not compared: the base cannot run these cases "
                    f"({'; '.join(sorted(new))})")
            print(note)
            md += ["", note]
        print()
        md.append("")
    head = f"{'head-only check':<44} {'ratio':>7} {'95% CI':>13} {'limit':>7} {'pairs':>5}  verdict"
    print(head + "\n" + "-" * len(head))
    cells = []
    for c in checks:
        ci = f"{c['ci'][0]:.2f}-{c['ci'][1]:.2f}"
        print(f"{c['check']:<44} {c['ratio']:>7.3f} {ci:>13} {c['limit']:>7} {c['pairs']:>5}  "
              f"{c['verdict']}")
        cells.append([c["check"], f"{c['ratio']:.3f}", ci, c["limit"], str(c["pairs"]),
                      c["verdict"]])
    md.append(md_table(["head-only check", "ratio", "95 % CI", "limit", "pairs",
                              "verdict"], cells, "lrrrrl"))
    return "\n".join(md) + "\n"


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--base", default=os.environ.get("BENCH_BASE") or "HEAD~1",
                    help="base revision (default: $BENCH_BASE, else HEAD~1)")
    ap.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                    help="allowed slow-down of head against base (default: %(default)s)")
    ap.add_argument("--min-pairs", type=int, default=MIN_PAIRS,
                    help="interleaved rounds for every case (default: %(default)s)")
    ap.add_argument("--max-pairs", type=int, default=MAX_PAIRS,
                    help="rounds for a case whose verdict is unclear (default: %(default)s)")
    ap.add_argument("--sizes", default="small,medium,large",
                    help="comma-separated size names to time (default: all)")
    ap.add_argument("--out", type=Path, default=BENCH / "results",
                    help="directory for gate.json and gate.md (default: bench/results)")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = sorted(set(sizes) - set(SIZES))
    if unknown or not sizes:
        ap.error(f"--sizes: unknown size(s) {unknown}; expected names from {sorted(SIZES)}")
    if not 0 <= args.tolerance < 1 or not 3 <= args.min_pairs <= args.max_pairs:
        ap.error("expected 0 <= --tolerance < 1 and 3 <= --min-pairs <= --max-pairs")
    gated = [c for c in GATE_CASES if c.size in sizes]
    head_only = [c for c in STEADY_CASES if c.size in sizes]

    print(f"performance gate on {cpu_model()} ({os.cpu_count()} cores)")
    tmp = Path(tempfile.mkdtemp(prefix="gradpath-gate-"))
    head = base = None
    try:
        base_src, about = base_worktree(args.base, tmp)
        if base_src is None:
            print(f"NOTE: {about}.\nNo base to compare with: only the head-only checks run "
                  "(and the absolute targets of the kernel suite).\n")
            checked = {c for pair in check_pairs() for c in pair[1:3]}
            gated = [c for c in gated if c in checked]  # timed only where a check reads it
        else:
            print(f"base: {args.base} = {about}")
        t0 = time.perf_counter()
        head, errors = build("head", ROOT / "src", gated + head_only)
        if errors:
            print(f"error: head cannot run {errors}", file=sys.stderr)
            return 1
        print(f"head ready in {time.perf_counter() - t0:.0f} s")
        missing: dict[str, str] = {}
        if base_src is not None:
            t0 = time.perf_counter()
            base, missing = build("base", base_src / "src", gated,
                                  {"NUMBA_CACHE_DIR": str(tmp / "numba-cache")})
            if missing:
                print(f"note: base cannot run {len(missing)} case(s), timed in head only and "
                      f"listed as NEW (not compared): {', '.join(sorted(missing))}")
                for err in sorted(set(missing.values())):
                    print(f"  base: {err}")
            print(f"base built and ready in {time.perf_counter() - t0:.0f} s (compiles its "
                  "kernels into its own Numba cache)")
        rounds = Rounds(head, base, gated, head_only,
                        {c.key for c in gated if c.key not in missing})
        rounds.calibrate()
        t0 = time.perf_counter()
        rounds.run(gated + head_only, args.min_pairs)
        compared = [c for c in gated if base is not None and c.key not in missing]
        for _ in range(args.min_pairs, args.max_pairs):
            rows = [gate_row(rounds, c, args.tolerance) for c in compared]
            rows += head_checks(rounds)
            # more pairs wherever the interval still straddles the limit
            unclear = {c for row in rows if row["ci"][0] <= row["bound"] <= row["ci"][1]
                       for c in row["cases"]}
            if not unclear:
                break
            rounds.run([c for c in gated + head_only if c in unclear], 1)
        print(f"timed in {time.perf_counter() - t0:.0f} s\n")
        gate = [gate_row(rounds, c, args.tolerance) if c in compared else
                new_row(rounds, c, missing[c.key]) for c in gated
                if c in compared or c.key in missing]
        checks = head_checks(rounds)
    finally:
        release((head, base), tmp)

    md = print_tables(gate, checks, args.tolerance)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gate.md").write_text(f"Measured on {cpu_model()}.\n\n{md}")
    plain = [[{k: v for k, v in row.items() if k not in ("cases", "bound")} for row in rows]
             for rows in (gate, checks)]
    (args.out / "gate.json").write_text(json.dumps(
        {"cpu": cpu_model(), "base": args.base if base is not None else None,
         "tolerance": args.tolerance, "gate": plain[0], "checks": plain[1]}, indent=2) + "\n")
    failed = [g["case"] for g in gate if g["verdict"] == "FAIL"]
    failed += [c["check"] for c in checks if c["verdict"] == "FAIL"]
    if failed:
        print(f"\nGATE: FAIL - {', '.join(failed)}")
        return 1
    print("\nGATE: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
