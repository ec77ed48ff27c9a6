"""What a few tests need from the machine beyond Python packages, and what
happens when it is missing.

A test declares a need with ``@pytest.mark.needs("slurm")`` or
``@pytest.mark.needs("chromium")``; conftest.py checks it before the test's
fixtures are set up (so a skipped test does not first run the smoke study).
A missing need skips the test with a reason that names it and how to get it.
With ``GRADPATH_REQUIRE_ALL=1`` in the environment (``make test`` sets it, so
CI does too) the same reason fails the test instead: there every check must
run, and a skip would hide one.

The root check is one function, :func:`is_root`, so that a test can pretend
to be an ordinary user (tests/test_needs.py).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable

import pytest

#: the environment variable that turns the skips below into failures
REQUIRE_ALL = "GRADPATH_REQUIRE_ALL"


def is_root() -> bool:
    """Whether this process runs as root (POSIX effective uid 0)."""
    return os.name == "posix" and os.geteuid() == 0


def chromium_path() -> str | None:
    """The Chromium executable on PATH (Debian names it ``chromium``, Ubuntu's
    older package ``chromium-browser``), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def missing_chromium() -> str | None:
    """Why the report test cannot open the report in Chromium here, or None."""
    if chromium_path() is None:
        return ("needs Chromium on PATH (chromium or chromium-browser) to open the report: "
                "`sudo apt-get install chromium` (Debian, Ubuntu), or `make chromium` as root")
    if importlib.util.find_spec("playwright") is None:
        return ("needs the playwright package to drive Chromium: `pip install playwright` "
                "(no browser download: it drives the system's chromium)")
    return None


def missing_slurm() -> str | None:
    """Why the cluster test cannot start a one-node SLURM here, or None."""
    import local_slurm

    return local_slurm.missing()


#: every need a test can declare, and how to tell that it is missing
NEEDS: dict[str, Callable[[], str | None]] = {
    "chromium": missing_chromium,
    "slurm": missing_slurm,
}


def require_all() -> bool:
    """Whether a missing need fails instead of skipping (``GRADPATH_REQUIRE_ALL``
    set to anything but empty, ``0``, ``false`` or ``no``)."""
    return os.environ.get(REQUIRE_ALL, "").strip().lower() not in ("", "0", "false", "no")


def enforce(need: str) -> None:
    """Skip the running test when ``need`` is missing, or fail it when
    :func:`require_all`; do nothing when the need is met.

    Parameters
    ----------
    need : str
        A key of :data:`NEEDS`.

    Raises
    ------
    pytest.skip.Exception
        The need is missing (the reason says what it needs and how to get it).
    pytest.fail.Exception
        The need is missing and ``GRADPATH_REQUIRE_ALL`` is set.
    """
    if need not in NEEDS:
        raise ValueError(f"unknown need {need!r}: one of {', '.join(sorted(NEEDS))}")
    why = NEEDS[need]()
    if why is None:
        return
    if require_all():
        pytest.fail(f"{REQUIRE_ALL}=1 (make test, CI) runs every test, but this one {why}",
                    pytrace=False)
    pytest.skip(why)
