"""The input path of JAX training: device-resident batches, shuffles that replay, async steps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgetl.train import TrainOptions
from edgetl.train.inputs import ShuffledBatches, default_batch_size, epoch_order

jax = pytest.importorskip("jax", reason="the device input path runs on JAX (pip install 'jax[cpu]')")


def _photos(count: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(count * 4 * 4 * 3, dtype=np.uint32).reshape(count, 4, 4, 3).astype(np.uint8)
    return x, np.arange(count, dtype=np.int32)


def _epoch(batches: ShuffledBatches, epoch: int) -> list[tuple[np.ndarray, np.ndarray]]:
    batches.start_epoch(epoch)
    return [tuple(np.asarray(part) for part in batches[i]) for i in range(len(batches))]


def test_device_and_host_batches_are_the_same_photos_in_the_same_order() -> None:
    x, y = _photos(10)
    on_device = ShuffledBatches(x, y, batch_size=4, seed=7, on_device=True)
    on_host = ShuffledBatches(x, y, batch_size=4, seed=7, on_device=False)
    assert isinstance(on_device[0][0], jax.Array) and isinstance(on_host[0][0], jax.Array)
    device_epoch, host_epoch = _epoch(on_device, 3), _epoch(on_host, 3)
    assert [len(labels) for _, labels in device_epoch] == [4, 4, 2]  # the short batch is kept
    for (dx, dy), (hx, hy) in zip(device_epoch, host_epoch):
        np.testing.assert_array_equal(dx, hx)
        np.testing.assert_array_equal(dy, hy)
        np.testing.assert_array_equal(dx, x[dy])  # each photo keeps its label
    assert sorted(np.concatenate([labels for _, labels in device_epoch]).tolist()) == list(range(10))


def test_the_shuffle_depends_on_seed_and_epoch_only() -> None:
    assert np.array_equal(epoch_order(50, 0, 4), epoch_order(50, 0, 4))  # a resumed epoch replays
    assert not np.array_equal(epoch_order(50, 0, 4), epoch_order(50, 0, 5))
    assert not np.array_equal(epoch_order(50, 0, 4), epoch_order(50, 1, 4))


def test_drop_remainder_leaves_the_short_batch_out() -> None:
    x, y = _photos(10)
    assert len(ShuffledBatches(x, y, batch_size=4, seed=0, on_device=True, drop_remainder=True)) == 2
    with pytest.raises(ValueError, match="no whole batch"):
        ShuffledBatches(x, y, batch_size=16, seed=0, on_device=True, drop_remainder=True)


def test_default_batch_is_larger_on_a_gpu_with_square_root_scaled_rates() -> None:
    cpu = default_batch_size(TrainOptions(), on_gpu=False)
    gpu = default_batch_size(TrainOptions(), on_gpu=True)
    assert (cpu.batch_size, cpu.learning_rate) == (32, 1e-3)
    assert gpu.batch_size == 128
    assert gpu.learning_rate == pytest.approx(1e-3 * math.sqrt(4))
    assert gpu.fine_tune_learning_rate == pytest.approx(1e-4 * math.sqrt(4))
    given = default_batch_size(TrainOptions(batch_size=64, learning_rate=5e-4), on_gpu=True)
    assert (given.batch_size, given.learning_rate) == (64, 5e-4)

