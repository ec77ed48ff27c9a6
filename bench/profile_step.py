"""Where a forward + BPTT call spends its time, sampled by ``perf`` inside the real call.

    python bench/profile_step.py [--dtype float32] [--cases lstm:32,128,2,200 ...]
                                 [--score last]

For each case (cell:B,H,D,T; mse over every step, tanh, as in the peers
table; ``--score last``: at the last step only, as in the training updates)
a fresh process warms the kernels up, writes a perf map of the compiled
kernels (``/tmp/perf-PID.map``: Numba's JIT code has no symbols of its own),
and then runs ``--repeat`` calls with its usual threads while

- ``perf stat`` counts cycles, instructions, cache references and misses
  (memory stalls show as a low IPC and a high miss rate), then
- ``perf record`` samples every thread of the process.

The samples are attributed by symbol to: the recurrent product (the owned
micro-kernel, :mod:`gradpath.kernels.gemm`), the packing of the weights into
its panels (once per call, on the calling thread), the weight gradients (the
same micro-kernel summing over every (t, b), with the bias sums), BLAS (the
read-out's and the wide input's GEMMs), the input drive, the cell arithmetic
(gates, transcendentals, norms, the loss's injection), waits (a thread
spinning at a barrier or idle at a hand-off), reference counts (Numba's
NRT_incref / NRT_decref of the arrays and views the step functions pass),
the kernel (page faults of fresh arrays, scheduling) and the rest
(interpreter, allocator).

``--updates`` adds the training update's overhead: ``Trainer.update`` (kernel
call + clipping + Adam + bookkeeping) and ``Trainer.batch`` against the kernel
call alone on the same batch (wall time; no perf needed).

Needs ``perf`` (Debian's ``linux-perf``) and ``kernel.perf_event_paranoid``
<= 1 or root; without it, only the call's wall time is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_CASES = ("lstm:32,128,2,200", "lstm:64,256,2,1000", "lstm:16,512,8,100",
                 "rnn:16,512,8,100", "rnn:64,256,2,1000", "gru:32,128,2,200",
                 "gru:64,256,2,1000", "gru:16,512,8,100")

#: Symbol patterns by category, first match wins (kernel symbols by their
#: Numba module path, demangled by :func:`_symbol`).
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("recurrent product", r"kernels\.gemm\.product"),
    ("packing", r"kernels\.gemm\.pack|ascontiguousarray"),
    ("weight gradients", r"kernels\.gemm\.grad_product|weight_grads|_accumulate"),
    ("BLAS", r"^[sd]gemm_|gemm_(kernel|oncopy|otcopy|itcopy|incopy|beta)|^[sd]dot|^[sd]axpy"),
    ("input drive", r"add_drive|matmul_into"),
    # not a cell's ``block`` (the phase loop of a split call) or ``trail`` (the
    # trailing helper's chunk loop): their own samples are the spin at the
    # barriers between the passes and at the counters (waits)
    ("cell arithmetic", r"^gradpath\.cells\.(?!\w+\.(block|trail)$)|kernels\.common\."),
    ("waits", r"blas_thread_server|sched_yield|futex|pthread_cond|spin|barrier"
              r"|^gradpath\.cells\.\w+\.(block|trail)$"),
    ("reference counts", r"^NRT_(incref|decref)"),
    ("kernel (page faults, scheduling)", r"^\[k\]"),
)
OTHER = "rest (interpreter, allocator, ...)"
STAT_EVENTS = "cycles,instructions,cache-references,cache-misses"


def _symbol(name: str) -> str:
    """``gradpath.cells.lstm.cell_row`` from a Numba-mangled name (``_ZN8gradpath5cells...``)."""
    if not name.startswith("_ZN"):
        return name
    parts, i = [], 3
    while i < len(name) and name[i].isdigit():
        j = i
        while name[j].isdigit():
            j += 1
        n = int(name[i:j])
        parts.append(name[j:j + n])
        i = j + n
    return ".".join(parts) or name


def write_perf_map() -> int:
    """Write ``/tmp/perf-PID.map`` for every compiled gradpath kernel loaded in
    this process (start, size, name); return the number of functions."""
    from numba.core.registry import CPUDispatcher

    names: dict[int, str] = {}
    for modname, mod in list(sys.modules.items()):
        if not modname.startswith("gradpath"):
            continue
        for obj in list(vars(mod).values()):
            if not isinstance(obj, CPUDispatcher):
                continue
            for cres in obj.overloads.values():
                lib = cres.library
                # compiled here: the final module; loaded from the cache: the linking module
                modules = [m for m in (getattr(lib, "_final_module", None),
                                       getattr(lib, "_shared_module", None)) if m is not None]
                for fn in (f for m in modules for f in m.functions):
                    if fn.is_declaration:
                        continue
                    try:
                        addr = lib.get_pointer_to_function(fn.name)
                    except Exception:  # noqa: BLE001 - a symbol this library does not define
                        continue
                    if addr:
                        names[addr] = _symbol(fn.name)
    addrs = sorted(names)
    if not addrs:
        raise RuntimeError("no compiled gradpath kernel found for the perf map")
    with open(f"/tmp/perf-{os.getpid()}.map", "w") as fh:
        for a, b in zip(addrs, addrs[1:] + [addrs[-1] + 4096], strict=True):
            fh.write(f"{a:x} {min(b - a, 1 << 20):x} {names[a]}\n")
    return len(addrs)


def _perf_available() -> bool:
    if shutil.which("perf") is None:
        return False
    try:
        paranoid = int(Path("/proc/sys/kernel/perf_event_paranoid").read_text())
    except (OSError, ValueError):
        return False
    return paranoid <= 1 or os.geteuid() == 0


def _under_perf(args: list[str], fn, repeat: int) -> list[float]:
    """Start ``perf <args> -p <this pid>``, run ``fn`` ``repeat`` times, stop perf
    with SIGINT; return the calls' wall times (s)."""
    perf = subprocess.Popen(["perf", *args, "-p", str(os.getpid())],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # perf attaches
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    perf.send_signal(signal.SIGINT)
    err = perf.communicate(timeout=60)[1]
    if perf.returncode not in (0, -signal.SIGINT, 130):
        raise RuntimeError(f"perf {args[0]} failed: {err.strip()[-400:]}")
    return ts


def child(case: str, dtype: str, repeat: int, out: Path, score: str = "all") -> None:
    """In a fresh process: warm up, then the calls under perf stat and perf record."""
    import gradpath as gp
    from gradpath.models import make_model

    cell, dims = case.split(":")
    B, H, D, T = (int(v) for v in dims.split(","))
    dt = np.dtype(dtype)
    model = make_model(cell, D, H, 1, "tanh")
    params = model.init_params(seed=0, dtype=dt)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(T, B, D)).astype(dt)
    target = np.zeros((T, B, 1) if score == "all" else (B, 1), dt)

    def call():
        model.loss_and_grads(params, x, target, loss="mse", score=score)

    gp.warmup()
    call()
    result = {"case": case, "dtype": dtype, "score": score}
    ts = [time.perf_counter()]
    for _ in range(repeat):
        call()
        ts.append(time.perf_counter())
    result["ms"] = statistics.median(np.diff(ts)) * 1e3
    if _perf_available():
        write_perf_map()
        stat = out.with_suffix(".stat")
        _under_perf(["stat", "-x", ",", "-e", STAT_EVENTS, "-o", str(stat)], call, repeat)
        result["stat_file"] = str(stat)
        data = out.with_suffix(".data")
        _under_perf(["record", "-q", "-F", "4000", "-o", str(data)], call, repeat)
        result["data_file"] = str(data)
        result["pid"] = os.getpid()
    out.write_text(json.dumps(result))


def attribute(data: str) -> dict[str, float]:
    """Share of samples (%) per category of :data:`CATEGORIES`."""
    rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                          "--sort", "sym", "--percent-limit", "0"],
                         capture_output=True, text=True, check=True).stdout
    shares = {name: 0.0 for name, _ in CATEGORIES} | {OTHER: 0.0}
    for line in rep.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\[[.k]\])\s+(.*\S)", line)
        if not m:
            continue
        pct, kind, sym = float(m.group(1)), m.group(2), _symbol(m.group(3).strip())
        key = f"[k] {sym}" if kind == "[k]" else sym
        for name, pattern in CATEGORIES:
            if re.search(pattern, key):
                shares[name] += pct
                break
        else:
            shares[OTHER] += pct
    return shares


def counters(stat: str) -> dict[str, float]:
    """perf stat's CSV counts by event name."""
    counts = {}
    for line in Path(stat).read_text().splitlines():
        f = line.split(",")
        if len(f) > 2 and f[0].replace(".", "").isdigit():
            counts[f[2].split(":")[0]] = float(f[0])
    return counts


def profile(case: str, dtype: str, repeat: int, score: str = "all") -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        subprocess.run([sys.executable, __file__, "--child", case, "--dtype", dtype,
                        "--repeat", str(repeat), "--score", score, "--out", str(out)],
                       check=True)
        r = json.loads(out.read_text())
        if "data_file" in r:
            try:
                r["shares"] = attribute(r["data_file"])
                r["counters"] = counters(r["stat_file"])
            finally:
                Path(f"/tmp/perf-{r['pid']}.map").unlink(missing_ok=True)
    return r


def update_overhead(cell: str, B: int, H: int, T: int, dtype: str, repeat: int) -> dict:
    from gradpath.train import TrainConfig, Trainer

    def median(fn) -> float:
        fn()
        ts = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts) * 1e3

    cfg = TrainConfig(task="adding", seq_len=T, cell=cell, activation="relu",
                      init="orthogonal", clip="norm", clip_threshold=1.0, optimizer="adam",
                      lr=1e-3, hidden=H, batch=B, dtype=dtype)
    tr = Trainer(cfg)
    b = tr.batch(1)
    kernel = median(lambda: tr.model.loss_and_grads(tr.params, b.x, b.target, "mse", "last"))
    update = median(lambda: tr.update(b))
    batch = median(lambda: tr.batch(2))
    return dict(case=f"update {cell} B{B} H{H} T{T}", dtype=dtype, kernel=kernel,
                update=update, batch=batch)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES))
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--score", default="all", choices=["all", "last"],
                    help="the loss over every step (the peers' kernel cases) or the last "
                         "step only (as the training updates of the adding problem)")
    ap.add_argument("--updates", action="store_true",
                    help="also the training update's overhead over the kernel call")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.dtype, args.repeat, args.out, args.score)
        return
    if not _perf_available():
        print("perf is not usable here (install linux-perf; perf_event_paranoid <= 1 or root):"
              " wall times only", file=sys.stderr)
    names = [name for name, _ in CATEGORIES] + [OTHER]
    print("| case | dtype | call ms | " + " | ".join(names) + " | IPC | cache miss % |")
    print("|---|---|--:|" + "--:|" * (len(names) + 2))
    for case in args.cases:
        r = profile(case, args.dtype, args.repeat, args.score)
        shares = r.get("shares", {})
        c = r.get("counters", {})
        ipc = c["instructions"] / c["cycles"] if c.get("cycles") else float("nan")
        miss = 100 * c["cache-misses"] / c["cache-references"] if c.get("cache-references") \
            else float("nan")
        cells = " | ".join(f"{shares[n]:.0f} %" if n in shares else "–" for n in names)
        print(f"| {case} | {args.dtype} | {r['ms']:.3g} | {cells} | {ipc:.2f} | {miss:.1f} |",
              flush=True)
    if not args.updates:
        return
    from gradpath.vocab import CELLS

    print("\n| update case | dtype | kernel ms | update ms | overhead | batch ms |")
    print("|---|---|--:|--:|--:|--:|")
    for cell in CELLS:
        for B, H, T in ((16, 64, 100), (16, 128, 400), (64, 128, 100)):
            r = update_overhead(cell, B, H, T, args.dtype, args.repeat)
            over = (r["update"] - r["kernel"]) / r["kernel"]
            print(f"| {r['case']} | {r['dtype']} | {r['kernel']:.3g} | {r['update']:.3g} | "
                  f"{over:+.0%} | {r['batch']:.3g} |")


if __name__ == "__main__":
    main()
