"""Flush-to-zero off x86: the aarch64 code path and the no-flush fallback.

No ARM CPU runs these tests. What they show on x86:

* the aarch64 path (FPCR's FZ bit) is valid LLVM IR that the AArch64 backend
  compiles to ``mrs``/``msr fpcr`` (and the same emitters give
  ``stmxcsr``/``ldmxcsr`` for x86-64), checked with llvmlite's own backends;
* the fallback used where no mechanism exists (``GRADPATH_FPENV=none``
  forces it here, in a fresh process): kernels run and give the float64
  results of this machine's own path (MXCSR on x86, run the same way) to the
  bit where nothing is subnormal, keep subnormals where there are some, warn
  exactly once, and ``fp_mode``/``set_fp_mode``/``flushed`` touch no
  register;
* a kernel compiled in its process gives the bits of the same kernel loaded
  from the cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import llvmlite.binding as llvm
import numpy as np
import pytest
from llvmlite import ir as llvm_ir

from gradpath.kernels import arch, fpenv

TESTS = Path(__file__).resolve().parent


def _mode_module(kind: str, triple: str) -> str:
    """IR of ``enter(bits)``: set ``bits`` in the mode register, return the old
    mode (what :func:`gradpath.kernels.fpenv.flushed` does), built with the
    emitters the kernels use."""
    i64 = llvm_ir.IntType(64)
    module = llvm_ir.Module(name=f"fpenv_{kind}")
    module.triple = triple
    fn = llvm_ir.Function(module, llvm_ir.FunctionType(i64, [i64]), name="enter")
    builder = llvm_ir.IRBuilder(fn.append_basic_block())
    old = fpenv.emit_read_mode(builder, kind)
    fpenv.emit_write_mode(builder, kind, builder.or_(old, fn.args[0]))
    builder.ret(old)
    return str(module)


def _assembly(ir: str, triple: str) -> str:
    llvm.initialize_all_targets()  # Numba initialises the host's only
    llvm.initialize_all_asmprinters()
    try:
        target = llvm.Target.from_triple(triple)
    except RuntimeError as exc:  # llvmlite built without this backend: nothing to check
        pytest.skip(f"llvmlite has no backend for {triple}: {exc}")
    parsed = llvm.parse_assembly(ir)
    parsed.verify()
    return target.create_target_machine(opt=2).emit_assembly(parsed).lower()


def test_fpcr_path_compiles_to_mrs_and_msr_fpcr_for_aarch64():
    asm = _assembly(_mode_module("fpcr", "aarch64-unknown-linux-gnu"),
                    "aarch64-unknown-linux-gnu")
    assert "mrs" in asm and "msr" in asm, asm
    read = next(line for line in asm.splitlines() if "mrs" in line)
    write = next(line for line in asm.splitlines() if "msr" in line)
    assert "fpcr" in read and "fpcr" in write, asm
    assert "mxcsr" not in asm
    assert fpenv.FPCR_FZ == 1 << 24  # FPCR.FZ: flushes subnormal inputs and results


def test_mxcsr_path_compiles_to_stmxcsr_and_ldmxcsr_for_x86_64():
    asm = _assembly(_mode_module("mxcsr", "x86_64-unknown-linux-gnu"),
                    "x86_64-unknown-linux-gnu")
    assert "stmxcsr" in asm and "ldmxcsr" in asm, asm
    assert "fpcr" not in asm


def test_the_switch_accepts_auto_and_none_only(monkeypatch):
    monkeypatch.setenv("GRADPATH_FPENV", "none")
    assert arch._fpenv("mxcsr") == "none"
    for auto in ("", "auto", " AUTO "):
        monkeypatch.setenv("GRADPATH_FPENV", auto)
        assert arch._fpenv("fpcr") == "fpcr"
    monkeypatch.setenv("GRADPATH_FPENV", "fpcr")  # another machine's register: refused
    with pytest.raises(ValueError, match="GRADPATH_FPENV"):
        arch._fpenv("mxcsr")


def test_this_machine_uses_its_own_mechanism():
    if os.environ.get("GRADPATH_FPENV", "auto").strip().lower() in ("", "auto"):
        assert arch.FPENV == ("mxcsr" if arch.X86 else "fpcr" if arch.AARCH64 else "none")
    assert fpenv.FLUSH_BITS == {"mxcsr": fpenv.FTZ | fpenv.DAZ, "fpcr": fpenv.FPCR_FZ,
                                "none": 0}[arch.FPENV]


PROBLEMS = [("rnn", "tanh", "last"), ("lstm", "tanh", "all"), ("gru", "tanh", "last")]

NONE_SCRIPT = textwrap.dedent("""
    import json, sys, warnings
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from problems import make_problem
    from gradpath.kernels import fpenv
    import gradpath as gp

    out = {"fpenv": fpenv.FPENV, "flush_bits": fpenv.FLUSH_BITS}
    tiny32 = np.finfo(np.float32).tiny
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # so that only gradpath's own once-guard can dedupe
        # but not Numba's pedantic IR note that gradpath.kernels.jit silences
        warnings.filterwarnings("ignore", message=r"variable '.*' is not in scope")
        if fpenv.FPENV == "none":  # (elsewhere, writing the register would change the run)
            out["mode"] = int(fpenv.fp_mode())
            fpenv.set_fp_mode(0xFFFF)
            out["mode_after_set"] = int(fpenv.fp_mode())
        with fpenv.flushed():
            out["mode_inside"] = int(fpenv.fp_mode())
            # was a register touched? with FTZ, tiny / 4 is 0
            out["underflow_inside"] = float(np.float32(tiny32) / np.float32(4))
        arrays = {}
        for i, (cell, act, score) in enumerate(json.loads(sys.argv[3])):
            res = make_problem(cell, act, score=score, T=12, B=3, H=8, ragged=True).kernel()
            arrays[f"{i}_loss"] = np.array(res.loss)
            arrays[f"{i}_grad_norms"] = res.grad_norms
            arrays[f"{i}_h0_grad"] = res.h0_grad
            for k, v in res.grads.items():
                arrays[f"{i}_{k}"] = v
        np.savez(sys.argv[2], **arrays)
        if sys.argv[4] == "lag2":
            # a vanishing ReLU RNN (W_hh = 1e-20 I): the adjoint at lag 2 is ~1e-40,
            # subnormal in float32, and stays so without flushing
            model = gp.RNN(1, 8, 1, activation="relu")
            p = model.init_params("identity", gain=1.0, seed=0, dtype=np.float64)
            p["W_hh"] = 1e-20 * np.eye(8)
            p["W_ih"] = np.abs(p["W_ih"]) + 0.5
            p = {k: v.astype(np.float32) for k, v in p.items()}
            x = np.ones((4, 2, 1), np.float32)
            out["lag2_norms"] = model.loss_and_grads(
                p, x, np.zeros((2, 1), np.float32)).grad_norms[1].tolist()
    kept = [w for w in caught if issubclass(w.category, fpenv.SubnormalsKept)]
    out["notices"] = len(kept)
    out["notice"] = str(kept[0].message) if kept else ""
    out["others"] = [f"{w.category.__name__}: {w.message}" for w in caught
                     if not issubclass(w.category, fpenv.SubnormalsKept)]
    print(json.dumps(out))
""")


def run_script(tmp_path: Path, fpenv_choice: str, problems: list = PROBLEMS,
               lag2: bool = True, fresh_cache: bool = False) -> tuple[dict, dict]:
    """The script in a fresh process, on ``problems`` (and on the vanishing
    float32 RNN if ``lag2``): with its own, empty kernel cache (it compiles
    what it calls), or with the suite's (it loads them)."""
    work = tmp_path / f"{fpenv_choice}-{'fresh' if fresh_cache else 'suite'}"
    work.mkdir()
    script = work / "run.py"
    script.write_text(NONE_SCRIPT)
    env = dict(os.environ, GRADPATH_FPENV=fpenv_choice, GRADPATH_QUIET="1")
    if fresh_cache:
        env["NUMBA_CACHE_DIR"] = str(work / "numba")
    done = subprocess.run([sys.executable, str(script), str(TESTS), str(work / "out.npz"),
                           json.dumps(problems), "lag2" if lag2 else "-"],
                          env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr
    with np.load(work / "out.npz") as arrays:
        return json.loads(done.stdout.strip().splitlines()[-1]), dict(arrays)


@pytest.mark.slow
def test_forced_no_flush_path_runs_kernels_correctly_and_warns_once(tmp_path: Path):
    """GRADPATH_FPENV=none on this machine: the path every CPU without a
    known flush-to-zero register takes, against this machine's own path. The
    kernels do not depend on the mode (it is set around a call), so both
    processes load them from the suite's cache."""
    out, got = run_script(tmp_path, "none")
    assert out["fpenv"] == "none" and out["flush_bits"] == 0
    assert out["mode"] == out["mode_after_set"] == out["mode_inside"] == 0
    assert out["underflow_inside"] > 0, "flushed() must not flush on the no-flush path"
    assert out["notices"] == 1, out  # several kernel calls, one notice
    assert "subnormal numbers are kept" in out["notice"] and "GRADPATH_FPENV=none" in \
        out["notice"]
    assert not out["others"], out["others"]
    # subnormals survive: lag 2 of the vanishing RNN is ~1e-40 (0 when flushed)
    assert all(0 < v < 1e-30 for v in out["lag2_norms"]), out["lag2_norms"]

    own, ref = run_script(tmp_path, "auto")
    assert own["fpenv"] == arch.FPENV and own["notices"] == 0 and not own["others"], own
    if arch.FPENV != "none":  # the control: this machine's path flushes
        assert own["mode_inside"] & fpenv.FLUSH_BITS == fpenv.FLUSH_BITS
        assert own["underflow_inside"] == 0.0 and own["lag2_norms"] == [0.0, 0.0]
    # float64 with nothing subnormal: the same bits with and without flushing
    assert set(got) == set(ref) and len(ref) > 3 * len(PROBLEMS)
    for name, arr in ref.items():
        np.testing.assert_array_equal(got[name], arr, err_msg=name)


@pytest.mark.slow
def test_a_kernel_compiled_in_its_process_gives_the_bits_of_the_cached_one(tmp_path: Path):
    """The LSTM compiled afresh (its own, empty cache) against the same
    kernel loaded from the suite's cache, in this machine's own mode. They
    once differed in the last bit: the LSTM's f*c + i*g fused one way when
    compiled and the other when loaded, before ``kernels.common.fma_``. One
    cell, because a fresh compile of a cell costs 15-30 s."""
    lstm = [p for p in PROBLEMS if p[0] == "lstm"]
    _, compiled = run_script(tmp_path, "auto", lstm, lag2=False, fresh_cache=True)
    _, loaded = run_script(tmp_path, "auto", lstm, lag2=False)
    assert set(compiled) == set(loaded) and len(loaded) > 3
    for name, arr in loaded.items():
        np.testing.assert_array_equal(compiled[name], arr, err_msg=name)


def test_l1d_size_from_sysfs(tmp_path: Path):
    """The level-1 data cache's size as Linux's sysfs gives it (the
    instruction cache and other levels skipped), and the default where sysfs
    has no such entry or no directory at all."""
    def cache(index: str, level: str, kind: str, size: str) -> None:
        d = tmp_path / index
        d.mkdir()
        (d / "level").write_text(level + "\n")
        (d / "type").write_text(kind + "\n")
        (d / "size").write_text(size + "\n")

    cache("index0", "1", "Instruction", "64K")
    cache("index1", "1", "Data", "48K")
    cache("index2", "2", "Unified", "2048K")
    assert arch.l1d_bytes(str(tmp_path)) == 48 * 1024
    assert arch.l1d_bytes(str(tmp_path / "missing")) == arch.L1D_DEFAULT
    (tmp_path / "index1" / "size").write_text("garbage\n")
    assert arch.l1d_bytes(str(tmp_path)) == arch.L1D_DEFAULT
    assert arch.l1d_bytes() > 0  # this machine's, whatever it is
