"""TensorFlow's native notices never reach edgetl's stderr, on any CPU (oneDNN forced on here).

An Intel Xeon with AMX turns oneDNN on by itself and TensorFlow 2.21 then prints its notice (and
absl's preamble) whatever TF_CPP_MIN_LOG_LEVEL says; `TF_ENABLE_ONEDNN_OPTS=1` makes any x86-64
CPU do the same, so this test fails wherever the filter does not work.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _export_shared import copy_run

from edgetl.native_logs import is_native_noise

ONEDNN_ON = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1"}


def test_forced_onednn_prints_native_notices_without_the_filter() -> None:
    """The premise: the environment below really makes TensorFlow talk on stderr."""
    done = subprocess.run([sys.executable, "-c", "import tensorflow"], env=ONEDNN_ON, capture_output=True,
                          text=True, timeout=120)
    assert "oneDNN custom operations are on" in done.stderr
    assert all(is_native_noise(line.encode()) for line in done.stderr.splitlines() if line.strip())


def test_export_with_onednn_on_prints_only_edgetl_lines(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The CLI and its export worker (a spawned process) both run behind the filter."""
    run = copy_run(tiny_run, tmp_path_factory, "quiet")
    command = [sys.executable, "-c", "from edgetl.cli import main; main()", "export", str(run),
               "--formats", "tflite-fp32,tflite-int8,onnx", "--no-golden"]
    done = subprocess.run(command, env=ONEDNN_ON, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert (run / "export" / "model_tflite-int8.tflite").is_file()
    for line in done.stderr.splitlines():
        assert line.startswith(("warning: ", "  ")), f"not edgetl's line on stderr: {line!r}"
    for noise in ("oneDNN", "absl::InitializeLog", "fully_quantize", "SavedModel"):
        assert noise not in done.stderr + done.stdout


@pytest.mark.parametrize("line, noise", [
    ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR", True),
    ("I0000 00:00:1796398306.899507   11204 port.cc:153] oneDNN custom operations are on.", True),
    ("W1204 15:02:03.123456    4242 loader.cc:88] Reading SavedModel from: /tmp/x", True),
    ("fully_quantize: 0, inference_type: 6, input_inference_type: UINT8, output_inference_type: UINT8", True),
    ("E1204 15:02:03.123456    4242 convert.cc:88] error: 'tfl.conv_2d' op failed", False),
    ("F1204 15:02:03.123456    4242 check.cc:1] Check failed: size > 0", False),
    ("Traceback (most recent call last):", False),
    ("error: RUN_DIR has no model.keras", False),
    ("Info: something edgetl says", False),
])
def test_only_tensorflow_notices_are_dropped(line: str, noise: bool) -> None:
    """Errors, tracebacks and edgetl's own lines always pass: the filter never hides a real failure."""
    assert is_native_noise(line.encode()) is noise
