"""Ctrl-C and a hard kill during `edgetl train`, then `--resume`: a real subprocess, real signals.

The runs are a scratch CNN on 32-px colour photos, and a two-stage fine-tune of the shipped
backbone on them, a few hundred milliseconds per epoch, so the signal lands mid-training; the
stage's `history.csv` in the hidden partial folder tells when an epoch has finished.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import write_solid_photos
from typer.testing import CliRunner

from edgetl.cli import app
from edgetl.demo import IMAGE_SIZE, shipped_backbone

EPOCHS = 6  # early stopping (patience 5) cannot end it sooner: every run has all six epochs
TRAIN_ARGS = ("--strategy", "scratch", "--image-size", "32", "--epochs", str(EPOCHS), "--batch-size", "4", "--seed", "3", "-q")


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    colours = {"red": (200, 30, 30), "green": (30, 180, 40), "blue": (30, 40, 200)}
    return write_solid_photos(tmp_path_factory.mktemp("signal_photos"), colours, per_class=30, size=32)


def _start(photos: Path, out: Path, cache: Path, args: tuple[str, ...] = TRAIN_ARGS) -> subprocess.Popen[str]:
    env = {**os.environ, "EDGETL_CACHE_DIR": str(cache)}
    command = [sys.executable, "-c", "from edgetl.cli import main; main()", "train", str(photos), "--out", str(out)]
    return subprocess.Popen([*command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_epochs(process: subprocess.Popen[str], history: Path, epochs: int, timeout: float = 120) -> None:
    """Poll the partial run's per-stage log until `epochs` rows are there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"training ended before it could be interrupted: {process.communicate()}")
        if history.exists() and len(history.read_text().splitlines()) > epochs:
            return
        time.sleep(0.02)
    process.kill()
    pytest.fail(f"no {epochs} epochs logged in {timeout} s")


def _partial(out: Path) -> Path:
    return out.with_name(f".{out.name}.partial")


def test_sigint_exits_130_with_one_line_and_no_run_dir(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    process = _start(photos, out, tmp_path / "cache")
    _wait_for_epochs(process, _partial(out) / "stages" / "scratch" / "history.csv", 1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert [line for line in stderr.splitlines() if line.startswith("error:")] == ["error: interrupted"]
    assert "Traceback" not in stderr
    assert not out.exists()
    assert (_partial(out) / "stages" / "scratch" / "backup").is_dir()  # kept for --resume


def _history(run: Path) -> list[dict[str, str]]:
    with open(run / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_sigkill_then_resume_ends_like_an_uninterrupted_run(photos: Path, tmp_path: Path) -> None:
    out, cache = tmp_path / "killed", tmp_path / "cache"
    process = _start(photos, out, cache)
    _wait_for_epochs(process, _partial(out) / "stages" / "scratch" / "history.csv", 2)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert not out.exists() and _partial(out).is_dir()
    logged_before = len((_partial(out) / "stages" / "scratch" / "history.csv").read_text().splitlines()) - 1

    os.environ["EDGETL_CACHE_DIR"] = str(cache)
    try:
        runner = CliRunner()
        resumed = runner.invoke(app, ["train", str(photos), "--out", str(out), *TRAIN_ARGS, "--resume"])
        clean = runner.invoke(app, ["train", str(photos), "--out", str(tmp_path / "clean"), *TRAIN_ARGS])
    finally:
        del os.environ["EDGETL_CACHE_DIR"]
    assert resumed.exit_code == 0, resumed.output
    assert clean.exit_code == 0, clean.output
    assert not _partial(out).exists()

    history = _history(out)
    assert [row["epoch"] for row in history] == [str(i) for i in range(1, EPOCHS + 1)]  # none lost, none twice
    assert 2 <= logged_before < EPOCHS
    metrics = {name: json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("killed", "clean")}
    # The epochs after the kill see other shuffles than the clean run's: the same accuracy, losses close.
    assert metrics["killed"]["test_accuracy"] == metrics["clean"]["test_accuracy"]
    assert metrics["killed"]["val_accuracy"] == metrics["clean"]["val_accuracy"]
    clean_loss = [float(row["val_loss"]) for row in _history(tmp_path / "clean")]
    resumed_loss = [float(row["val_loss"]) for row in history]
    print(f"\nkilled after {logged_before} epochs; test accuracy {metrics['killed']['test_accuracy']} "
          f"(clean {metrics['clean']['test_accuracy']}); val_loss resumed {resumed_loss} clean {clean_loss}")
    assert resumed_loss[0] == pytest.approx(clean_loss[0], rel=1e-3)  # the same seed: the same first epoch
    assert min(resumed_loss) <= max(2 * min(clean_loss), 0.05)


def test_sigkill_in_the_fine_tune_stage_then_resume_keeps_both_stages(photos: Path, tmp_path: Path) -> None:
    """The two-stage strategy: the head (on cached features) finishes, the fine-tune is killed and resumed."""
    head_epochs, fine_tune_epochs = 3, 6
    args = ("--strategy", "fine-tune", "--backbone", "mobilenet_v2", "--alpha", "0.35", "--image-size", str(IMAGE_SIZE),
            "--weights", str(shipped_backbone()), "--no-augment", "--epochs", str(head_epochs),
            "--fine-tune-epochs", str(fine_tune_epochs), "--batch-size", "4", "--seed", "3", "-q")
    out, cache = tmp_path / "killed", tmp_path / "cache"
    process = _start(photos, out, cache, args)
    _wait_for_epochs(process, _partial(out) / "stages" / "fine-tune" / "history.csv", 2, timeout=300)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert not out.exists() and _partial(out).is_dir()
    assert (_partial(out) / "stages" / "head.weights.h5").is_file()  # the head stage is done: resume loads it
    fine_tuned_before = len((_partial(out) / "stages" / "fine-tune" / "history.csv").read_text().splitlines()) - 1
    assert 2 <= fine_tuned_before < fine_tune_epochs

    os.environ["EDGETL_CACHE_DIR"] = str(cache)
    try:
        resumed = CliRunner().invoke(app, ["train", str(photos), "--out", str(out), *args, "--resume"])
    finally:
        del os.environ["EDGETL_CACHE_DIR"]
    assert resumed.exit_code == 0, resumed.output
    history = _history(out)
    assert [row["stage"] for row in history] == ["head"] * head_epochs + ["fine-tune"] * fine_tune_epochs
    assert [row["epoch"] for row in history] == [str(i) for i in range(1, head_epochs + fine_tune_epochs + 1)]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["strategy"] == "fine-tune" and "head_val_accuracy" in metrics["fine_tune"]
    assert metrics["test_accuracy"] == 1.0  # three solid colours
