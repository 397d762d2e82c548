"""The runtime needs no TensorFlow: not in sys.modules, and not installed at all in a fresh venv."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from _export_shared import Exported, exported_run
from conftest import REPO, shared_path

HEAVY = ("tensorflow", "keras", "tf_keras", "typer", "rich")
# edgetl's own modules that import (or lead to) the heavy stack; a device never loads them.
STAGES = ("edgetl.train", "edgetl.export", "edgetl.verify", "edgetl.data", "edgetl.backbones", "edgetl.demo",
          "edgetl.cli", "edgetl.inspect", "edgetl.plots")


def _loaded(code: str) -> list[str]:
    """Run `code` in a fresh interpreter; the heavy or stage modules it left in sys.modules."""
    code += (
        f"loaded = [m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or '.'.join(m.split('.')[:2]) in {STAGES!r}]\n"
        "print(json.dumps(sorted(loaded)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_import_runtime_loads_no_other_stage() -> None:
    """`import edgetl.runtime` loads neither TensorFlow/Keras nor edgetl's train/export/verify/data code."""
    assert _loaded("import json, sys\nimport edgetl.runtime\n") == []


def test_import_and_predict_load_neither_tensorflow_nor_keras() -> None:
    model = shared_path("coral", "mobilenet_v1_0.25_128_quant.tflite")
    photo = shared_path("coral", "cat.bmp")
    code = (
        "import json, sys\n"
        "import edgetl\n"
        "import edgetl.runtime\n"
        "from edgetl.runtime import Classifier\n"
        "from edgetl.runtime.golden import check_golden\n"
        "from edgetl.runtime.benchmark import benchmark\n"
        f"top = Classifier.from_file({str(model)!r}).classify([{str(photo)!r}])[0][0]\n"
        "assert top.label == 'Egyptian cat', top\n"
        "assert edgetl.__version__ and callable(edgetl.load_runner)\n"
    )
    assert _loaded(code) == []


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


def _runtime_venv(tmp_path: Path, *requirements: str) -> Path:
    """A fresh venv with `requirements` and edgetl (without its dependencies); its python.

    Skips the test when no package index is reachable.
    """
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    deps = _pip(python, *requirements)
    if deps.returncode != 0:
        pytest.skip(f"no package index reachable to build the venv: {deps.stderr.strip()[-200:]}")
    own = _pip(python, "--no-deps", str(_copy_source(tmp_path / "src")))
    assert own.returncode == 0, own.stderr
    return python


def _runtime(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m edgetl.runtime ARGS` run outside the checkout (in the venv's parent folder), so the
    installed package, not the source tree, is imported."""
    return subprocess.run(
        [str(python), "-m", "edgetl.runtime", *args], capture_output=True, text=True, timeout=120, cwd=python.parents[2]
    )


def test_runtime_only_venv_runs_a_coral_model(tmp_path: Path) -> None:
    """`pip install edgetl` + numpy, Pillow, ai-edge-litert, flatbuffers, and nothing else (~15 s)."""
    model = shared_path("coral", "mobilenet_v1_0.25_128_quant.tflite")
    photo = shared_path("coral", "bird.bmp")
    python = _runtime_venv(tmp_path, "numpy", "pillow", "ai-edge-litert>=2.3,<2.4", "flatbuffers")
    # Run outside the checkout so the installed package, not the source tree, is imported.
    check = [str(python), "-c", "import importlib.util as u; print([m for m in ('tensorflow', 'keras', 'typer') if u.find_spec(m)])"]
    assert subprocess.run(check, capture_output=True, text=True, cwd=tmp_path).stdout.strip() == "[]"
    result = _runtime(python, str(model), str(photo), "--json", "--top-k", "1")
    assert result.returncode == 0, result.stderr
    assert '"label": "chickadee"' in result.stdout


@pytest.fixture(scope="module")
def exported(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return exported_run(tiny_run, tmp_path_factory)


def test_tflite_runtime_fallback_on_an_older_device(exported: Exported, tmp_path: Path) -> None:
    """An older Pi OS image: tflite-runtime 2.14 with numpy 1.x, no ai-edge-litert (~20 s).

    Float exports reproduce their golden vectors exactly. The int8 model runs; where the old
    int8 kernels round differently, the selftest says which two interpreters disagree. The
    dynamic-range model needs an op version 2.14 lacks, and the error says what to do.
    """
    python = _runtime_venv(tmp_path, "--only-binary", ":all:", "numpy<2", "pillow", "flatbuffers", "tflite-runtime==2.14.0")
    export_dir = exported.run / "export"
    for fmt in ("tflite-fp32", "tflite-fp16"):
        result = _runtime(python, str(export_dir / f"model_{fmt}.tflite"), "--selftest")
        assert result.returncode == 0, result.stdout + result.stderr
    int8 = _runtime(python, str(export_dir / "model_tflite-int8.tflite"), "--selftest")
    assert int8.returncode == 0 or (
        int8.returncode == 1 and "made with ai-edge-litert" in int8.stdout and "runs tflite-runtime 2.14.0" in int8.stdout
    ), int8.stdout + int8.stderr
    dynamic = _runtime(python, str(export_dir / "model_tflite-dynamic.tflite"), "--selftest")
    assert dynamic.returncode == 2
    assert dynamic.stderr.startswith("error: This model uses an op version that tflite-runtime is too old to run")


def test_device_install_runs_the_edgetl_command(exported: Exported, tmp_path: Path) -> None:
    """`pip install edgetl[runtime]`'s dependencies only (~30 s): predict, inspect, bench and selftest
    work through the installed `edgetl` command; train, export and verify say what to install."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    python = _runtime_venv(tmp_path, *project["dependencies"], *project["optional-dependencies"]["runtime"])
    edgetl = python.parent / "edgetl"
    check = [str(python), "-c", "import importlib.util as u; print([m for m in ('tensorflow', 'keras') if u.find_spec(m)])"]
    assert subprocess.run(check, capture_output=True, text=True, cwd=tmp_path).stdout.strip() == "[]"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(edgetl), *args], capture_output=True, text=True, timeout=120, cwd=tmp_path)

    int8 = exported.run / "export" / "model_tflite-int8.tflite"
    coral = shared_path("coral", "mobilenet_v1_0.25_128_quant.tflite")
    photos = shared_path("coral", "imprinting")
    predicted = run("predict", str(coral), str(shared_path("coral", "bird.bmp")), "--json", "--top-k", "1")
    assert predicted.returncode == 0, predicted.stderr
    assert '"label": "chickadee"' in predicted.stdout and "XNNPACK" not in predicted.stderr
    folder = run("predict", str(coral), str(photos), "--json", "--top-k", "1")
    assert folder.returncode == 0, folder.stderr
    images = [record["image"] for record in json.loads(folder.stdout)]
    assert len(images) >= 3 and images == sorted(images, key=lambda p: Path(p).relative_to(photos).parts)
    for args in (("inspect", str(int8)), ("bench", str(int8), "--runs", "3", "--warmup", "1"), ("selftest", str(int8))):
        result = run(*args)
        assert result.returncode == 0, (args, result.stdout + result.stderr)
    for command in ("train", "export", "verify"):
        result = run(command, str(tmp_path))
        assert result.returncode == 2, (command, result.stdout + result.stderr)
        assert result.stderr.count("\n") == 1 and "pip install 'edgetl[full]'" in result.stderr, result.stderr
