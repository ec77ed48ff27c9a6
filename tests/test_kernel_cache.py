"""The kernel cache written by two processes at once (gradpath.kernels.jit).

Numba's cache keeps one index per function, mapping each compiled signature
to a numbered data file. Two processes that compile two signatures of one
function at the same moment (the parallel warm-up's float32 and float64
halves, two grid jobs on a cold cache) could both claim data file 1, and a
third process would then load one signature's machine code for the other.
gradpath locks each index while it is written; here two processes compile
the float64 and the float32 signature of many small functions in lockstep,
and a third must load every one of them, each with its own code.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gradpath.kernels import jit

N_FUNCTIONS = 60

MODULE = "import numpy as np\nfrom gradpath.kernels.jit import jit\n\n" + "\n".join(
    f"def f{i}(x):\n    return x * np.float32({i + 1})\n\n\nf{i} = jit(f{i})\n"
    for i in range(N_FUNCTIONS))

# Compile every function for one dtype; before each, meet the other writer
# (each leaves a file, then spins until the other's is there), so that both
# save the same function's index at about the same moment.
WRITER = textwrap.dedent("""
    import os, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    import many
    me, other = sys.argv[2], {"float64": "float32", "float32": "float64"}[sys.argv[2]]
    x = np.ones(1, me)
    for i in range(many.N):
        open(os.path.join(sys.argv[1], f"at-{i}-{me}"), "w").close()
        while not os.path.exists(os.path.join(sys.argv[1], f"at-{i}-{other}")):
            pass
        getattr(many, f"f{i}")(x)
""")

READER = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    import many
    bad = []
    for dtype in ("float64", "float32"):
        x = np.ones(1, dtype)
        for i in range(many.N):
            f = getattr(many, f"f{i}")
            got = f(x)
            if got.dtype != dtype or got[0] != i + 1:
                bad.append(f"f{i}({dtype}) = {got!r}")
    misses = sum(sum(getattr(many, f"f{i}").stats.cache_misses.values()) for i in range(many.N))
    print(len(bad), misses, "; ".join(bad[:5]))
""")


@pytest.mark.skipif(not jit.CACHE_WRITES_LOCKED, reason="cache writes are not locked here "
                    "(no fcntl): gradpath compiles in one process")
def test_two_processes_compiling_one_function_leave_each_signature_its_own_code(tmp_path: Path):
    (tmp_path / "many.py").write_text(MODULE + f"\nN = {N_FUNCTIONS}\n")
    (tmp_path / "writer.py").write_text(WRITER)
    (tmp_path / "reader.py").write_text(READER)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "GRADPATH_QUIET": "1"}
    writers = [subprocess.Popen([sys.executable, str(tmp_path / "writer.py"), str(tmp_path),
                                 dtype], env=env, stderr=subprocess.PIPE, text=True)
               for dtype in ("float64", "float32")]
    for w in writers:
        _, err = w.communicate(timeout=600)
        assert w.returncode == 0, err[-3000:]
    out = subprocess.run([sys.executable, str(tmp_path / "reader.py"), str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    wrong, misses, examples = out.stdout.split(" ", 2)
    assert int(wrong) == 0, f"{wrong} functions ran another signature's code: {examples}"
    assert int(misses) == 0, f"{misses} signatures were lost from the cache and compiled again"
