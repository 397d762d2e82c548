"""How training batches reach the accelerator on the JAX backend.

`fit` on host numpy copies every batch from the host and, with Keras' default shuffle, gathers
it on the host first. Here the decoded uint8 training set is instead:

- kept on the device when it fits (at most `DEVICE_SHARE` of the device's memory): one copy at
  the start, then each epoch's shuffle is one index array sent to the device, and every step
  gathers its batch there (augmentation and the cast to float already run inside the compiled
  step, see `edgetl.train.with_augmentation`);
- otherwise gathered on the host by background threads, which also start the copy to the
  device (`jax.device_put`), so the copy of the next batches overlaps the current step.

The order of the photos depends only on the seed and the epoch number, so a resumed stage sees
the same shuffles as an uninterrupted one, and both placements train on the same batches.
Other backends keep Keras' own numpy path.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import keras
import numpy as np

DEVICE_SHARE = 0.25
"""Largest share of the device's memory the uint8 training set may take to be kept there."""

PREFETCH_THREADS = 2
PREFETCH_BATCHES = 4


def fit_inputs(x: np.ndarray, y: np.ndarray, *, batch_size: int, seed: int) -> tuple[dict[str, Any], list[Any]]:
    """The training-data arguments of `fit` and the callbacks they need.

    On JAX: a `ShuffledBatches` of this process's photos (its share of the global batch; with
    several processes a last short batch is left out, so that all run the same steps) and the
    callback that tells it the epoch. Elsewhere: Keras' own numpy path.
    """
    from edgetl.train import distributed

    if keras.backend.backend() != "jax":
        return {"x": x, "y": y, "batch_size": batch_size, "shuffle": True}, []
    processes = distributed.process_count()
    dataset = ShuffledBatches(x, y, batch_size=batch_size // processes, seed=seed,
                              on_device=fits_on_device(x.nbytes + y.nbytes), drop_remainder=processes > 1)
    return {"x": dataset}, [
        keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs=None: dataset.start_epoch(epoch))
    ]


def device_memory_bytes() -> int:
    """Memory of the first local JAX device: the GPU's limit, or the host's RAM for the CPU."""
    import jax

    stats = jax.local_devices()[0].memory_stats() or {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def fits_on_device(nbytes: int) -> bool:
    return nbytes <= DEVICE_SHARE * device_memory_bytes()


def epoch_order(count: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled order of `count` photos in `epoch`: a function of the seed and epoch only."""
    return np.random.default_rng([seed, epoch]).permutation(count).astype(np.int32)


class ShuffledBatches(keras.utils.PyDataset):
    """Batches of a uint8 training set in a per-epoch shuffled order, as device arrays.

    Attributes:
        on_device: Whether the whole set lives on the device (else host threads prefetch).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, *, batch_size: int, seed: int, on_device: bool,
                 drop_remainder: bool = False) -> None:
        import jax

        # One worker thread gathers on the device (the gather is an asynchronous dispatch);
        # several gather on the host and start the copies while the current step runs.
        super().__init__(workers=1 if on_device else PREFETCH_THREADS, max_queue_size=PREFETCH_BATCHES)
        self.on_device = on_device
        self._count, self._batch_size, self._seed = len(y), batch_size, seed
        self._steps = len(y) // batch_size if drop_remainder else -(-len(y) // batch_size)
        if self._steps < 1:
            raise ValueError(f"{len(y)} photos make no whole batch of {batch_size}")
        self._x, self._y = (jax.device_put(x), jax.device_put(y)) if on_device else (x, y)
        self.start_epoch(0)

    def start_epoch(self, epoch: int) -> None:
        """Take the order of `epoch` (one host-to-device copy of the indices per epoch)."""
        import jax

        order = epoch_order(self._count, self._seed, epoch)
        self._order = jax.device_put(order) if self.on_device else order

    @property
    def num_batches(self) -> int:
        return self._steps

    def __len__(self) -> int:
        return self._steps

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        import jax

        start = index * self._batch_size
        size = min(self._batch_size, self._count - start)
        if self.on_device:
            return _compiled_gather()(self._x, self._y, self._order, start, size)
        picked = self._order[start : start + size]
        return jax.device_put(self._x[picked]), jax.device_put(self._y[picked])


@functools.cache
def _compiled_gather() -> Any:
    """One XLA program per batch size: slice the epoch's order, take those photos and labels."""
    import jax

    def gather(x: Any, y: Any, order: Any, start: Any, size: int) -> tuple[Any, Any]:
        picked = jax.lax.dynamic_slice_in_dim(order, start, size)
        return x[picked], y[picked]

    return jax.jit(gather, static_argnums=4)


REFERENCE_BATCH = 32
"""The batch size the default learning rates are tuned for (and the default on a CPU)."""

GPU_DEFAULT_BATCH = 128


def default_batch_size(options: Any, *, on_gpu: bool) -> Any:
    """`options` with `batch_size` filled in when it was left to the default (None).

    On a GPU the default batch is `GPU_DEFAULT_BATCH` (small batches leave it idle), and both
    learning rates, set for `REFERENCE_BATCH`, grow by the square root of the batch ratio: the
    scaling rule for Adam (Malladi et al., 2022; the linear rule is SGD's). A batch the user gave
    keeps the rates as given.
    """
    import dataclasses
    import math

    if options.batch_size is not None:
        return options
    if not on_gpu:
        return dataclasses.replace(options, batch_size=REFERENCE_BATCH)
    scale = math.sqrt(GPU_DEFAULT_BATCH / REFERENCE_BATCH)
    return dataclasses.replace(
        options,
        batch_size=GPU_DEFAULT_BATCH,
        learning_rate=options.learning_rate * scale,
        fine_tune_learning_rate=options.fine_tune_learning_rate * scale,
    )
