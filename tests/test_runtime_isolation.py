"""The runtime needs no TensorFlow: not in sys.modules, and not installed at all in a fresh venv."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from conftest import REPO, shared_path

HEAVY = ("tensorflow", "keras", "tf_keras", "typer", "rich")


def test_import_and_predict_load_neither_tensorflow_nor_keras() -> None:
    model = shared_path("coral", "mobilenet_v1_0.25_128_quant.tflite")
    photo = shared_path("coral", "cat.bmp")
    code = (
        "import sys\n"
        "import edgetl.runtime\n"
        "from edgetl.runtime import Classifier\n"
        "from edgetl.runtime.golden import check_golden\n"
        "from edgetl.runtime.benchmark import benchmark\n"
        f"top = Classifier.from_file({str(model)!r}).classify([{str(photo)!r}])[0][0]\n"
        "assert top.label == 'Egyptian cat', top\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def _pip(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def _copy_source(target: Path) -> Path:
    """Copy what a wheel build needs, so setuptools writes its build/ folder here, not in the checkout."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("edgetl", "models"):  # models/ ships inside the package as edgetl.models
        shutil.copytree(REPO / folder, target / folder, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, target / name)
    return target


def test_runtime_only_venv_runs_a_coral_model(tmp_path: Path) -> None:
    """`pip install edgetl` + numpy, Pillow, ai-edge-litert, flatbuffers, and nothing else (~15 s)."""
    model = shared_path("coral", "mobilenet_v1_0.25_128_quant.tflite")
    photo = shared_path("coral", "bird.bmp")
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    deps = _pip(python, "numpy", "pillow", "ai-edge-litert>=2.3,<2.4", "flatbuffers")
    if deps.returncode != 0:
        pytest.skip(f"no package index reachable to build the runtime-only venv: {deps.stderr.strip()[-200:]}")
    own = _pip(python, "--no-deps", str(_copy_source(tmp_path / "src")))
    assert own.returncode == 0, own.stderr
    # Run outside the checkout so the installed package, not the source tree, is imported.
    check = [str(python), "-c", "import importlib.util as u; print([m for m in ('tensorflow', 'keras', 'typer') if u.find_spec(m)])"]
    assert subprocess.run(check, capture_output=True, text=True, cwd=tmp_path).stdout.strip() == "[]"
    result = subprocess.run(
        [str(python), "-m", "edgetl.runtime", str(model), str(photo), "--json", "--top-k", "1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert '"label": "chickadee"' in result.stdout
