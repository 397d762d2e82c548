"""The package root: the version alone, the API on first use, and stage modules that are also the API calls."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO


def _run(code: str) -> dict:
    """Run `code` in a fresh interpreter (so import order is its own) and parse the JSON it prints."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_import_edgetl_loads_only_the_version() -> None:
    found = _run("import json, sys, edgetl\nprint(json.dumps(sorted(m for m in sys.modules if m.startswith('edgetl'))))")
    assert found == ["edgetl", "edgetl._version"]


def test_every_public_name_resolves() -> None:
    import edgetl

    assert all(getattr(edgetl, name) is not None for name in edgetl.__all__)
    assert set(edgetl.__all__) == {*edgetl._LAZY, "__version__"}  # the list a linter reads matches the table


def test_stage_modules_keep_their_contents_and_run_their_function() -> None:
    """`import edgetl.export` first, then the README's `edgetl.export(...)`, and the other order for verify."""
    code = """
import json, edgetl.export
from edgetl import EdgetlError, ExportOptions
errors = {}
try:
    edgetl.export("no-such-run", ExportOptions(formats=("onnx",)))
except EdgetlError as e:
    errors["export"] = str(e)
try:
    edgetl.verify("no-such-run")
except EdgetlError as e:
    errors["verify"] = str(e)
import edgetl.verify
options = edgetl.TrainOptions
import edgetl.train
print(json.dumps({"formats": sorted(edgetl.export.FORMATS), "errors": errors,
                  "verify_is_module": edgetl.verify.__name__, "train_options": options is edgetl.train.TrainOptions}))
"""
    found = _run(code)
    assert "tflite-int8" in found["formats"] and "onnx" in found["formats"]
    assert found["errors"]["export"].startswith("Run directory not found")
    assert found["errors"]["verify"].startswith("Run directory not found")
    assert found["verify_is_module"] == "edgetl.verify" and found["train_options"] is True
