"""Transfer learning from a folder of photos to a RUN_DIR.

Strategies:
- `feature-extract`: frozen pretrained backbone + a new head. Without augmentation the backbone
  runs once over the photos and the head trains on the cached features (the same result, many
  times faster); the head is then put back on the backbone.
- `fine-tune`: the head first (as above), then the last N non-batch-norm layers of the backbone
  at a low learning rate; the better of the two stages by validation accuracy is kept.
- `scratch`: a small CNN trained from random weights, the baseline that shows the transfer gain.
- `linear`: logistic regression (one softmax layer) on the pooled backbone features.
- `full`: every layer trained, batch-norm included (pretraining a backbone, or a full
  fine-tune when there are many photos); batch-norm moving statistics use momentum 0.9 so that
  inference mode keeps up with the weights.

Only Keras 3 APIs are used (no `import tensorflow`, no tf.data), so this runs on the TensorFlow
and JAX backends alike. The RUN_DIR is built under a hidden `.NAME.partial` folder beside it and
renamed when whole; `resume=True` continues that folder after a crash.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgetl import distributed
from edgetl._callable import make_callable
from edgetl._version import __version__
from edgetl.backbones import (
    PREPROCESS_NOTES,
    BackboneOptions,
    build_backbone,
    build_classifier,
    build_feature_extractor,
    build_head,
    build_scratch_cnn,
)
from edgetl.data import Splits, decode_images, default_cache_dir, load_splits
from edgetl.errors import EdgetlError
from edgetl.rundir import write_run
from edgetl.safety import WriteError, check_apart, check_number, check_replaceable, disk_errors, publish, read_marker, write_marker
from edgetl.spec import ModelMetadata, PreprocessingSpec, make_folder, write_text_atomic

make_callable(__name__)  # `edgetl.train(...)` runs `train()` below

if TYPE_CHECKING:
    import keras

logger = logging.getLogger(__name__)
"""Stage names and what each stage did, at INFO (the CLI shows them as `==>` lines)."""

STRATEGIES = ("feature-extract", "fine-tune", "scratch", "linear", "full")
DEVICES = ("auto", "gpu", "cpu")
PRECISIONS = ("float32", "mixed")
DEFAULT_EPOCHS = 10
SCRATCH_EPOCHS = 40
"""A CNN from random weights needs many more epochs than a head on pretrained features (the
seeds' custom CNN reached 76% on cats/dogs after 50); 40 with early stopping is a fair budget."""
CHANCE_SIGMAS = 2.0
"""A model whose accuracy is within this many binomial standard deviations of chance (the
largest class's share) is reported as not having learned."""


@dataclass(frozen=True, kw_only=True)
class TrainOptions:
    """How to train.

    Attributes:
        strategy: One of `feature-extract`, `fine-tune`, `scratch`, `linear`, `full`. Defaults
            to `feature-extract`.
        epochs: Epochs for the head (or the whole network for `scratch` and `full`). `None`
            means 10, or `SCRATCH_EPOCHS` (40) for `scratch`, which starts from random weights.
        fine_tune_epochs: Epochs of the fine-tuning stage; `None` uses `epochs`.
        fine_tune_layers: How many of the backbone's last layers with weights (batch-norm layers
            excepted, they stay frozen) are trained in the fine-tuning stage. Defaults to `10`.
        batch_size: Images per step. `None` means 32 on a CPU, and 128 on a GPU with both
            learning rates scaled by sqrt(128/32) (see `edgetl.train_input.default_batch_size`).
        learning_rate: Learning rate of the head (and of `scratch`). Defaults to `1e-3`.
        fine_tune_learning_rate: The low learning rate of the fine-tuning stage. Defaults to `1e-4`.
        dropout: Dropout before the new softmax layer. Defaults to `0.2`.
        augment: Random flip, rotation, zoom and contrast on the training photos. `None` means on
            for `fine-tune`, `scratch` and `full`, off for `feature-extract` and `linear` (which then
            train on cached features).
        val_split: Share of each class held out for validation. Defaults to `0.15`.
        test_split: Share of each class held out for the final test. Defaults to `0.15`.
        subset: Share of the photos to use at all, for quick tries. Defaults to `1.0`.
        patience: Epochs without validation improvement before early stopping. Defaults to `5`.
        seed: Seed of the splits, the initialization and the augmentation. Defaults to `0`.
        strict: Make unreadable photos an error instead of a skipped-with-warning. Defaults to
            `False`.
        device: `auto` (a GPU when the Keras backend sees one), `gpu` or `cpu`. Defaults to `auto`.
        precision: `float32` or `mixed` (bfloat16 on JAX, float16 on TensorFlow; weights and
            the saved model stay float32). Defaults to `float32`.
        data_parallel: Split each batch across all devices of the chosen kind (Keras'
            distribution API, JAX backend). `None` means on when the JAX backend sees more
            than one GPU.
        cache_dir: Where decoded-and-resized photos are cached; `None` uses
            `$EDGETL_CACHE_DIR` or `~/.cache/edgetl`.
    """

    strategy: str = "feature-extract"
    epochs: int | None = None
    fine_tune_epochs: int | None = None
    fine_tune_layers: int = 10
    batch_size: int | None = None
    learning_rate: float = 1e-3
    fine_tune_learning_rate: float = 1e-4
    dropout: float = 0.2
    augment: bool | None = None
    val_split: float = 0.15
    test_split: float = 0.15
    subset: float = 1.0
    patience: int = 5
    seed: int = 0
    strict: bool = False
    device: str = "auto"
    precision: str = "float32"
    data_parallel: bool | None = None
    cache_dir: str | Path | None = None

    def __post_init__(self) -> None:
        _check_choice("strategy", self.strategy, STRATEGIES)
        _check_choice("device", self.device, DEVICES)
        _check_choice("precision", self.precision, PRECISIONS)
        for name in ("epochs", "fine_tune_epochs", "patience"):
            check_number(name, getattr(self, name), 1, 100_000, integer=True, allow_none=name != "patience")
        check_number("fine_tune_layers", self.fine_tune_layers, 1, 100_000, integer=True)
        check_number("batch_size", self.batch_size, 1, 65_536, integer=True, allow_none=True)
        check_number("seed", self.seed, 0, 2**32 - 1, integer=True)
        for name in ("learning_rate", "fine_tune_learning_rate"):
            check_number(name, getattr(self, name), 1e-12, 10.0)
        check_number("dropout", self.dropout, 0.0, 0.99)
        check_number("val_split", self.val_split, 0.0, 0.9)
        check_number("test_split", self.test_split, 0.0, 0.9)
        check_number("subset", self.subset, 1e-6, 1.0)

    @property
    def resolved_epochs(self) -> int:
        """`epochs`, or the strategy's default when it is None."""
        if self.epochs is not None:
            return self.epochs
        return SCRATCH_EPOCHS if self.strategy == "scratch" else DEFAULT_EPOCHS

    @property
    def uses_augmentation(self) -> bool:
        if self.augment is None:
            return self.strategy in ("fine-tune", "scratch", "full")
        return self.augment


@dataclass(frozen=True)
class TrainResult:
    """What `train` produced.

    Attributes:
        run_dir: The finished RUN_DIR.
        metrics: The content of `metrics.json`.
    """

    run_dir: Path
    metrics: dict[str, Any] = field(repr=False)

    @property
    def model_path(self) -> Path:
        return self.run_dir / "model.keras"


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise EdgetlError(f"{name} must be one of {', '.join(choices)}. Received: {name}={value!r}")


def train(
    data_dir: str | Path,
    out: str | Path,
    *,
    backbone: BackboneOptions | None = None,
    options: TrainOptions | None = None,
    overwrite: bool = False,
    resume: bool = False,
    verbose: int | str = "auto",
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

    Returns:
        The RUN_DIR and its metrics.

    Raises:
        EdgetlError: for bad data, bad options, an existing RUN_DIR, or weights that do not fit.
    """
    backbone = backbone or BackboneOptions()
    from edgetl.train_input import default_batch_size  # imports keras

    distributed.initialize()
    options = options or TrainOptions()
    options = default_batch_size(options, on_gpu=bool(_visible_gpus()) and options.device != "cpu")
    out = Path(out).expanduser().resolve()
    size = backbone.size if options.strategy != "scratch" else (backbone.image_size or 128)
    identity = run_identity(data_dir, backbone, options, size)
    _validate(backbone, options, out, overwrite, resume)
    check_apart(out, Path(data_dir), "data folder (DATA_DIR)")
    if resume:
        _check_resume(_partial_path(out), identity)
    splits = load_splits(
        data_dir, val_split=options.val_split, test_split=options.test_split, subset=options.subset, seed=options.seed
    )
    logger.info("splits: %s", splits.describe())
    if options.strategy != "scratch" and backbone.weights == "none":
        warnings.warn(
            f"strategy {options.strategy!r} with weights='none' trains on a random backbone: expect poor accuracy.",
            stacklevel=2,
        )
    spec = PreprocessingSpec(image_size=(size, size), normalization=PREPROCESS_NOTES[_preprocess_mode(backbone, options)])
    with _device_scope(options):
        _apply_precision(options)
        # Built before the photos are decoded: weights that do not fit fail in seconds.
        backbone_model = None if options.strategy == "scratch" else build_backbone(backbone)
        arrays = _decode_splits(splits, spec, options, verbose)
        work = _partial_dir(out, resume, identity) if distributed.is_writer() else out.with_name(f".{out.name}.partial")
        distributed.barrier("edgetl-partial-run-dir")  # the other processes read its backups
        started = time.monotonic()
        try:
            with disk_errors(f"the run {out}", " Free some space (or make the folder writable), then rerun with --resume."):
                model, stage_report = _fit_strategy(backbone_model, backbone, options, splits, arrays, work, verbose)
                metrics = _evaluate(model, splits, arrays, options, backbone, spec, stage_report, time.monotonic() - started)
                if distributed.is_writer():
                    _write_run(work, model, splits, spec, metrics)
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


def _validate(backbone: BackboneOptions, options: TrainOptions, out: Path, overwrite: bool, resume: bool) -> None:
    if out.exists() and not (overwrite or resume):
        raise EdgetlError(f"RUN_DIR already exists; pass --overwrite to replace it. Received: {out}")
    check_replaceable(out, "run")
    if backbone.is_hub and options.strategy == "fine-tune":
        raise EdgetlError("A hub backbone is a frozen SavedModel and cannot be fine-tuned. Received: strategy='fine-tune'")
    if options.strategy == "scratch" and backbone.weights not in ("imagenet", "none"):
        raise EdgetlError(f"strategy 'scratch' trains from random weights. Received: weights={backbone.weights!r}")


def _preprocess_mode(backbone: BackboneOptions, options: TrainOptions) -> str:
    return "unit" if options.strategy == "scratch" else backbone.preprocess_mode


def _decode_splits(
    splits: Splits, spec: PreprocessingSpec, options: TrainOptions, verbose: int | str
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    import keras

    total = len(splits.train) + len(splits.val) + len(splits.test)
    logger.info("decoding: %d photos at %dx%d px", total, *spec.image_size)
    # verbose=2 (a log, not a terminal): the bar prints once, when decoding is done.
    bar = keras.utils.Progbar(total, unit_name="photo", verbose=2 if verbose == 2 else 1) if verbose not in (0, "0") else None
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


def run_identity(data_dir: str | Path, backbone: BackboneOptions, options: TrainOptions, size: int) -> dict[str, Any]:
    """The options that define a run: `--resume` continues a run only when all of them agree.

    Epoch counts, patience, the device and the cache may change between the kill and the resume.
    """
    weights = backbone.weights if backbone.weights in ("imagenet", "none") else str(Path(backbone.weights).expanduser().resolve())
    return {
        "data_dir": str(Path(data_dir).expanduser().resolve()), "strategy": options.strategy,
        "backbone": backbone.name if options.strategy != "scratch" else "scratch_cnn", "alpha": backbone.alpha,
        "weights": weights, "image_size": size, "augment": options.uses_augmentation, "seed": options.seed,
        "val_split": options.val_split, "test_split": options.test_split, "subset": options.subset,
        "batch_size": options.batch_size, "learning_rate": options.learning_rate,
        "fine_tune_learning_rate": options.fine_tune_learning_rate, "fine_tune_layers": options.fine_tune_layers,
        "dropout": options.dropout, "precision": options.precision,
    }


def _partial_path(out: Path) -> Path:
    return out.with_name(f".{out.name}.partial")


def _check_resume(work: Path, identity: dict[str, Any]) -> None:
    """Refuse to resume a run other than the one asked for, naming every option that differs."""
    if not work.exists():
        raise EdgetlError(f"Nothing to resume: no interrupted run for this RUN_DIR. Received: {work.with_name(work.name[1:].removesuffix('.partial'))}")
    marker = read_marker(work)
    if marker is None or marker.get("kind") != "run" or not isinstance(marker.get("identity"), dict):
        raise EdgetlError(f"{work} was not started by this version of edgetl (no run marker), so it cannot be resumed. "
                          f"Train again without --resume. Received: {work}")
    recorded = marker["identity"]
    differ = [f"{key} (interrupted run: {recorded.get(key)!r}, now: {value!r})" for key, value in identity.items()
              if recorded.get(key) != value]
    if differ:
        raise EdgetlError(f"--resume continues the same run only; these options differ from the interrupted run's: "
                          f"{'; '.join(differ)}. Received: {work}")


def _partial_dir(out: Path, resume: bool, identity: dict[str, Any]) -> Path:
    work = _partial_path(out)
    if resume:
        _check_resume(work, identity)
        return work
    if work.exists():
        check_replaceable(work, "run", flag="a new run")
        shutil.rmtree(work)
    make_folder(work, "the RUN_DIR's parent folder", received=out)
    write_marker(work, "run", identity=identity)
    return work


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
        # Each process feeds its own shard already (`edgetl.distributed`): Keras must not shard again.
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


# --- strategies -------------------------------------------------------------------------------


@dataclass
class _Stage:
    """One `fit` call: what it trains on and where it keeps its checkpoints."""

    name: str
    model: "keras.Model"
    x: np.ndarray
    y: np.ndarray
    val: tuple[np.ndarray, np.ndarray] | None
    epochs: int
    learning_rate: float


def _fit_strategy(
    backbone: "keras.Model | None",
    backbone_opts: BackboneOptions,
    options: TrainOptions,
    splits: Splits,
    arrays: dict[str, tuple[np.ndarray, np.ndarray]],
    work: Path,
    verbose: int | str,
) -> tuple["keras.Model", dict[str, Any]]:
    import keras

    keras.utils.set_random_seed(options.seed)
    num_classes = len(splits.class_names)
    (x_train, y_train), (x_val, y_val) = arrays["train"], arrays["val"]
    val = (x_val, y_val) if len(y_val) else None
    if options.strategy == "scratch":
        model = build_scratch_cnn(x_train.shape[1], num_classes)
        _run_stage(_Stage("scratch", with_augmentation(model, options), x_train, y_train, val, options.resolved_epochs, options.learning_rate), options, work, verbose)
        return model, {}
    dropout = 0.0 if options.strategy == "linear" else options.dropout
    head = build_head(num_classes, dropout)
    if options.strategy == "full":
        _track_batch_statistics(backbone)
        model = build_classifier(backbone, backbone_opts.preprocess_mode, head, frozen_batch_norm=False)
        _run_stage(_Stage("full", with_augmentation(model, options), x_train, y_train, val, options.resolved_epochs, options.learning_rate), options, work, verbose)
        return model, {}
    backbone.trainable = False
    model = build_classifier(backbone, backbone_opts.preprocess_mode, head)
    if options.uses_augmentation:
        _run_stage(_Stage("head", with_augmentation(model, options), x_train, y_train, val, options.resolved_epochs, options.learning_rate), options, work, verbose)
    else:
        extractor = build_feature_extractor(backbone, backbone_opts.preprocess_mode)
        _train_head_on_features(extractor, head, options, arrays, work, verbose)
    if options.strategy != "fine-tune":
        return model, {}
    return model, _fine_tune(model, backbone, options, arrays, val, work, verbose)


FULL_BATCH_NORM_MOMENTUM = 0.9
"""Batch-norm momentum while `full` trains every layer (PyTorch's default, 0.1 in its terms)."""


def _track_batch_statistics(backbone: "keras.Model") -> None:
    """Make the backbone's batch-norm moving statistics follow the weights as they train.

    Keras' MobileNets and EfficientNets use momentum 0.99 to 0.999, made for ImageNet runs of
    hundreds of thousands of steps: a run of a few thousand leaves the moving mean and variance
    near their initial 0 and 1 (or stale), while many layers of a trained network see variances
    far below 1. Inference mode then feeds wrongly scaled activations forward and a network
    trained from random weights predicts a single class, though training-mode accuracy is high.
    At 0.9 the statistics average the last few dozen batches.
    """
    import keras

    for layer in backbone.layers:
        if isinstance(layer, keras.Model):
            _track_batch_statistics(layer)
        elif isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = FULL_BATCH_NORM_MOMENTUM


def with_augmentation(model: "keras.Model", options: TrainOptions) -> "keras.Model":
    """`model` behind the random flip, rotation, zoom and contrast that `train` uses.

    The layers act in training only. Returns `model` itself when `options` turn augmentation off.
    """
    import keras

    if not options.uses_augmentation:
        return model
    seed = options.seed
    augment = keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(0.08, seed=seed + 1),
            keras.layers.RandomZoom(0.15, seed=seed + 2),
            keras.layers.RandomContrast(0.15, seed=seed + 3),
        ],
        name="edgetl_augment",
    )
    if keras.backend.backend() == "jax":
        # Keras flags its rotation and zoom layers as not jit-compilable because TensorFlow's XLA
        # lacks their image-transform op; their JAX code compiles. Left flagged, Keras runs every
        # JAX training step op by op: many times slower on a GPU, and on several CPU devices
        # (data parallel) jaxlib 0.10 can lose one device's collective and abort.
        for layer in augment.layers:
            layer.supports_jit = True
    inputs = keras.Input(model.input_shape[1:], name="pixels")
    return keras.Model(inputs, model(augment(inputs)), name="edgetl_training")


def _train_head_on_features(
    extractor: "keras.Model",
    head: "keras.Model",
    options: TrainOptions,
    arrays: dict[str, tuple[np.ndarray, np.ndarray]],
    work: Path,
    verbose: int | str,
) -> None:
    """Run the frozen backbone once per photo, then fit only the head on those features."""
    import keras

    logger.info("features: the frozen backbone runs once over %d photos", sum(len(y) for name, (_, y) in arrays.items() if name != "test"))
    features = {
        name: (distributed.predict(extractor, x, options.batch_size, verbose), y) if len(y) else (x, y)
        for name, (x, y) in arrays.items()
        if name != "test"
    }
    val = features["val"] if len(features["val"][1]) else None
    inputs = keras.Input(features["train"][0].shape[1:], name="features")
    head_model = keras.Model(inputs, head(inputs), name="edgetl_head_on_features")
    _run_stage(_Stage("head", head_model, *features["train"], val, options.resolved_epochs, options.learning_rate), options, work, verbose)


def _fine_tune(
    model: "keras.Model",
    backbone: "keras.Model",
    options: TrainOptions,
    arrays: dict[str, tuple[np.ndarray, np.ndarray]],
    val: tuple[np.ndarray, np.ndarray] | None,
    work: Path,
    verbose: int | str,
) -> dict[str, Any]:
    """Unfreeze the last N layers and train at the low rate; keep the better stage."""
    before = _val_score(model, val, options)
    head_weights = model.get_weights()
    unfrozen = _unfreeze_last_layers(backbone, options.fine_tune_layers)
    # Keras keeps the compiled predict step, which on JAX with a distribution lists each
    # non-trainable variable's sharding: the unfrozen layers would no longer match it.
    model.predict_function = None
    epochs = options.fine_tune_epochs or options.resolved_epochs
    x_train, y_train = arrays["train"]
    _run_stage(
        _Stage("fine-tune", with_augmentation(model, options), x_train, y_train, val, epochs, options.fine_tune_learning_rate),
        options,
        work,
        verbose,
    )
    after = _val_score(model, val, options)
    kept = "fine-tuned"
    if val is not None and after < before:
        model.set_weights(head_weights)
        kept = "head-only (fine-tuning made validation worse)"
    logger.info("kept: %s (val accuracy: head %.3f, fine-tuned %.3f)", kept, before[0], after[0])
    return {
        "unfrozen_layers": unfrozen,
        "head_val_accuracy": before[0],
        "fine_tuned_val_accuracy": after[0],
        "kept": kept,
    }


def _val_score(model: "keras.Model", val: tuple[np.ndarray, np.ndarray] | None, options: TrainOptions) -> tuple[float, float]:
    """(accuracy, -loss) on the validation photos: higher is better, ties broken by loss."""
    if val is None:
        return (0.0, 0.0)
    probs = distributed.predict(model, val[0], options.batch_size)
    picked = np.clip(probs[np.arange(len(val[1])), val[1]], 1e-7, 1.0)
    return float(np.mean(probs.argmax(axis=1) == val[1])), float(np.mean(np.log(picked)))


def _unfreeze_last_layers(backbone: "keras.Model", count: int) -> list[str]:
    import keras

    backbone.trainable = True
    candidates = [
        layer for layer in backbone.layers if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)
    ]
    chosen = {id(layer) for layer in candidates[-count:]}
    for layer in backbone.layers:
        layer.trainable = id(layer) in chosen
    return [layer.name for layer in candidates[-count:]]


def _run_stage(stage: _Stage, options: TrainOptions, work: Path, verbose: int | str) -> None:
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
    logger.info("%s: up to %d epochs at learning rate %g on %d photos", stage.name, stage.epochs, stage.learning_rate, len(stage.y))
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
        keras.callbacks.ModelCheckpoint(str(work / "checkpoints" / f"{stage.name}-best.weights.h5"), monitor=monitor, save_best_only=True, save_weights_only=True),
        early,
        keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5, patience=max(1, options.patience // 2), min_lr=1e-6),
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
    from edgetl.train_input import fit_inputs  # imports keras

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
    partial = done_marker.with_name(f".{stage.name}.partial.weights.h5")  # Keras wants the suffix
    stage.model.save_weights(partial)
    partial.replace(done_marker)  # a crash while saving must not leave a marker that cannot load


def _async_safe(callbacks: list["keras.callbacks.Callback"]) -> list["keras.callbacks.Callback"]:
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
def _stop_on_sigint() -> Iterator["keras.callbacks.Callback"]:
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


def _carry_over(stage_dir: Path, restored: int, early: "keras.callbacks.EarlyStopping", monitors: list) -> "keras.callbacks.Callback":
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


def _tensorboard(log_dir: Path) -> list["keras.callbacks.Callback"]:
    """TensorBoard logs on the TensorFlow backend (Keras writes them through TensorFlow).

    On JAX they are left out, so that training there never imports TensorFlow.
    """
    import importlib.util

    import keras

    if keras.backend.backend() != "tensorflow" or importlib.util.find_spec("tensorboard") is None:
        return []
    return [keras.callbacks.TensorBoard(str(log_dir), write_graph=False)]


# --- evaluation and the RUN_DIR ---------------------------------------------------------------


def _evaluate(
    model: "keras.Model",
    splits: Splits,
    arrays: dict[str, tuple[np.ndarray, np.ndarray]],
    options: TrainOptions,
    backbone: BackboneOptions,
    spec: PreprocessingSpec,
    stage_report: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    names = splits.class_names
    report: dict[str, Any] = {
        "strategy": options.strategy,
        "backbone": {"name": backbone.name if options.strategy != "scratch" else "scratch_cnn", "alpha": backbone.alpha, "weights": backbone.weights},
        "image_size": list(spec.image_size),
        "augment": options.uses_augmentation,
        "class_names": list(names),
        "class_counts": {
            split: {names[i]: int(np.sum(labels == i)) for i in range(len(names))} for split, (_, labels) in arrays.items()
        },
        "train_seconds": round(seconds, 1),
        "edgetl_version": __version__,
    }
    for split in ("val", "test"):
        x, y = arrays[split]
        if len(y):
            predicted = distributed.predict(model, x, options.batch_size).argmax(axis=1)
            report |= _classification_report(split, y, predicted, names)
    report |= _learning_check(report, arrays)
    if stage_report:
        report["fine_tune"] = stage_report
    return report


def _learning_check(report: dict[str, Any], arrays: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """`learned`: whether held-out accuracy beats chance (the largest class's share) beyond noise.

    A warning says so when it does not: a baseline at chance makes any transfer gain meaningless.
    """
    split = next((s for s in ("test", "val") if f"{s}_accuracy" in report), None)
    if split is None:
        return {}
    labels = arrays[split][1]
    chance = float(np.bincount(labels).max() / len(labels))
    margin = CHANCE_SIGMAS * float(np.sqrt(chance * (1 - chance) / len(labels)))
    accuracy = report[f"{split}_accuracy"]
    learned = accuracy > chance + margin
    if not learned:
        warnings.warn(
            f"The {report['strategy']} model did not learn: {split} accuracy {accuracy:.1%} is within noise of chance "
            f"({chance:.1%}, the largest class's share, +{margin:.1%} on {len(labels)} photos). Train longer (--epochs), "
            "or check the photos and labels.",
            stacklevel=4,
        )
    return {"learned": bool(learned), "chance_accuracy": round(chance, 4), "learned_judged_on": split}


def _classification_report(split: str, truth: np.ndarray, predicted: np.ndarray, names: tuple[str, ...]) -> dict[str, Any]:
    confusion = np.zeros((len(names), len(names)), dtype=int)
    np.add.at(confusion, (truth, predicted), 1)
    per_class = {}
    for i, name in enumerate(names):
        tp = confusion[i, i]
        per_class[name] = {
            "precision": round(float(tp / confusion[:, i].sum()), 4) if confusion[:, i].sum() else 0.0,
            "recall": round(float(tp / confusion[i].sum()), 4) if confusion[i].sum() else 0.0,
            "support": int(confusion[i].sum()),
        }
    return {
        f"{split}_accuracy": round(float(np.mean(truth == predicted)), 4),
        f"{split}_per_class": per_class,
        f"{split}_confusion_matrix": confusion.tolist(),
    }


def _write_run(work: Path, model: "keras.Model", splits: Splits, spec: PreprocessingSpec, metrics: dict[str, Any]) -> None:
    import keras

    from edgetl.plots import plot_confusion, plot_curves

    metadata = ModelMetadata(
        labels=splits.class_names,
        preprocessing=spec,
        format="keras",
        backbone=metrics["backbone"]["name"],
        source_run=work.name.removeprefix(".").removesuffix(".partial"),
        edgetl_version=__version__,
    )
    write_run(work, _float32_copy(model), metadata)
    write_text_atomic(work / "splits.json", splits.to_json())
    history = _merge_histories(work / "stages")
    _write_history(work / "history.csv", history)
    write_text_atomic(work / "metrics.json", json.dumps(metrics, indent=2))
    plot_curves(history, work / "curves.png")
    if "test_confusion_matrix" in metrics or "val_confusion_matrix" in metrics:
        split = "test" if "test_confusion_matrix" in metrics else "val"
        plot_confusion(np.array(metrics[f"{split}_confusion_matrix"]), splits.class_names, work / "confusion.png", title=f"{split} split")
    keras.mixed_precision.set_global_policy("float32")


def _float32_copy(model: "keras.Model") -> "keras.Model":
    """The model as saved: float32 throughout, whatever precision it trained in."""
    import keras

    if keras.mixed_precision.global_policy().name == "float32":
        return model
    keras.mixed_precision.set_global_policy("float32")
    config = json.loads(json.dumps(model.get_config()).replace('"mixed_bfloat16"', '"float32"').replace('"mixed_float16"', '"float32"'))
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
                    rows.append({"epoch": str(len(rows) + 1), "stage": name, **{k: v for k, v in row.items() if k != "epoch"}})
    return rows


def _write_history(path: Path, rows: list[dict[str, str]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = [",".join(columns)] + [",".join(row.get(c, "") for c in columns) for row in rows]
    write_text_atomic(path, "\n".join(lines) + "\n")


def _publish(work: Path, out: Path) -> None:
    """Swap the finished partial folder in under the final name (the old run goes last)."""
    shutil.rmtree(work / "stages", ignore_errors=True)
    publish(work, out)

