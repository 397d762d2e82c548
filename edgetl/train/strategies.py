"""The training strategies as a table: what each one trains, and its defaults.

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
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgetl.backbones import (
    BackboneOptions,
    build_classifier,
    build_feature_extractor,
    build_head,
    build_scratch_cnn,
)
from edgetl.data import Splits
from edgetl.train import distributed
from edgetl.train.resume import Stage, run_stage

if TYPE_CHECKING:
    import keras

    from edgetl.train.options import TrainOptions

logger = logging.getLogger("edgetl.train")

Arrays = dict[str, tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Fit:
    """What every strategy trains from: the backbone (None for `scratch`), the photos, the options."""

    backbone: keras.Model | None
    preprocess_mode: str
    options: TrainOptions
    num_classes: int
    arrays: Arrays
    work: Path
    verbose: int | str

    @property
    def val(self) -> tuple[np.ndarray, np.ndarray] | None:
        x_val, y_val = self.arrays["val"]
        return (x_val, y_val) if len(y_val) else None

    def train_whole(self, name: str, model: keras.Model) -> None:
        """One stage that fits `model` (behind augmentation) on the training photos."""
        x_train, y_train = self.arrays["train"]
        stage = Stage(
            name,
            with_augmentation(model, self.options),
            x_train,
            y_train,
            self.val,
            self.options.resolved_epochs,
            self.options.learning_rate,
        )
        run_stage(stage, self.options, self.work, self.verbose)


def _fit_scratch(fit: Fit) -> tuple[keras.Model, dict[str, Any]]:
    model = build_scratch_cnn(fit.arrays["train"][0].shape[1], fit.num_classes)
    fit.train_whole("scratch", model)
    return model, {}


def _fit_full(fit: Fit) -> tuple[keras.Model, dict[str, Any]]:
    head = build_head(fit.num_classes, fit.options.dropout)
    _track_batch_statistics(fit.backbone)
    model = build_classifier(fit.backbone, fit.preprocess_mode, head, frozen_batch_norm=False)
    fit.train_whole("full", model)
    return model, {}


def _fit_head(fit: Fit, dropout: float) -> keras.Model:
    """A new head on the frozen backbone: on cached features, or end to end with augmentation."""
    head = build_head(fit.num_classes, dropout)
    fit.backbone.trainable = False
    model = build_classifier(fit.backbone, fit.preprocess_mode, head)
    if fit.options.uses_augmentation:
        fit.train_whole("head", model)
    else:
        extractor = build_feature_extractor(fit.backbone, fit.preprocess_mode)
        _train_head_on_features(extractor, head, fit.options, fit.arrays, fit.work, fit.verbose)
    return model


def _fit_feature_extract(fit: Fit) -> tuple[keras.Model, dict[str, Any]]:
    return _fit_head(fit, fit.options.dropout), {}


def _fit_linear(fit: Fit) -> tuple[keras.Model, dict[str, Any]]:
    return _fit_head(fit, 0.0), {}


def _fit_fine_tune(fit: Fit) -> tuple[keras.Model, dict[str, Any]]:
    model = _fit_head(fit, fit.options.dropout)
    return model, _fine_tune(model, fit.backbone, fit.options, fit.arrays, fit.val, fit.work, fit.verbose)


FITS: dict[str, Callable[[Fit], tuple[keras.Model, dict[str, Any]]]] = {  # one per row of STRATEGY_TABLE
    "feature-extract": _fit_feature_extract,
    "fine-tune": _fit_fine_tune,
    "scratch": _fit_scratch,
    "linear": _fit_linear,
    "full": _fit_full,
}
"""Each strategy's training code; its facts (pretrained, default epochs, ...) are `options.STRATEGY_TABLE`'s row."""


def fit_strategy(
    backbone: keras.Model | None,
    backbone_opts: BackboneOptions,
    options: TrainOptions,
    splits: Splits,
    arrays: Arrays,
    work: Path,
    verbose: int | str,
) -> tuple[keras.Model, dict[str, Any]]:
    """Train with `options.strategy`; the model and the fine-tuning report."""
    import keras

    keras.utils.set_random_seed(options.seed)
    fit = Fit(backbone, backbone_opts.preprocess_mode, options, len(splits.class_names), arrays, work, verbose)
    return FITS[options.strategy](fit)


FULL_BATCH_NORM_MOMENTUM = 0.9
"""Batch-norm momentum while `full` trains every layer (PyTorch's default, 0.1 in its terms)."""


def _track_batch_statistics(backbone: keras.Model) -> None:
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


def with_augmentation(model: keras.Model, options: TrainOptions) -> keras.Model:
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
    extractor: keras.Model,
    head: keras.Model,
    options: TrainOptions,
    arrays: dict[str, tuple[np.ndarray, np.ndarray]],
    work: Path,
    verbose: int | str,
) -> None:
    """Run the frozen backbone once per photo, then fit only the head on those features."""
    import keras

    logger.info(
        "features: the frozen backbone runs once over %d photos",
        sum(len(y) for name, (_, y) in arrays.items() if name != "test"),
    )
    features = {
        name: (distributed.predict(extractor, x, options.batch_size, verbose), y) if len(y) else (x, y)
        for name, (x, y) in arrays.items()
        if name != "test"
    }
    val = features["val"] if len(features["val"][1]) else None
    inputs = keras.Input(features["train"][0].shape[1:], name="features")
    head_model = keras.Model(inputs, head(inputs), name="edgetl_head_on_features")
    run_stage(
        Stage("head", head_model, *features["train"], val, options.resolved_epochs, options.learning_rate),
        options,
        work,
        verbose,
    )


def _fine_tune(
    model: keras.Model,
    backbone: keras.Model,
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
    run_stage(
        Stage(
            "fine-tune",
            with_augmentation(model, options),
            x_train,
            y_train,
            val,
            epochs,
            options.fine_tune_learning_rate,
        ),
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


def _val_score(
    model: keras.Model, val: tuple[np.ndarray, np.ndarray] | None, options: TrainOptions
) -> tuple[float, float]:
    """(accuracy, -loss) on the validation photos: higher is better, ties broken by loss."""
    if val is None:
        return (0.0, 0.0)
    probs = distributed.predict(model, val[0], options.batch_size)
    picked = np.clip(probs[np.arange(len(val[1])), val[1]], 1e-7, 1.0)
    return float(np.mean(probs.argmax(axis=1) == val[1])), float(np.mean(np.log(picked)))


def _unfreeze_last_layers(backbone: keras.Model, count: int) -> list[str]:
    import keras

    backbone.trainable = True
    candidates = [
        layer for layer in backbone.layers if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)
    ]
    chosen = {id(layer) for layer in candidates[-count:]}
    for layer in backbone.layers:
        layer.trainable = id(layer) in chosen
    return [layer.name for layer in candidates[-count:]]
