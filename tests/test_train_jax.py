"""Training on the JAX backend, as on the GPU machine (which has JAX but no TensorFlow).

Each test runs a subprocess with KERAS_BACKEND=jax, two virtual CPU devices, and TensorFlow
made unimportable, so it proves that the training path never needs TensorFlow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_solid_photos

pytest.importorskip("jax", reason="the JAX backend is tested where jax is installed (pip install 'jax[cpu]')")

BLOCK_TENSORFLOW = """
import sys
class _NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tf_keras", "tensorboard"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: the GPU machine has no TensorFlow)")
sys.meta_path.insert(0, _NoTensorFlow())
"""

RECORD_FITS = """
import keras
jitted = []  # one entry per `fit`: did Keras compile the step, or run it op by op?
_original_fit = keras.Model.fit
keras.Model.fit = lambda self, *a, **k: (jitted.append(self.jit_compile), _original_fit(self, *a, **k))[1]
"""


def _run_jax(script: str, tmp_path: Path) -> dict:
    env = os.environ | {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    code = BLOCK_TENSORFLOW + RECORD_FITS + script
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_full_training_data_parallel_on_two_virtual_devices_without_tensorflow(tmp_path: Path) -> None:
    data = write_solid_photos(tmp_path / "photos", {"red": (200, 30, 30), "blue": (30, 40, 200)}, per_class=8, size=40)
    result = _run_jax(
        f"""
import json, sys, warnings, keras
from edgetl.backbones import BackboneOptions
from edgetl.train import TrainOptions, train
seen = []
original = keras.distribution.set_distribution
keras.distribution.set_distribution = lambda d: (seen.append(type(d).__name__), original(d))[1]
warnings.simplefilter("ignore")
result = train({str(data)!r}, {str(tmp_path / 'run')!r},
               backbone=BackboneOptions(alpha=0.35, image_size=32, weights="none"),
               options=TrainOptions(strategy="full", epochs=2, batch_size=4,
                                    data_parallel=True, cache_dir={str(tmp_path / 'cache')!r}), verbose=0)
print(json.dumps({{"backend": keras.backend.backend(), "devices": keras.distribution.list_devices(),
                  "distributions": seen, "jitted": jitted, "tensorflow": "tensorflow" in sys.modules,
                  "accuracy": result.metrics["test_accuracy"]}}))
""",
        tmp_path,
    )
    assert result["backend"] == "jax" and len(result["devices"]) == 2
    assert result["distributions"] == ["DataParallel", "NoneType"]  # set for training, then reset
    # Augmentation is on for `full`; its rotation and zoom layers must not make Keras run the
    # steps op by op (slow, and it deadlocked jaxlib's CPU collectives in CI).
    assert result["jitted"] == [True]
    assert result["tensorflow"] is False
    assert (tmp_path / "run" / "model.keras").exists()


def test_two_stage_fine_tune_with_augmentation_compiles_both_stages_data_parallel(tmp_path: Path) -> None:
    """The default strategy, each batch split across two devices as on a machine of several GPUs."""
    data = write_solid_photos(tmp_path / "photos", {"red": (200, 30, 30), "blue": (30, 40, 200)}, per_class=8, size=40)
    result = _run_jax(
        f"""
import json, warnings
from edgetl.backbones import BackboneOptions
from edgetl.train import TrainOptions, train
warnings.simplefilter("ignore")
result = train({str(data)!r}, {str(tmp_path / 'run')!r},
               backbone=BackboneOptions(alpha=0.35, image_size=32, weights="none"),
               options=TrainOptions(strategy="fine-tune", epochs=2, fine_tune_epochs=2, batch_size=4, augment=True,
                                    data_parallel=True, cache_dir={str(tmp_path / 'cache')!r}), verbose=0)
print(json.dumps({{"jitted": jitted, "unfrozen": len(result.metrics["fine_tune"]["unfrozen_layers"]),
                  "accuracy": result.metrics["fine_tune"]["fine_tuned_val_accuracy"]}}))
""",
        tmp_path,
    )
    assert result["jitted"] == [True, True]  # the head stage, then the fine-tune stage
    assert result["unfrozen"] > 0
    assert 0.0 <= result["accuracy"] <= 1.0  # the second stage predicted with its new trainable set
    assert (tmp_path / "run" / "model.keras").exists()


def test_data_parallel_refuses_a_batch_that_does_not_split(tmp_path: Path) -> None:
    data = write_solid_photos(tmp_path / "photos", {"a": (200, 30, 30), "b": (30, 40, 200)}, per_class=3, size=32)
    result = _run_jax(
        f"""
import json
from edgetl.backbones import BackboneOptions
from edgetl.errors import EdgetlError
from edgetl.train import TrainOptions, train
try:
    train({str(data)!r}, {str(tmp_path / 'run')!r}, backbone=BackboneOptions(image_size=32, weights="none"),
          options=TrainOptions(strategy="scratch", batch_size=3, data_parallel=True, cache_dir={str(tmp_path / 'c')!r}), verbose=0)
    print(json.dumps({{"error": None}}))
except EdgetlError as e:
    print(json.dumps({{"error": str(e)}}))
""",
        tmp_path,
    )
    assert "batch_size must be a multiple of the 2 devices" in result["error"]


def test_training_steps_are_dispatched_without_a_host_sync(tmp_path: Path) -> None:
    """Our callbacks (checkpoints, backups, the Ctrl-C check) leave Keras' async dispatch on."""
    result = _run_jax(
        f"""
import json, keras
from edgetl.train.resume import _async_safe, _stop_on_sigint
made = lambda: [keras.callbacks.ModelCheckpoint({str(tmp_path / 'b.weights.h5')!r}, save_best_only=True, save_weights_only=True),
                keras.callbacks.BackupAndRestore({str(tmp_path / 'backup')!r}), keras.callbacks.CSVLogger({str(tmp_path / 'h.csv')!r})]
with _stop_on_sigint() as stop:
    plain = keras.callbacks.CallbackList([*made(), stop])._async_train
with _stop_on_sigint() as stop:
    ours = keras.callbacks.CallbackList(_async_safe([*made(), stop]))._async_train
per_batch = keras.callbacks.CallbackList(_async_safe([keras.callbacks.BackupAndRestore({str(tmp_path / 'o')!r}, save_freq=5)]))
print(json.dumps({{"plain": plain, "ours": ours, "per_batch": per_batch._async_train}}))
""",
        tmp_path,
    )
    assert result == {"plain": False, "ours": True, "per_batch": False}  # a per-batch save really needs the step
