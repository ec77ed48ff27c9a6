"""gradpath against PyTorch and JAX on the CPU: correctness first, then speed, memory, scaling.

``make bench-peers`` (needs the ``[peers]`` extra, see README). For every
case of ``peer_cases.py`` (forward + BPTT at every bench size, and one
training update of the adding problem), for every registered cell
(``gradpath.cells.TABLE``; ``--cells`` to choose), in both precisions:

1. each implementation runs in its own fresh process (``peer_worker.py``),
   its threads pinned (``--threads``: PyTorch intra-op threads, XLA's Eigen
   pool, gradpath's row blocks; CPU affinity on the same cores);
2. each peer is checked against gradpath in float64 before it is timed: the
   loss and every gradpath gradient (the GRU's b_hn included) within 1e-9
   relative (of the largest entry), and
   for training updates the parameters after one update too (1e-9 for JAX;
   1e-6 for PyTorch, whose clip_grad_norm_ adds 1e-6 to the norm);
3. timing as in the gate: rounds over the cases in shuffled order, every
   implementation back to back in random order, a sample lasting >= 50 ms,
   the median over >= 7 rounds;
4. the machine's GEMM roof (numpy matmul of large square matrices, same
   threads) and each kernel case's fraction of it (FLOPs: 6 B T (R H^2 + G H D),
   G gate blocks, R recurrent H x H blocks; the roof target only where R > 0);
5. peak memory of one call (fresh process, Linux high-water mark) against
   the floor of activations + parameters + gradients;
6. ``--scaling``: time against T and against H, log-log, with fitted slopes.

The peers know a cell from its peer module, ``src/gradpath/cells/<cell>_peer.py``
(``peer_cases.py`` describes it): its parameter shapes, its step written once
for both peers, and the torch.nn layer standing for it if there is one.
PyTorch runs that layer (nn.RNN, nn.LSTM, nn.GRU: oneDNN's fused kernels) or,
for a cell without one (or with ``--torch-loop``), the step in an explicit
Python loop over t, marked in the table; JAX runs the step in ``lax.scan``.
A cell without a peer module is timed for gradpath alone and shown without a
ratio or the targets that need a peer.

Writes ``bench/results/peers.{md,json}`` (and ``peers_scaling.png``) and
prints the table with each target's verdict. Exit status 1 only when a peer
disagrees with gradpath (a wrong comparison), not when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_cases import CELLS, md_table
from peer_cases import (
    IMPLS,
    LOOP,
    activation,
    flops,
    has_peer,
    kernel_specs,
    memory_floor,
    peer_cell,
    recurrent_blocks,
    train_specs,
)

from gradpath.provenance import cpu_model

BENCH = Path(__file__).resolve().parent
WORKER = BENCH / "peer_worker.py"
SAMPLE_S = 0.05
#: Targets: on every case no slower than the faster peer; at B = 1 at least
#: 2x faster than the faster peer (PyTorch's fused oneDNN LSTM made the old
#: "20x PyTorch" meaningless); per training update at least 2x faster than the
#: faster peer; at the large size >= 60 % of the GEMM roof; time against H
#: (H >= 256) with a fitted log-log slope <= 2.1 (the work grows like H^2);
#: peak memory <= 1.5x the floor.
B1_VS_BEST = 2.0
TRAIN_VS_BEST = 2.0
ROOF_FRACTION = 0.6
SCALING_SLOPE = 2.1
MEMORY_FACTOR = 1.5
CHECK_RTOL = 1e-9
TORCH_PARAM_RTOL = 1e-6
#: The README's block of this table, rewritten by every run that times the
#: fused cells (``--readme``): the forward + backward rows of the cells that
#: PyTorch runs as a fused layer and the targets met, with the CPU model.
README_START, README_END = "<!-- peers:start -->", "<!-- peers:end -->"


def worker_env(threads: int) -> dict:
    env = dict(os.environ, PEER_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               GRADPATH_NUM_THREADS=str(threads),
               XLA_FLAGS=f"--xla_cpu_multi_thread_eigen=true "
                         f"intra_op_parallelism_threads={threads}",
               PYTHONPATH=os.pathsep.join([str(BENCH), os.environ.get("PYTHONPATH", "")]))
    return env


def pin(threads: int):
    cores = sorted(os.sched_getaffinity(0))[:threads]
    return lambda: os.sched_setaffinity(0, cores)


class PeerWorker:
    """One ``peer_worker.py`` process."""

    def __init__(self, impl: str, threads: int) -> None:
        self.impl = impl
        self.proc = subprocess.Popen([sys.executable, str(WORKER), impl], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd=BENCH,
                                     env=worker_env(threads), preexec_fn=pin(threads))
        self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.impl} worker exited (status {self.proc.wait()})")
        return json.loads(line)

    def request(self, **req) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.request(cmd="quit")
                self.proc.wait(timeout=30)
            except (BrokenPipeError, RuntimeError, subprocess.TimeoutExpired):
                self.proc.kill()


ROOF_CODE = """
import json, time, numpy as np
out = {}
for name, dt in (("float32", np.float32), ("float64", np.float64)):
    n = 3072
    a = np.random.default_rng(0).standard_normal((n, n)).astype(dt)
    b = a.T.copy()
    a @ b
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    out[name] = 2.0 * n ** 3 / best / 1e9
print(json.dumps(out))
"""


def gemm_roof(threads: int) -> dict:
    """GFLOP/s of numpy's matmul on 3072^2 matrices, best of 5, per dtype."""
    done = subprocess.run([sys.executable, "-c", ROOF_CODE], capture_output=True, text=True,
                          env=worker_env(threads), preexec_fn=pin(threads), check=True)
    return json.loads(done.stdout)


def compare(ref: dict, got: dict, impl: str, kind: str) -> list[str]:
    """Keys of ``got`` that differ from gradpath's ``ref`` beyond the tolerance."""
    bad = []
    for k, r in ref.items():
        g = got.get(k)
        if g is None:
            bad.append(f"{k} missing")
            continue
        rtol = TORCH_PARAM_RTOL if (impl == "torch" and k.startswith("param_")) else CHECK_RTOL
        g = np.asarray(g, np.float64)
        if g.size != r.size:
            bad.append(f"{k}: shape {g.shape}, gradpath's {r.shape}")
            continue
        scale = max(float(np.max(np.abs(r))), 1e-300)
        err = float(np.max(np.abs(g.reshape(r.shape) - r)))
        if not err <= rtol * scale:
            bad.append(f"{k}: {err / scale:.2e} relative")
    return bad


def median_of(samples: list[float]) -> float:
    return float(np.median(samples)) if samples else math.nan


def run_rounds(workers: dict, cases: list[dict], rounds: int, rng) -> dict:
    """{(impl, key): [seconds per call, ...]} over interleaved rounds."""
    calls = {}
    for spec in cases:
        for impl, w in workers.items():
            if spec["key"] in w.ok:
                one = w.request(cmd="time", key=spec["key"], calls=1)["s"]
                calls[(impl, spec["key"])] = max(1, math.ceil(SAMPLE_S / max(one, 1e-7)))
    t: dict = {}
    for _ in range(rounds):
        for i in rng.permutation(len(cases)):
            key = cases[i]["key"]
            for j in rng.permutation(len(workers)):
                impl = list(workers)[j]
                if (impl, key) in calls:
                    s = workers[impl].request(cmd="time", key=key, calls=calls[(impl, key)])["s"]
                    t.setdefault((impl, key), []).append(s)
    return t


def memory(impl: str, spec: dict, threads: int) -> float:
    done = subprocess.run([sys.executable, str(WORKER), impl, "--memory"], input=json.dumps(spec),
                          capture_output=True, text=True, cwd=BENCH, env=worker_env(threads),
                          preexec_fn=pin(threads), timeout=600)
    if done.returncode != 0:
        return math.nan
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_bytes"]


def setup(workers: dict, specs: list[dict]) -> dict:
    """Send the cases to every worker (the peers only those of cells with a
    peer module); {impl: {key: error}}."""
    errors = {}
    for impl, w in workers.items():
        mine = [s for s in specs if impl == "gradpath" or s["peer"]]
        reply = w.request(cmd="setup", cases=mine)
        w.ok |= set(reply["ok"])
        errors[impl] = reply["errors"]
    return errors


def torch_path(spec: dict) -> str:
    """How PyTorch runs a case: ``nn.<Layer>`` or :data:`peer_cases.LOOP`."""
    pc = peer_cell(spec["cell"])
    return "–" if pc is None else pc.torch_path(spec.get("torch_loop", False))


def fmt(v: float, digits: int = 3) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    return f"{v:.{digits}g}" if v < 1000 else f"{v:.0f}"


def case_name(r: dict) -> str:
    """A row's case as the tables name it: ``lstm 16,512,8,100`` (forward +
    backward, B,H,D,T) or ``update lstm B16 H64 T100``."""
    return (f"{r['cell']} {r['B']},{r['H']},{r['D']},{r['T']}" if r["kind"] == "kernel"
            else f"update {r['cell']} B{r['B']} H{r['H']} T{r['T']}")


def fused_layer(path: str) -> bool:
    """Whether PyTorch ran a case as a fused torch.nn layer (not its explicit
    loop over t, and not absent): :func:`torch_path`'s value."""
    return path not in (LOOP, "–")


def peers_table(rows: list[dict]) -> str:
    """The comparison's rows (as :func:`main` builds them) as a Markdown table."""
    cells = []
    for r in rows:
        name = case_name(r)
        missed = [k for k, ok in r["targets"].items() if not ok]
        if not r["peer"]:
            missed.append("no peer module")
        missed += [f"{i}: {p}" for i, p in r["problems"].items()]
        peak = " / ".join(fmt(r["peak_mb"].get(i, math.nan)) for i in IMPLS) \
            if "peak_mb" in r else "–"
        shown = {i: fmt(r["ms"].get(i, math.nan)) for i in IMPLS}
        if r["torch_path"] == LOOP and shown["torch"] != "–":
            shown["torch"] += " †"
        cells.append([name, r["dtype"], *shown.values(), fmt(r["vs_best_peer"], 2),
                      fmt(r.get("gflops", math.nan)),
                      fmt(100 * r.get("roof_fraction", math.nan), 2), peak,
                      fmt(r.get("memory_floor_mb", math.nan)),
                      "; ".join(missed) or "all met"])
    return md_table(["case", "dtype", "gradpath", "torch", "jax", "ratio", "GFLOP/s",
                           "% roof", "peak MB (gp / torch / jax)", "floor MB",
                           "targets missed, notes"], cells, "llrrrrrrrrl")


def scaling(workers: dict, threads: int, out: Path, rng, cells: list[str],
            torch_loop: bool = False) -> dict:
    """Time against T (H = 128) and against H (T = 100), B = 16, float32.

    Only cells that PyTorch runs as a fused torch.nn layer (or every cell with
    ``torch_loop``): its explicit Python loop over t at T = 10 000 takes tens
    of minutes per case and says nothing about gradpath's scaling.
    """
    specs = []
    fused = [c for c in cells if fused_layer(torch_path({"cell": c, "torch_loop": torch_loop}))]
    for cell in (cells if torch_loop else fused):
        base = {"kind": "kernel", "O": 1, "activation": activation(cell, "kernel"),
                "dtype": "float32", "B": 16, "peer": has_peer(cell),
                "torch_loop": torch_loop}
        for T in (100, 316, 1000, 3162, 10000):
            specs.append({**base, "cell": cell, "H": 128, "D": 2, "T": T, "axis": "T",
                          "key": f"scale-{cell}-T{T}"})
        for H in (32, 64, 128, 256, 512, 1024):
            specs.append({**base, "cell": cell, "H": H, "D": 2, "T": 100, "axis": "H",
                          "key": f"scale-{cell}-H{H}"})
    setup(workers, specs)
    t = run_rounds(workers, specs, 3, rng)
    rows = []
    for s in specs:
        for impl in workers:
            rows.append({"cell": s["cell"], "axis": s["axis"], "T": s["T"], "H": s["H"],
                         "impl": impl, "ms": 1e3 * median_of(t.get((impl, s["key"]), []))})
    df = scaling_plot(rows, threads, cpu_model(), out / "peers_scaling.png")
    slopes = {}
    for (cell, axis, impl), d in df.groupby(["cell", "axis", "impl"]):
        d = d[np.isfinite(d["ms"])]
        if axis == "H":
            d = d[d["H"] >= 256]  # where the H^2 product dominates
        if len(d) >= 2:
            slopes[f"{cell} {axis} {impl}"] = float(np.polyfit(np.log(d["x"]), np.log(d["ms"]),
                                                               1)[0])
    return {"rows": rows, "slopes": slopes}


def scaling_plot(rows: list[dict], threads: int, cpu: str, path: Path):
    """Draw :func:`scaling`'s rows (time against T and H, log-log, one row of
    panels per cell) into ``path``; return them as a DataFrame with ``x``."""
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd
    import seaborn as sns

    df = pd.DataFrame(rows)
    df["x"] = np.where(df["axis"] == "T", df["T"], df["H"])
    g = sns.relplot(data=df, x="x", y="ms", hue="impl", style="impl", col="axis", row="cell",
                    kind="line", markers=True, facet_kws={"sharex": False, "sharey": False},
                    height=3.2, aspect=1.3)
    g.set(xscale="log", yscale="log")
    g.set_axis_labels("", "ms per forward + backward")
    g.set_titles("{row_name}: time against {col_name}")
    for (_, axis), ax in g.axes_dict.items():
        ax.set_xlabel("T (H = 128)" if axis == "T" else "H (T = 100)")
    g.figure.subplots_adjust(hspace=0.45)  # room for each row's x label under it
    g.figure.suptitle(f"Scaling, B = 16, float32, {threads} threads, {cpu}", y=1.02)
    g.savefig(path, dpi=110, bbox_inches="tight")
    return df


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for impl, dist in (("gradpath", "gradpath"), ("torch", "torch"), ("jax", "jax")):
        try:
            out[impl] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[impl] = "not installed"
    return out


def readme_block(data: dict) -> str | None:
    """The README's summary of a run (``peers.json``'s content): the forward +
    backward table of the cells PyTorch runs fused, then the targets met, with
    the CPU model, the date and the versions. None when the run timed none
    of those cells against a peer."""
    fused = [r for r in data["rows"] if r["peer"] and fused_layer(r["torch_path"])
             and math.isfinite(r["vs_best_peer"])]
    kernel = [r for r in fused if r["kind"] == "kernel"]
    if not kernel:
        return None
    cells = sorted({r["cell"] for r in kernel}, key=CELLS.index)
    v = data.get("versions", {})
    lines = [f"`make bench-peers`, {data.get('date', '?')}, on {data['cpu']}, "
             f"{data['threads']} threads per implementation: gradpath {v.get('gradpath', '?')}, "
             f"PyTorch {v.get('torch', '?')} (oneDNN's fused nn.RNN / nn.LSTM / nn.GRU), "
             f"JAX {v.get('jax', '?')} (lax.scan under jit). Forward + BPTT, mse over every "
             "step, median ms of interleaved rounds, float32 (f32) and float64 (f64); "
             "ratio = gradpath / the faster peer "
             "(< 1: gradpath faster). Every peer agreed with gradpath in float64 to 1e-9 "
             "before it was timed. Written by the run itself (`bench/peers.py --readme`).", ""]
    sizes: dict[tuple, dict[str, dict]] = {}  # one table row per cell and size
    for r in sorted(kernel, key=lambda r: CELLS.index(r["cell"])):
        sizes.setdefault((r["cell"], r["B"], r["H"], r["D"], r["T"]), {})[r["dtype"]] = r

    def timed(r: dict | None) -> list[str]:
        if r is None:
            return ["–"] * 4
        return [fmt(r["ms"]["gradpath"]), fmt(r["ms"].get("torch", math.nan)),
                fmt(r["ms"].get("jax", math.nan)), fmt(r["vs_best_peer"], 3)]

    lines.append(md_table(
        ["cell", "B, H, D, T", *(f"{d} {c}" for d in ("f32", "f64")
                                 for c in ("gradpath", "torch", "jax", "ratio"))],
        [[cell, f"{B}, {H}, {D}, {T}", *timed(by.get("float32")), *timed(by.get("float64"))]
         for (cell, B, H, D, T), by in sizes.items()],
        "ll" + "r" * 8))

    def count(rows: list[dict], target: str, figure) -> str:
        """'n of m' cases meeting ``target``, and the misses with ``figure(row)``."""
        held = [r for r in rows if target in r["targets"]]
        missed = [f"{case_name(r)} {r['dtype']} ({figure(r)})" for r in held
                  if not r["targets"][target]]
        text = f"{len(held) - len(missed)} of {len(held)}"
        return text + (f"; missed: {', '.join(missed)}" if 0 < len(missed) <= 8 else "")

    # a miss is rounded away from its target, so that it never reads as met
    def slower(r: dict) -> str:
        return f"{math.ceil(round(100 * r['vs_best_peer'], 6)) / 100:.2f}x the faster peer's time"

    def speedup(r: dict) -> str:
        return f"{math.floor(round(100 / r['vs_best_peer'], 6)) / 100:.2f}x"

    def roof_share(r: dict) -> str:
        return f"{fmt(100 * r.get('roof_fraction', math.nan), 2)} %"

    updates = [r for r in fused if r["kind"] == "train"]
    roof_key = f">= {ROOF_FRACTION:.0%} of the GEMM roof"
    lines += ["", f"Targets ({', '.join(cells)}):", "",
              "- forward + backward, no slower than the faster peer: " +
              count([r for r in kernel if r["B"] > 1], "no slower than the faster peer", slower),
              f"- B = 1, at least {B1_VS_BEST:g}x faster than the faster peer: " +
              count(kernel, f">= {B1_VS_BEST:g}x the faster peer at B = 1", speedup),
              f"- at least {ROOF_FRACTION:.0%} of the GEMM roof "
              f"({data['roof_gflops']['float32']:.0f} / {data['roof_gflops']['float64']:.0f} "
              "GFLOP/s float32 / float64) at the large size: " +
              count(kernel, roof_key, roof_share)]
    if updates:
        lines.append(f"- training update (Adam + clipping), at least {TRAIN_VS_BEST:g}x "
                     "faster than the faster peer: " +
                     count(updates, f">= {TRAIN_VS_BEST:g}x the faster peer per update", speedup) +
                     f"; faster in {sum(r['vs_best_peer'] < 1 for r in updates)} "
                     f"of {len(updates)}")
    slopes = (data.get("scaling") or {}).get("slopes", {})
    h = {c: slopes[f"{c} H gradpath"] for c in cells if f"{c} H gradpath" in slopes}
    if h:
        lines.append(f"- time against H (H >= 256), log-log slope at most {SCALING_SLOPE:g}: " +
                     ", ".join(f"{c} {s:.2f}" for c, s in h.items()))
    lines += ["", "Every case, the other cells and peak memory: `bench/results/peers.md` "
                  "after a run; the dated tables and what the misses are: docs/speed.md."]
    return "\n".join(lines)


def write_readme(readme: Path, block: str) -> None:
    """Replace the text between the README's peers markers with ``block``."""
    text = readme.read_text()
    i, j = text.find(README_START), text.find(README_END)
    if i < 0 or j < i:
        raise SystemExit(f"{readme}: no {README_START} ... {README_END} block to write")
    readme.write_text(text[:i + len(README_START)] + "\n" + block + "\n" + text[j:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--impls", default=",".join(IMPLS),
                    help="comma-separated: gradpath, torch, jax (default: all)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                    help="threads (and cores) per implementation (default: all available)")
    ap.add_argument("--kinds", default="kernel,train", help="kernel, train (default: both)")
    ap.add_argument("--cells", default=",".join(CELLS),
                    help=f"comma-separated cells: {', '.join(CELLS)} (default: all)")
    ap.add_argument("--rounds", type=int, default=7, help="timing rounds (default: 7)")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    ap.add_argument("--scaling", action="store_true", help="also time against T and H")
    ap.add_argument("--only", default="", help="keep cases whose key contains this")
    ap.add_argument("--torch-loop", action="store_true",
                    help="PyTorch runs every cell's step in an explicit loop over t, "
                         "also where torch.nn has a layer for it (nn.RNN, nn.LSTM, nn.GRU)")
    ap.add_argument("--out", type=Path, default=BENCH / "results")
    ap.add_argument("--readme", type=Path, metavar="README",
                    help="also write the run's summary between the README's "
                         f"{README_START} markers")
    ap.add_argument("--readme-from", type=Path, metavar="PEERS_JSON",
                    help="write --readme from an earlier run's peers.json, without timing")
    args = ap.parse_args(argv)
    if args.readme_from:
        if not args.readme:
            ap.error("--readme-from needs --readme")
        block = readme_block(json.loads(args.readme_from.read_text()))
        if block is None:
            ap.error(f"{args.readme_from}: no fused cell timed against a peer")
        write_readme(args.readme, block)
        return 0
    impls = [i for i in args.impls.split(",") if i]
    if impls[0] != "gradpath" or set(impls) - set(IMPLS):
        ap.error(f"--impls: gradpath first, then any of {IMPLS[1:]}")
    kinds = set(args.kinds.split(","))
    cells = [c for c in args.cells.split(",") if c]
    if not cells or set(cells) - set(CELLS):
        ap.error(f"--cells: any of {', '.join(CELLS)}")
    specs = (kernel_specs() if "kernel" in kinds else []) + \
        (train_specs() if "train" in kinds else [])
    specs = [{**s, "torch_loop": args.torch_loop} for s in specs
             if s["cell"] in cells and args.only in s["key"]]
    alone = sorted({s["cell"] for s in specs if not s["peer"]})
    if alone:
        print(f"no peer module (gradpath alone, no ratio): {', '.join(alone)}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    cpu = cpu_model()
    print(f"peers on {cpu}, {args.threads} threads per implementation", flush=True)
    roof = gemm_roof(args.threads)
    print(f"GEMM roof (numpy matmul 3072^2): {roof['float32']:.0f} GFLOP/s float32, "
          f"{roof['float64']:.0f} GFLOP/s float64", flush=True)

    workers: dict[str, PeerWorker] = {}
    problems: dict[tuple[str, str], str] = {}
    try:
        for impl in impls:
            t0 = time.perf_counter()
            w = PeerWorker(impl, args.threads)
            w.ok = set()
            for key, err in setup({impl: w}, specs)[impl].items():
                problems[(impl, key)] = f"error: {err}"
            workers[impl] = w
            print(f"{impl}: {len(w.ok)} cases ready in {time.perf_counter() - t0:.0f} s",
                  flush=True)
        # correctness before timing: float64, every peer against gradpath
        with tempfile.TemporaryDirectory() as tmp:
            for spec in specs:
                if spec["dtype"] != "float64" or spec["key"] not in workers["gradpath"].ok:
                    continue
                workers["gradpath"].request(cmd="check", key=spec["key"], path=f"{tmp}/g.npz")
                ref = dict(np.load(f"{tmp}/g.npz"))
                for impl in impls[1:]:
                    if spec["key"] not in workers[impl].ok:
                        continue
                    workers[impl].request(cmd="check", key=spec["key"], path=f"{tmp}/p.npz")
                    bad = compare(ref, dict(np.load(f"{tmp}/p.npz")), impl, spec["kind"])
                    if bad:
                        problems[(impl, spec["key"])] = "MISMATCH: " + "; ".join(bad)
                        f32 = spec["key"].replace("float64", "float32")
                        workers[impl].ok -= {spec["key"], f32}
        print(f"checked: {sum(v.startswith('MISMATCH') for v in problems.values())} "
              "mismatches", flush=True)
        t0 = time.perf_counter()
        times = run_rounds(workers, specs, args.rounds, rng)
        print(f"timed in {time.perf_counter() - t0:.0f} s", flush=True)
        scale = (scaling(workers, args.threads, args.out, rng, cells, args.torch_loop)
                 if args.scaling else None)
    finally:
        for w in workers.values():
            w.close()

    mem: dict = {}
    if not args.no_memory:
        for spec in specs:
            if spec["kind"] == "kernel":
                for impl in impls:
                    if (impl, spec["key"]) not in problems and \
                            (impl == "gradpath" or spec["peer"]):
                        mem[(impl, spec["key"])] = memory(impl, spec, args.threads)

    rows = []
    for spec in specs:
        ms = {impl: 1e3 * median_of(times.get((impl, spec["key"]), [])) for impl in impls}
        peers = [ms[i] for i in impls[1:] if math.isfinite(ms[i])]
        best = min(peers) if peers else math.nan
        row = {"key": spec["key"], "kind": spec["kind"], "cell": spec["cell"],
               "B": spec["B"], "H": spec["H"], "D": spec["D"], "T": spec["T"],
               "dtype": spec["dtype"], "activation": spec["activation"],
               "peer": spec["peer"], "torch_path": torch_path(spec), "ms": ms,
               "vs_best_peer": ms["gradpath"] / best,
               "problems": {i: problems[(i, spec["key"])] for i in impls
                            if (i, spec["key"]) in problems}}
        # the targets against a peer only where one was timed
        targets = {"no slower than the faster peer": ms["gradpath"] <= best} if peers else {}
        if spec["kind"] == "kernel":
            gf = flops(spec) / (ms["gradpath"] / 1e3) / 1e9
            row.update(gflops=gf, roof_fraction=gf / roof[spec["dtype"]])
            if spec["B"] == 1 and peers:
                targets[f">= {B1_VS_BEST:g}x the faster peer at B = 1"] = \
                    best / ms["gradpath"] >= B1_VS_BEST
            if spec.get("size") == "large" and recurrent_blocks(spec["cell"]) > 0:
                targets[f">= {ROOF_FRACTION:.0%} of the GEMM roof"] = \
                    row["roof_fraction"] >= ROOF_FRACTION
            floor = memory_floor(spec)
            row["memory_floor_mb"] = floor / 2**20
            row["peak_mb"] = {i: mem.get((i, spec["key"]), math.nan) / 2**20 for i in impls}
            if math.isfinite(row["peak_mb"]["gradpath"]) and math.isfinite(floor):
                targets[f"peak memory <= {MEMORY_FACTOR:g}x floor"] = \
                    row["peak_mb"]["gradpath"] <= MEMORY_FACTOR * row["memory_floor_mb"]
        elif peers:
            targets[f">= {TRAIN_VS_BEST:g}x the faster peer per update"] = \
                best / ms["gradpath"] >= TRAIN_VS_BEST
        row["targets"] = targets
        rows.append(row)

    md = [f"Measured on {cpu}, {args.threads} threads per implementation; GEMM roof "
          f"{roof['float32']:.0f} GFLOP/s float32, {roof['float64']:.0f} GFLOP/s float64 "
          "(numpy matmul 3072², best of 5). Median ms per call; ratio = gradpath / faster "
          "peer (< 1: gradpath faster). PyTorch runs torch.nn's layer (nn.RNN, nn.LSTM, "
          f"nn.GRU: oneDNN) where there is one; † marks its {LOOP} over t (autograd through "
          "the cell's step, no fused kernel). JAX: lax.scan. A cell without a peer module "
          "(src/gradpath/cells/<cell>_peer.py) is timed for gradpath alone, without a "
          "ratio.", "",
          peers_table(rows)]
    if scale:
        steep = [k for k, v in scale["slopes"].items()
                 if k.endswith(" H gradpath") and v > SCALING_SLOPE]
        md += ["", "Fitted log-log slopes (time against T; against H for H >= 256): " +
               ", ".join(f"{k} {v:.2f}" for k, v in sorted(scale["slopes"].items())) +
               f". Target: gradpath's slope against H <= {SCALING_SLOPE:g}: " +
               (f"missed by {', '.join(steep)}." if steep else "met."),
               "", "![scaling](peers_scaling.png)"]
    text = "\n".join(md) + "\n"
    print("\n" + text)
    (args.out / "peers.md").write_text(text)
    data = {"cpu": cpu, "threads": args.threads, "roof_gflops": roof, "rows": rows,
            "scaling": scale, "date": time.strftime("%Y-%m-%d"), "versions": _versions()}
    (args.out / "peers.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    mismatches = [k for k, v in problems.items() if v.startswith("MISMATCH")]
    block = readme_block(data) if args.readme and not mismatches else None
    if block is not None:
        write_readme(args.readme, block)
        print(f"wrote the summary into {args.readme}")
    if mismatches:
        print(f"PEERS: {len(mismatches)} mismatch(es) with gradpath: {mismatches}")
        return 1
    met = sum(all(r["targets"].values()) for r in rows)
    print(f"PEERS: all peers agree with gradpath; {met} of {len(rows)} cases meet every target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
