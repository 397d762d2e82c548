"""Training with 2 processes on JAX's distributed runtime (localhost, CPU, gloo) against 1 process.

Each process is a real `edgetl train` subprocess given Keras' cluster environment variables.
The cluster run feeds every process half of the training photos and averages the gradients of
the global batch; the single process shuffles all photos into its batches. The 24 training photos
make whole global batches of 8, so both runs take 3 steps an epoch on the same photos, in
different batches, and their losses differ by a little (measured: val accuracy 1.0 from epoch 5
at the latest, final val losses 0.016 and 0.022). The test asserts what must not differ (the
accuracy on three solid colours, both perfect), and final validation losses within a factor of 2
of each other (or both under 0.05).
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_solid_photos

pytest.importorskip("jax", reason="multi-process training runs on the JAX backend (pip install 'jax[cpu]')")

EPOCHS = 8
TRAIN_ARGS = ("--strategy", "scratch", "--image-size", "32", "--epochs", str(EPOCHS), "--batch-size", "8", "--seed", "1", "-q")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _train(photos: Path, out: Path, cache: Path, processes: int, extra: tuple[str, ...] = ()) -> list[subprocess.Popen[str]]:
    env = os.environ | {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "EDGETL_CACHE_DIR": str(cache),
                        "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    if processes > 1:
        env |= {"KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{_free_port()}", "KERAS_DISTRIBUTION_NUM_PROCESSES": str(processes)}
    command = [sys.executable, "-c", "from edgetl.cli import main; main()", "train", str(photos), "--out", str(out), *TRAIN_ARGS, *extra]
    return [
        subprocess.Popen(command, env=env | {"KERAS_DISTRIBUTION_PROCESS_ID": str(i)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(processes)
    ]


def _finish(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]


def _val_losses(run: Path) -> list[float]:
    with open(run / "history.csv", newline="") as handle:
        return [float(row["val_loss"]) for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    colours = {"red": (200, 30, 30), "green": (30, 180, 40), "blue": (30, 40, 200)}
    return write_solid_photos(tmp_path_factory.mktemp("cluster_photos"), colours, per_class=12, size=32)


def test_two_processes_train_like_one(photos: Path, tmp_path: Path) -> None:
    cluster, single = _train(photos, tmp_path / "cluster", tmp_path / "cache", 2), _train(photos, tmp_path / "single", tmp_path / "cache", 1)
    _finish(cluster + single)
    metrics = {name: json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("cluster", "single")}
    assert metrics["cluster"]["test_accuracy"] == metrics["single"]["test_accuracy"] == 1.0
    assert metrics["cluster"]["val_accuracy"] == metrics["single"]["val_accuracy"] == 1.0
    cluster_loss, single_loss = _val_losses(tmp_path / "cluster"), _val_losses(tmp_path / "single")
    assert len(cluster_loss) == EPOCHS  # process 0 alone logged: one row per epoch, none twice
    print(f"\nval_loss 2 processes {cluster_loss}, 1 process {single_loss}")
    assert cluster_loss[-1] <= max(2 * single_loss[-1], 0.05) and single_loss[-1] <= max(2 * cluster_loss[-1], 0.05)
    # Only process 0 wrote: no second partial folder, no leftovers beside the two runs.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "cluster", "single"]
