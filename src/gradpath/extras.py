"""The libraries of the ``study`` extra, imported where they are used.

``pip install gradpath`` brings the library and the command line (kernels,
models, probes, training); ``pip install 'gradpath[study]'`` adds the
workflow, the analysis and the report, with pandas, pyarrow, Snakemake,
seaborn and the rest. The modules that serve both installs (the tables of
:mod:`gradpath.results`, the claims of :mod:`gradpath.claims`) name such a
library by a :class:`StudyModule`, which imports it on first use: importing
them costs nothing, and a study function called without the extra raises an
ImportError that says how to install it.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

#: How to get the study's libraries (in every error about a missing one).
STUDY_INSTALL = "pip install 'gradpath[study]'"


def require(name: str) -> ModuleType:
    """Import the study extra's module ``name``.

    Parameters
    ----------
    name : str
        A module, e.g. ``"pandas"`` or ``"pyarrow.parquet"``.

    Returns
    -------
    module

    Raises
    ------
    ImportError
        When the module's distribution is not installed, naming it and
        :data:`STUDY_INSTALL`. An import error from inside an installed
        library propagates unchanged.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        top = name.partition(".")[0]
        if exc.name is None or exc.name.partition(".")[0] != top:
            raise  # the library is there but something it needs is broken
        raise ImportError(f"{top} is not installed: this part of gradpath (the study's "
                          f"tables, claims and workflow) needs the study extra: "
                          f"{STUDY_INSTALL}", name=top) from exc


def missing(*names: str) -> list[str]:
    """The top-level packages among ``names`` that cannot be imported.

    Parameters
    ----------
    *names : str
        Modules, as for :func:`require`.

    Returns
    -------
    list of str
        Empty when every one imports.
    """
    out = []
    for name in names:
        try:
            require(name)
        except ImportError:
            out.append(name.partition(".")[0])
    return out


class StudyModule:
    """A module of the study extra, imported on its first attribute access.

    ``pd = StudyModule("pandas")`` at the top of a module stands for
    ``import pandas as pd`` inside every function that uses it.

    Parameters
    ----------
    name : str
        The module, as for :func:`require`.
    """

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(require(self._name), attr)

    def __repr__(self) -> str:
        return f"StudyModule({self._name!r})"
