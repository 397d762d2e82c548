"""`edgetl demo`: the whole pipeline offline, from what the package carries, and its shipped backbone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgetl.cli import app
from edgetl.demo import BACKBONE_FILE, IMAGE_SIZE, shipped_backbone

FORMATS = ("tflite-fp32", "tflite-dynamic", "tflite-fp16", "tflite-int8", "onnx", "onnx-int8")


def test_shipped_backbone_loads_into_keras_and_edgetl() -> None:
    import keras

    from edgetl.backbones import BackboneOptions, build_backbone

    path = shipped_backbone()
    assert path.name == BACKBONE_FILE
    model = keras.applications.MobileNetV2(input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3), alpha=0.35, include_top=False, weights=None)
    model.load_weights(path)
    # What `edgetl train --alpha 0.35 --image-size 48 --weights PATH` builds.
    backbone = build_backbone(BackboneOptions(name="mobilenet_v2", alpha=0.35, image_size=IMAGE_SIZE, weights=str(path)))
    assert backbone.output_shape == (None, 1280)


def test_demo_refuses_an_existing_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--overwrite" in result.stderr


def test_demo_folder_that_cannot_be_created_is_one_error_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(app, ["demo", "--out", str(blocker / "demo")])
    assert result.exit_code == 2
    assert result.stderr == f"error: Cannot create the demo folder: Not a directory. Received: {blocker / 'demo'}\n"


@pytest.mark.slow
def test_demo_runs_offline_end_to_end(tmp_path: Path) -> None:
    """The CLI in a fresh process: an empty KERAS_HOME, downloads pointed at a dead proxy, no ../shared.

    It must pass parity (exit code 0) and show the transfer gain the shipped backbone exists for:
    with 5 digits per class, +8.5 points over scratch on 2 CPU cores here; asserted with a margin
    for other CPUs' float rounding.
    """
    keras_home, out = tmp_path / "keras_home", tmp_path / "demo"
    keras_home.mkdir()
    dead = "http://127.0.0.1:9"
    env = {**os.environ, "KERAS_HOME": str(keras_home), "http_proxy": dead, "https_proxy": dead,
           "HTTP_PROXY": dead, "HTTPS_PROXY": dead, "EDGETL_SHARED": str(tmp_path / "no-shared")}
    result = subprocess.run(
        [sys.executable, "-c", "from edgetl.cli import main; main()", "demo", "--out", str(out), "--quiet"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )
    summary = json.loads((out / "demo.json").read_text())
    assert result.returncode == 0 and summary["passed"], result.stdout[-3000:] + result.stderr[-3000:]
    export_dir = out / "runs" / "digits" / "export"
    for fmt in FORMATS:
        assert (export_dir / f"model_{fmt}{'.onnx' if fmt.startswith('onnx') else '.tflite'}").is_file()
    for name in ("verify.json", "verify.md", "parity.png", "golden/golden.json"):
        assert (export_dir / name).is_file()
    parity = {a["format"]: a for a in json.loads((export_dir / "verify.json").read_text())["artefacts"]}
    assert set(parity) == set(FORMATS)
    assert all(artefact["passed"] for artefact in parity.values())
    assert summary["transfer_test_accuracy"] > 0.88
    assert summary["transfer_gain"] > 0.04, summary
    assert (out / "runs" / "digits-scratch" / "model.keras").is_file()
    # Keras writes its keras.json config there at import; downloads would land in models/.
    assert not list((keras_home / "models").glob("*")), "the demo must not download anything"
    assert "--weights imagenet" in result.stdout
