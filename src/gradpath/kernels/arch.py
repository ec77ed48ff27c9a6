"""What the kernels may assume about the CPU: the one place that asks.

Everything architecture-specific in the kernels reads this module, so that a
different machine (or a test that forces one path) changes behaviour in one
place:

* :data:`FPENV`, how subnormals are flushed (:mod:`gradpath.kernels.fpenv`):
  ``"mxcsr"`` on x86 (FTZ and DAZ bits of MXCSR), ``"fpcr"`` on aarch64
  (the FZ bit of FPCR), ``"none"`` elsewhere, or when the environment variable
  ``GRADPATH_FPENV=none`` asks for it (kernels then keep IEEE subnormals, with
  a one-time warning);
* :data:`X86`: the spin barrier's ``pause`` hint (:mod:`gradpath.kernels.sync`);
* :func:`host_features`: the micro-kernel's panel width
  (:mod:`gradpath.kernels.gemm`: wider with AVX-512);
* :func:`l1d_bytes`: how a lone row's product groups its panels
  (:func:`gradpath.kernels.gemm.product_units`).

``GRADPATH_FPENV`` accepts ``auto`` (the default: the machine's own mechanism)
or ``none``; forcing another machine's register is not possible (its
instructions do not exist here).
"""

from __future__ import annotations

import os
import platform

import llvmlite.binding as llvm

#: ``platform.machine()``, lower case (``x86_64``, ``aarch64``, ``arm64`` on macOS).
MACHINE = platform.machine().lower()
X86 = MACHINE in ("x86_64", "amd64", "i386", "i686", "x86")
AARCH64 = MACHINE in ("aarch64", "arm64")

FPENV_CHOICES = ("auto", "none")


def _fpenv(machine_default: str) -> str:
    asked = os.environ.get("GRADPATH_FPENV", "").strip().lower() or "auto"
    if asked not in FPENV_CHOICES:
        raise ValueError(f"GRADPATH_FPENV={asked!r}: expected one of {', '.join(FPENV_CHOICES)}")
    return machine_default if asked == "auto" else "none"


#: The flush-to-zero mechanism in use: ``"mxcsr"``, ``"fpcr"`` or ``"none"``.
FPENV = _fpenv("mxcsr" if X86 else "fpcr" if AARCH64 else "none")


def host_features() -> frozenset[str]:
    """The host CPU's LLVM feature flags (``"+avx512f"``, ``"+neon"``, ...).

    Empty where LLVM cannot tell (it raises on some platforms; Numba falls
    back the same way), so callers pick their portable default.
    """
    try:
        return frozenset(llvm.get_host_cpu_features().flatten().split(","))
    except RuntimeError:
        return frozenset()


#: The L1 data cache assumed where the system does not say (the most common size).
L1D_DEFAULT = 32 * 1024


def l1d_bytes(base: str = "/sys/devices/system/cpu/cpu0/cache") -> int:
    """Bytes of CPU 0's level-1 data cache, from Linux's sysfs (``base``);
    else :data:`L1D_DEFAULT`."""
    try:
        for index in sorted(os.listdir(base)):
            path = os.path.join(base, index)
            with open(os.path.join(path, "level")) as fh:
                level = fh.read().strip()
            with open(os.path.join(path, "type")) as fh:
                kind = fh.read().strip()
            if level == "1" and kind in ("Data", "Unified"):
                with open(os.path.join(path, "size")) as fh:
                    size = fh.read().strip().upper()
                scale = {"K": 1024, "M": 1024 * 1024}.get(size[-1:], 1)
                value = int(size.rstrip("KM")) * scale
                return value if value > 0 else L1D_DEFAULT
    except (OSError, ValueError):
        pass
    return L1D_DEFAULT
