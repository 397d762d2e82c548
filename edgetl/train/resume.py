"""Resume and interrupt handling: a run continues after a crash, Ctrl-C stops it cleanly.

The RUN_DIR is built under a hidden `.NAME.partial` folder beside it, marked with the options
that define the run (`run_identity`); `--resume` continues that folder only when they agree. Each
stage keeps a Keras `BackupAndRestore` folder and the state of its monitoring callbacks, so a
resumed stage goes on exactly as an uninterrupted one would.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgetl.errors import EdgetlError
from edgetl.safety import check_replaceable, read_marker, write_marker
from edgetl.spec import atomic_path, hidden_sibling, make_folder, write_text_atomic
from edgetl.train import distributed

if TYPE_CHECKING:
    import keras

    from edgetl.backbones import BackboneOptions
    from edgetl.train.options import TrainOptions

logger = logging.getLogger("edgetl.train")


def run_identity(data_dir: str | Path, backbone: BackboneOptions, options: TrainOptions, size: int) -> dict[str, Any]:
    """The options that define a run: `--resume` continues a run only when all of them agree.

    Epoch counts, patience, the device and the cache may change between the kill and the resume.
    """
    weights = (
        backbone.weights
        if backbone.weights in ("imagenet", "none")
        else str(Path(backbone.weights).expanduser().resolve())
    )
    return {
        "data_dir": str(Path(data_dir).expanduser().resolve()),
        "strategy": options.strategy,
        "backbone": options.backbone_name(backbone),
        "alpha": backbone.alpha,
        "weights": weights,
        "image_size": size,
        "augment": options.uses_augmentation,
        "seed": options.seed,
        "val_split": options.val_split,
        "test_split": options.test_split,
        "subset": options.subset,
        "batch_size": options.batch_size,
        "learning_rate": options.learning_rate,
        "fine_tune_learning_rate": options.fine_tune_learning_rate,
        "fine_tune_layers": options.fine_tune_layers,
        "dropout": options.dropout,
        "precision": options.precision,
    }


def partial_path(out: Path) -> Path:
    """`.NAME.partial` beside the RUN_DIR `out` (a long NAME is shortened: `hidden_sibling`)."""
    return hidden_sibling(out, ".partial")


def check_resume(out: Path, identity: dict[str, Any]) -> None:
    """Refuse to resume a run other than the one asked for, naming every option that differs."""
    work = partial_path(out)
    if not work.exists():
        raise EdgetlError(f"Nothing to resume: no interrupted run for this RUN_DIR. Received: {out}")
    marker = read_marker(work)
    if marker is None or marker.get("kind") != "run" or not isinstance(marker.get("identity"), dict):
        raise EdgetlError(
            f"{work} was not started by this version of edgetl (no run marker), so it cannot be resumed. "
            f"Train again without --resume. Received: {work}"
        )
    recorded = marker["identity"]
    differ = [
        f"{key} (interrupted run: {recorded.get(key)!r}, now: {value!r})"
        for key, value in identity.items()
        if recorded.get(key) != value
    ]
    if differ:
        raise EdgetlError(
            f"--resume continues the same run only; these options differ from the interrupted run's: "
            f"{'; '.join(differ)}. Received: {work}"
        )


def partial_dir(out: Path, resume: bool, identity: dict[str, Any]) -> Path:
    work = partial_path(out)
    if resume:
        check_resume(out, identity)
        return work
    if work.exists():
        check_replaceable(work, "run", flag="a new run")
        shutil.rmtree(work)
    make_folder(work, "the RUN_DIR's parent folder", received=out)
    write_marker(work, "run", identity=identity)
    return work


@dataclass
class Stage:
    """One `fit` call: what it trains on and where it keeps its checkpoints."""

    name: str
    model: keras.Model
    x: np.ndarray
    y: np.ndarray
    val: tuple[np.ndarray, np.ndarray] | None
    epochs: int
    learning_rate: float


def run_stage(stage: Stage, options: TrainOptions, work: Path, verbose: int | str) -> None:
    """Compile and fit one stage with checkpoints, early stopping, LR schedule and logs.

    Each stage keeps a `BackupAndRestore` folder, so `--resume` continues after a crash from
    the last finished epoch; a stage that already finished is replayed from its saved weights.
    Callbacks that change what the backup holds (the learning rate) or log the epoch run before
    the backup, which commits the epoch; `_carry_over` runs after it.
    """
    import keras

    done_marker = work / "stages" / f"{stage.name}.weights.h5"
    if done_marker.exists():
        logger.info("%s: finished before the interruption, weights reloaded", stage.name)
        stage.model.load_weights(done_marker)
        return
    logger.info(
        "%s: up to %d epochs at learning rate %g on %d photos",
        stage.name,
        stage.epochs,
        stage.learning_rate,
        len(stage.y),
    )
    stage_dir = work / "stages" / stage.name
    restored = _backup_epoch(stage_dir / "backup")
    if distributed.is_writer():
        stage_dir.mkdir(parents=True, exist_ok=True)
        _trim_history(stage_dir / "history.csv", restored)
    monitor = "val_loss" if stage.val is not None else "loss"
    stage.model.compile(
        optimizer=keras.optimizers.Adam(stage.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    early = keras.callbacks.EarlyStopping(monitor=monitor, patience=options.patience, restore_best_weights=True)
    monitors = [
        keras.callbacks.ModelCheckpoint(
            str(work / "checkpoints" / f"{stage.name}-best.weights.h5"),
            monitor=monitor,
            save_best_only=True,
            save_weights_only=True,
        ),
        early,
        keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, factor=0.5, patience=max(1, options.patience // 2), min_lr=1e-6
        ),
    ]
    callbacks = [
        *monitors,
        keras.callbacks.CSVLogger(str(stage_dir / "history.csv"), append=True),
        keras.callbacks.BackupAndRestore(str(stage_dir / "backup"), double_checkpoint=True),
        _carry_over(stage_dir, restored, early, monitors),
        *_tensorboard(work / "logs" / stage.name),
    ]
    if distributed.is_writer():
        (work / "checkpoints").mkdir(exist_ok=True)
    from edgetl.train.inputs import fit_inputs  # imports keras

    data, feeder = fit_inputs(stage.x, stage.y, batch_size=options.batch_size, seed=options.seed)
    with _stop_on_sigint() as stop:
        stage.model.fit(
            **data,
            validation_data=stage.val,
            epochs=stage.epochs,
            callbacks=_async_safe([*distributed.for_this_process(callbacks), stop, *feeder]),
            verbose=verbose,
        )
    if not distributed.is_writer():
        return
    # A crash while saving must not leave a marker that cannot load; Keras wants the suffix.
    with distributed.locally(), atomic_path(done_marker, keep_suffix=True) as partial:
        stage.model.save_weights(partial)


def _async_safe(callbacks: list[keras.callbacks.Callback]) -> list[keras.callbacks.Callback]:
    """Tell Keras that no callback needs a step's results before the next step is dispatched.

    Keras waits for every step to finish (a host sync) when a callback overrides a batch-level
    hook, unless the callback says `async_safe`. Ours do nothing per batch (checkpoints and
    backups save per epoch) but check for Ctrl-C: that check then runs on Keras' callback thread
    and its KeyboardInterrupt reaches `fit` at the next batch.
    """
    import keras

    for callback in callbacks:
        if getattr(callback, "save_freq", "epoch") == "epoch" and not isinstance(callback, keras.callbacks.TensorBoard):
            callback.async_safe = True
    return callbacks


_SIGINTS: list[int] = []
"""Ctrl-C presses seen while the current stage trains."""


@contextmanager
def _stop_on_sigint() -> Iterator[keras.callbacks.Callback]:
    """A callback that ends `fit` with KeyboardInterrupt after the batch during which Ctrl-C came.

    Raised straight from the signal handler, a KeyboardInterrupt can land in JAX's or
    TensorFlow's garbage-collection callbacks, which print it as "Exception ignored" and train
    on. So during `fit` the first Ctrl-C is only recorded (a second one raises at once).
    """
    import signal
    import threading

    import keras

    def handler(signum: int, frame: Any) -> None:
        _SIGINTS.append(signum)
        if len(_SIGINTS) > 1:
            raise KeyboardInterrupt

    def check(*_: Any, **__: Any) -> None:
        if _SIGINTS:
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():  # only the main thread gets signals
        yield keras.callbacks.Callback()
        return
    _SIGINTS.clear()
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield keras.callbacks.LambdaCallback(on_train_batch_end=check, on_test_batch_end=check)
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


_MONITOR_FIELDS = {
    "ModelCheckpoint": ("best",),
    "EarlyStopping": ("wait", "best", "best_epoch"),
    "ReduceLROnPlateau": ("wait", "best", "cooldown_counter"),
}
"""What each monitoring callback learns epoch by epoch (and resets in `on_train_begin`)."""


def _backup_epoch(backup_dir: Path) -> int:
    """The number of epochs a `BackupAndRestore` folder holds (0 when there is none)."""
    path = backup_dir / "training_metadata.json"
    return int(json.loads(path.read_text())["epoch"]) if path.exists() else 0


def _trim_history(path: Path, epochs: int) -> None:
    """Drop logged rows of epochs the backup does not hold: they run again after a resume."""
    if not path.exists():
        return
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    kept = rows[:1] + [row for row in rows[1:] if row and row[0].isdigit() and int(row[0]) < epochs]
    if kept != rows:
        write_text_atomic(path, "".join(",".join(row) + "\n" for row in kept))


def _carry_over(
    stage_dir: Path, restored: int, early: keras.callbacks.EarlyStopping, monitors: list
) -> keras.callbacks.Callback:
    """Keep the monitors' state (best value, patience, plateau count, best weights) across a crash.

    `BackupAndRestore` brings back the weights, the optimizer and the epoch, but every other
    callback starts afresh: without this a resumed stage would restore the best weights of the
    epochs after the crash only, and stop and lower the rate unlike an uninterrupted run.
    """
    import keras

    state_file, weights_file = stage_dir / "monitors.json", stage_dir / "best_weights.npz"

    def restore(logs: dict | None = None) -> None:
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        if state.get("epoch") != restored:  # a fresh stage, or a crash between backup and record
            return
        for callback, fields in zip(monitors, state["monitors"]):
            vars(callback).update(fields)
        if weights_file.exists():
            with np.load(weights_file, allow_pickle=False) as saved:
                early.best_weights = [saved[f"arr_{i}"] for i in range(len(saved.files))]

    def record(epoch: int, logs: dict | None = None) -> None:
        if not distributed.is_writer():
            return
        if early.best_weights is not None and early.best_epoch == epoch:
            tmp = weights_file.with_name(f".{weights_file.name}.partial")
            with open(tmp, "wb") as handle:
                np.savez(handle, *early.best_weights)
            tmp.replace(weights_file)
        fields = [{name: _plain(getattr(cb, name)) for name in _MONITOR_FIELDS[type(cb).__name__]} for cb in monitors]
        write_text_atomic(state_file, json.dumps({"epoch": epoch + 1, "monitors": fields}))

    return keras.callbacks.LambdaCallback(on_train_begin=restore, on_epoch_end=record)


def _plain(value: Any) -> Any:
    """A numpy scalar as a JSON-ready Python number."""
    return value.item() if isinstance(value, np.generic) else value


def _tensorboard(log_dir: Path) -> list[keras.callbacks.Callback]:
    """TensorBoard logs on the TensorFlow backend (Keras writes them through TensorFlow).

    On JAX they are left out, so that training there never imports TensorFlow.
    """
    import importlib.util

    import keras

    if keras.backend.backend() != "tensorflow" or importlib.util.find_spec("tensorboard") is None:
        return []
    return [keras.callbacks.TensorBoard(str(log_dir), write_graph=False)]
