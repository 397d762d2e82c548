"""Transfer learning from a folder of photos to a RUN_DIR.

The strategies (`feature-extract`, `fine-tune`, `scratch`, `linear`, `full`) are a table in
`edgetl.train.strategies`; `TrainOptions` (`edgetl.train.options`) is checked in full when built;
`edgetl.train.resume` keeps a run going across crashes and Ctrl-C; `edgetl.train.metrics` writes
what `metrics.json` reports.

Only Keras 3 APIs are used (no `import tensorflow`, no tf.data), so this runs on the TensorFlow
and JAX backends alike. The RUN_DIR is built under a hidden `.NAME.partial` folder beside it and
renamed when whole; `resume=True` continues that folder after a crash. The RUN_DIR is locked
(`edgetl.runlock`) from the first look at it to the rename.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgetl._callable import make_callable
from edgetl._version import __version__
from edgetl.backbones import PREPROCESS_NOTES, BackboneOptions, build_backbone
from edgetl.choices import DEVICES, PRECISIONS, STRATEGIES
from edgetl.data import Splits, decode_images, default_cache_dir, load_splits
from edgetl.errors import EdgetlError
from edgetl.hub_run import keep_hub_backbone
from edgetl.rundir import write_run
from edgetl.runlock import folder_lock
from edgetl.safety import (
    WriteError,
    check_apart,
    check_no_dangling_link,
    check_replaceable,
    disk_errors,
    publish,
)
from edgetl.spec import ModelMetadata, PreprocessingSpec, write_text_atomic
from edgetl.train import distributed
from edgetl.train.metrics import evaluate
from edgetl.train.options import DEFAULT_EPOCHS, SCRATCH_EPOCHS, STRATEGY_TABLE, TrainOptions, TrainResult
from edgetl.train.resume import check_resume, partial_dir, partial_path, run_identity
from edgetl.train.strategies import FULL_BATCH_NORM_MOMENTUM, fit_strategy, with_augmentation

make_callable(__name__)  # `edgetl.train(...)` runs `train()` below

if TYPE_CHECKING:
    import keras

logger = logging.getLogger(__name__)
"""Stage names and what each stage did, at INFO (the CLI shows them as `==>` lines)."""

__all__ = [
    "DEFAULT_EPOCHS",
    "DEVICES",
    "FULL_BATCH_NORM_MOMENTUM",
    "PRECISIONS",
    "SCRATCH_EPOCHS",
    "STRATEGIES",
    "STRATEGY_TABLE",
    "TrainOptions",
    "TrainResult",
    "run_identity",
    "train",
    "with_augmentation",
]


def train(
    data_dir: str | Path,
    out: str | Path,
    *,
    backbone: BackboneOptions | None = None,
    options: TrainOptions | None = None,
    overwrite: bool = False,
    resume: bool = False,
    verbose: int | str = "auto",
    wait: bool = False,
) -> TrainResult:
    """Train a classifier on `data_dir/<class>/*.jpg` and write a RUN_DIR at `out`.

    Args:
        data_dir: Folder of class folders (or with `train/`, `val/`, `test/` split folders).
        out: The RUN_DIR to create.
        backbone: Which backbone and weights. Defaults to MobileNetV2 with ImageNet weights.
        options: How to train. Defaults to `TrainOptions()`.
        overwrite: Replace an existing RUN_DIR (only once the new one is whole).
        resume: Continue an interrupted run of the same RUN_DIR from its last epoch.
        verbose: Keras' verbosity: "auto", 0 (silent), 1 (progress bars) or 2 (a line per epoch).
        wait: When another process writes `out` (or exports it), wait for it instead of raising
            (`edgetl.runlock`).

    Returns:
        The RUN_DIR and its metrics.

    Raises:
        EdgetlError: for bad data, bad options, an existing RUN_DIR, or weights that do not fit;
            `edgetl.runlock.FolderBusy` while another process writes `out`.
    """
    backbone = backbone or BackboneOptions()
    distributed.initialize()
    options = options or TrainOptions()
    _validate(backbone, options)
    check_no_dangling_link(Path(out), "--out")
    out = Path(out).expanduser().resolve()
    check_apart(out, Path(data_dir), "data folder (DATA_DIR)")
    # Locked before Keras loads: a second process hears in a second that the run is taken.
    with folder_lock(out, "edgetl train", wait=wait) if distributed.is_writer() else nullcontext():
        _check_out(out, overwrite, resume)
        from edgetl.train.inputs import default_batch_size  # imports keras

        options = default_batch_size(options, on_gpu=bool(_visible_gpus()) and options.device != "cpu")
        size = backbone.size if options.strategy_spec.pretrained else (backbone.image_size or 128)
        identity = run_identity(data_dir, backbone, options, size)
        if resume:
            check_resume(out, identity)
        return _train_locked(data_dir, out, backbone, options, identity, size, resume, verbose)


def _train_locked(data_dir: str | Path, out: Path, backbone: BackboneOptions, options: TrainOptions,
                  identity: dict[str, Any], size: int, resume: bool, verbose: int | str) -> TrainResult:
    """`train` once its options are checked and `out` is locked: decode, fit, evaluate, publish."""
    strategy = options.strategy_spec
    splits = load_splits(
        data_dir, val_split=options.val_split, test_split=options.test_split, subset=options.subset, seed=options.seed
    )
    logger.info("splits: %s", splits.describe())
    if strategy.pretrained and backbone.weights == "none":
        warnings.warn(
            f"strategy {options.strategy!r} with weights='none' trains on a random backbone: expect poor accuracy.",
            stacklevel=3,
        )
    spec = PreprocessingSpec(
        image_size=(size, size), normalization=PREPROCESS_NOTES[_preprocess_mode(backbone, options)]
    )
    with _device_scope(options):
        _apply_precision(options)
        # Built before the photos are decoded: weights that do not fit fail in seconds.
        backbone_model = build_backbone(backbone) if strategy.pretrained else None
        arrays = _decode_splits(splits, spec, options, verbose)
        work = partial_dir(out, resume, identity) if distributed.is_writer() else partial_path(out)
        distributed.barrier("edgetl-partial-run-dir")  # the other processes read its backups
        started = time.monotonic()
        try:
            with disk_errors(
                f"the run {out}", " Free some space (or make the folder writable), then rerun with --resume."
            ):
                model, stage_report = fit_strategy(backbone_model, backbone, options, splits, arrays, work, verbose)
                metrics = evaluate(
                    model, splits, arrays, options, backbone, spec, stage_report, time.monotonic() - started
                )
                if distributed.is_writer():
                    with distributed.locally():
                        _write_run(work, out.name, model, splits, spec, metrics)
        except WriteError:
            raise  # like a crash or Ctrl-C, a full disk keeps the partial run for --resume
        except EdgetlError:
            if distributed.is_writer():
                shutil.rmtree(work, ignore_errors=True)
            raise
    if distributed.is_writer():
        _publish(work, out)
    distributed.barrier("edgetl-run-dir-published")
    return TrainResult(out, metrics)


def _check_out(out: Path, overwrite: bool, resume: bool) -> None:
    """What `out` may be: new, or (with --overwrite or --resume) a run edgetl made."""
    if out.exists() and not (overwrite or resume):
        raise EdgetlError(f"RUN_DIR already exists; pass --overwrite to replace it. Received: {out}")
    check_replaceable(out, "run")


def _validate(backbone: BackboneOptions, options: TrainOptions) -> None:
    if backbone.is_hub and (options.strategy_spec.fine_tunes or options.strategy == "full"):
        # Its layers are inside the SavedModel (a TFSMLayer), not Keras layers to unfreeze: training
        # would quietly keep them frozen and train the head alone.
        raise EdgetlError(
            "A hub backbone is a frozen SavedModel and cannot be fine-tuned: its layers are not Keras layers to "
            f"unfreeze. Use --strategy feature-extract or linear. Received: strategy={options.strategy!r}"
        )
    if not options.strategy_spec.pretrained and backbone.weights not in ("imagenet", "none"):
        raise EdgetlError(
            f"strategy {options.strategy!r} trains from random weights. Received: weights={backbone.weights!r}"
        )


def _preprocess_mode(backbone: BackboneOptions, options: TrainOptions) -> str:
    return backbone.preprocess_mode if options.strategy_spec.pretrained else "unit"


def _decode_splits(
    splits: Splits, spec: PreprocessingSpec, options: TrainOptions, verbose: int | str
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    import keras

    total = len(splits.train) + len(splits.val) + len(splits.test)
    logger.info("decoding: %d photos at %dx%d px", total, *spec.image_size)
    # verbose=2 (a log, not a terminal): the bar prints once, when decoding is done.
    bar = (
        keras.utils.Progbar(total, unit_name="photo", verbose=2 if verbose == 2 else 1)
        if verbose not in (0, "0")
        else None
    )
    decoded = 0

    def advance(count: int) -> None:
        nonlocal decoded
        decoded += count
        bar.update(decoded) if bar else None

    cache_dir = Path(options.cache_dir).expanduser() if options.cache_dir else default_cache_dir()
    files = {"train": distributed.shard(splits.train), "val": splits.val, "test": splits.test}  # a process's own share
    arrays = {
        name: decode_images(files[name], spec, strict=options.strict, cache_dir=cache_dir, progress=advance)
        for name in ("train", "val", "test")
    }
    if bar and decoded < total:  # photos read from the cache were not counted
        bar.update(total)
    for name, (_, labels) in arrays.items():
        missing = set(range(len(splits.class_names))) - set(labels.tolist())
        if name == "train" and missing:
            names = [splits.class_names[i] for i in sorted(missing)]
            raise EdgetlError(f"No readable training images left for class(es) {names}. Received: {splits.data_dir}")
    return arrays


@contextmanager
def _device_scope(options: TrainOptions) -> Iterator[None]:
    """Place training on the asked device, data-parallel over several when asked or useful.

    `auto` lets Keras pick (a GPU when it sees one). Data parallelism goes through Keras'
    own distribution API (JAX backend): each batch is split across the devices.
    """
    import keras

    gpus = _visible_gpus()
    if options.device == "gpu" and not gpus:
        raise EdgetlError(
            f"--device gpu, but the Keras backend {keras.backend.backend()!r} sees no GPU. Use --device auto or cpu."
        )
    devices = gpus if gpus and options.device != "cpu" else keras.distribution.list_devices("cpu")
    parallel = options.data_parallel if options.data_parallel is not None else len(gpus) > 1 and options.device != "cpu"
    parallel = parallel or distributed.process_count() > 1
    if parallel:
        _check_data_parallel(devices, options)
        # Each process feeds its own shard already (`edgetl.train.distributed`): Keras must not shard again.
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False))
    try:
        with keras.device(devices[0]) if options.device == "cpu" and not parallel else nullcontext():
            yield
    finally:
        if parallel:
            keras.distribution.set_distribution(None)


def _check_data_parallel(devices: list[str], options: TrainOptions) -> None:
    import keras

    if keras.backend.backend() != "jax":
        raise EdgetlError(
            f"Data-parallel training uses Keras' distribution API, which needs the JAX backend. "
            f"Received: KERAS_BACKEND={keras.backend.backend()!r}; set KERAS_BACKEND=jax."
        )
    if len(devices) < 2:
        raise EdgetlError(f"Data-parallel training needs at least 2 devices. Received: {devices}")
    if options.batch_size % len(devices):
        raise EdgetlError(
            f"batch_size must be a multiple of the {len(devices)} devices for data-parallel training. "
            f"Received: batch_size={options.batch_size}"
        )


def _visible_gpus() -> list[str]:
    import keras

    try:
        return keras.distribution.list_devices("gpu")
    except (NotImplementedError, ValueError, RuntimeError):  # a backend without device listing
        return []


def _apply_precision(options: TrainOptions) -> None:
    import keras

    if options.precision == "mixed":
        policy = "mixed_bfloat16" if keras.backend.backend() == "jax" else "mixed_float16"
        keras.mixed_precision.set_global_policy(policy)
    else:
        keras.mixed_precision.set_global_policy("float32")


def _write_run(
    work: Path, name: str, model: keras.Model, splits: Splits, spec: PreprocessingSpec, metrics: dict[str, Any]
) -> None:
    import keras

    from edgetl.plots import plot_confusion, plot_curves

    metadata = ModelMetadata(
        labels=splits.class_names,
        preprocessing=spec,
        format="keras",
        backbone=metrics["backbone"]["name"],
        source_run=name,
        edgetl_version=__version__,
    )
    write_run(work, _float32_copy(model), metadata)
    keep_hub_backbone(work, model)  # what export and verify rebuild a hub run from, safe mode on
    write_text_atomic(work / "splits.json", splits.to_json())
    history = _merge_histories(work / "stages")
    _write_history(work / "history.csv", history)
    write_text_atomic(work / "metrics.json", json.dumps(metrics, indent=2))
    plot_curves(history, work / "curves.png")
    if split := next((s for s in ("test", "val") if f"{s}_accuracy" in metrics), None):
        plot_confusion(metrics, split, work / "confusion.png")
    keras.mixed_precision.set_global_policy("float32")


def _float32_copy(model: keras.Model) -> keras.Model:
    """The model as saved: float32 throughout, whatever precision it trained in."""
    import keras

    if keras.mixed_precision.global_policy().name == "float32":
        return model
    keras.mixed_precision.set_global_policy("float32")
    config = json.loads(
        json.dumps(model.get_config()).replace('"mixed_bfloat16"', '"float32"').replace('"mixed_float16"', '"float32"')
    )
    clone = model.__class__.from_config(config)
    clone.set_weights(model.get_weights())
    return clone


def _merge_histories(stages_dir: Path) -> list[dict[str, str]]:
    """All stages' per-epoch logs in order, with a `stage` column and a running epoch count."""
    rows: list[dict[str, str]] = []
    for name in ("scratch", "full", "head", "fine-tune"):
        path = stages_dir / name / "history.csv"
        if path.exists():
            with open(path, newline="") as handle:
                for row in csv.DictReader(handle):
                    rows.append(
                        {"epoch": str(len(rows) + 1), "stage": name, **{k: v for k, v in row.items() if k != "epoch"}}
                    )
    return rows


def _write_history(path: Path, rows: list[dict[str, str]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = [",".join(columns)] + [",".join(row.get(c, "") for c in columns) for row in rows]
    write_text_atomic(path, "\n".join(lines) + "\n")


def _publish(work: Path, out: Path) -> None:
    """Swap the finished partial folder in under the final name (the old run goes last)."""
    shutil.rmtree(work / "stages", ignore_errors=True)
    publish(work, out)
