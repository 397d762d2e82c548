"""Training across several processes (hosts) on JAX's distributed runtime.

A cluster is described by Keras' own environment variables, read by
`keras.distribution.initialize()` in every process:

- `KERAS_DISTRIBUTION_JOB_ADDRESSES`: `HOST:PORT` of process 0 (the coordinator);
- `KERAS_DISTRIBUTION_NUM_PROCESSES`: how many processes;
- `KERAS_DISTRIBUTION_PROCESS_ID`: this process's number, 0 to N-1.

Every process then trains data-parallel over all the cluster's devices: it decodes and feeds
only its own shard of the training photos, and each step's gradients are averaged across the
cluster. Only process 0 writes the RUN_DIR, its checkpoints and its logs; the others read the
stage backups from it on `--resume`, so the RUN_DIR's parent must be a shared folder. Every
process evaluates a local copy of the model on the whole validation and test photos.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

    from edgetl.data import LabelledFiles

NUM_PROCESSES_VARIABLE = "KERAS_DISTRIBUTION_NUM_PROCESSES"


def requested_processes() -> int:
    """How many processes the environment asks for (1 when it asks for none)."""
    return int(os.environ.get(NUM_PROCESSES_VARIABLE, "1") or 1)


def initialize() -> None:
    """Join the cluster the environment describes, once per process, before JAX computes anything."""
    if requested_processes() < 2:
        return
    import jax
    import keras

    if keras.backend.backend() != "jax":
        from edgetl.errors import EdgetlError

        raise EdgetlError(
            f"Multi-process training needs the JAX backend. Received: KERAS_BACKEND={keras.backend.backend()!r}"
        )
    if jax.distributed.is_initialized():
        return
    # CPU devices of several processes exchange gradients through gloo (JAX's default is none).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    keras.distribution.initialize()


def process_count() -> int:
    if requested_processes() < 2:
        return 1
    import jax

    return jax.process_count()


def process_index() -> int:
    if requested_processes() < 2:
        return 0
    import jax

    return jax.process_index()


def is_writer() -> bool:
    """Whether this process writes the RUN_DIR (process 0; the only one when not distributed)."""
    return process_index() == 0


def shard(files: LabelledFiles) -> LabelledFiles:
    """This process's share of `files`: every Nth photo, the same count in every process.

    The last `len(files) % N` photos are dropped (not padded), so that no photo counts twice.
    """
    count = process_count()
    if count == 1:
        return files
    usable = len(files) // count * count
    return files.select(np.arange(process_index(), usable, count))


def barrier(name: str) -> None:
    """Wait until every process gets here (after process 0 prepared what the others read)."""
    if process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def for_this_process(callbacks: list[keras.callbacks.Callback]) -> list[keras.callbacks.Callback]:
    """The callbacks as this process runs them, all processes running the same collectives.

    Process 0 saves its checkpoints and stage backups `locally`. The other processes leave out
    checkpoints and logs; their stage backup still restores (on `--resume`) but neither saves nor
    deletes.
    """
    import keras

    if process_count() == 1:
        return callbacks
    kept = []
    for callback in callbacks:
        saves = isinstance(callback, (keras.callbacks.ModelCheckpoint, keras.callbacks.BackupAndRestore))
        if is_writer():
            if saves:
                callback.on_epoch_end = _run_locally(callback.on_epoch_end)
        elif isinstance(
            callback, (keras.callbacks.ModelCheckpoint, keras.callbacks.CSVLogger, keras.callbacks.TensorBoard)
        ):
            continue
        elif saves:
            callback._save_model = lambda: None
            callback.on_train_end = lambda logs=None: None
        kept.append(callback)
    return kept


@contextmanager
def locally() -> Iterator[None]:
    """Keras without its distribution in this block: what it creates lives on this process only.

    Across processes every variable Keras creates or assigns is checked to be equal in all of
    them, which is a collective (`multihost_utils.assert_equal`). Work that process 0 alone does
    (saving: Keras' `save_weights` builds a throwaway optimizer) must not run one, or it pairs with
    the next collective of the other processes and all of them fall out of step. In one process
    (data-parallel over its own devices) nothing pairs up, and the distribution stays on.
    """
    import keras

    if process_count() == 1:
        yield
        return
    distribution = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(distribution)


def _run_locally(hook: Callable[..., None]) -> Callable[..., None]:
    def run(*args: Any, **kwargs: Any) -> None:
        with locally():
            hook(*args, **kwargs)

    return run


def predict(model: keras.Model, x: np.ndarray, batch_size: int, verbose: Any = 0) -> np.ndarray:
    """`model.predict` on all of `x` in this process, also while the model spans several processes.

    Across processes Keras would treat each process's `x` as its part of one global batch and
    return an array no single process can read; a copy of the model with its (replicated) weights
    predicts `locally` instead.
    """
    if process_count() == 1:
        return model.predict(x, batch_size=batch_size, verbose=verbose)
    with locally():
        copy = model.__class__.from_config(model.get_config())
        copy.set_weights(model.get_weights())
        return copy.predict(x, batch_size=batch_size, verbose=verbose)
