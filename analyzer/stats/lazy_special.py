"""``scipy.special``, imported when a statistic first needs it. Pure.

Importing ``scipy.special`` costs ~0.2 s of CPU (mostly its array-API layer) in every process
that imports the judge, yet a serving process whose looks run in worker processes rarely calls
it (docs/benchmarks.md, Start-up). The statistics modules read ``special.<function>`` through
this module instead: the first read imports ``scipy.special`` and keeps the function here, so
later reads are ordinary attribute reads. Import the module, never names from it
(``from analyzer.stats.lazy_special import ndtr`` would import scipy at once).
"""

from __future__ import annotations

import importlib
from typing import Any


def import_now() -> None:
    """Import ``scipy.special`` now: for a process about to judge, in the background, so that
    its first look does not pay for it."""
    importlib.import_module("scipy.special")


def __getattr__(name: str) -> Any:
    if name.startswith("__"):  # e.g. __path__, asked by the import system: not a scipy name
        raise AttributeError(name)
    value = getattr(importlib.import_module("scipy.special"), name)
    globals()[name] = value
    return value
