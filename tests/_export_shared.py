"""One real export of the tiny run, shared by test_export*, test_verify* and test_inspect*.

Conversions are the slow part (seconds per format), so the six artefacts are made once per
test session: each module declares a session fixture that calls `exported_run`, which caches
its result for the whole process.
"""

from __future__ import annotations

import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Exported:
    run: Path
    report: object
    warnings: tuple[str, ...]


_CACHE: dict[str, Exported] = {}


def copy_run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A private copy of the trained run (model, labels, splits; no export/), to change freely."""
    run = tmp_path_factory.mktemp(name) / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("export", "checkpoints", "logs"))
    return run


def exported_run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    if "all" not in _CACHE:
        from edgetl.export import ExportOptions, export

        run = copy_run(tiny_run, tmp_path_factory, "exported")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = export(run, ExportOptions())
        _CACHE["all"] = Exported(run=run, report=report, warnings=tuple(str(w.message) for w in caught))
    return _CACHE["all"]
