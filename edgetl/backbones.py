"""Pretrained backbones as a table, and the classifier built around them.

Every edgetl model takes float32 RGB pixels in [0, 255] and normalizes inside the network (a
`Rescaling`/`Normalization` layer in front of the backbone), so exported artefacts and devices
never re-implement a backbone's preprocessing. Only Keras 3 APIs are used here: training runs on
the TensorFlow and the JAX backends alike. (A TF-Hub backbone is the one exception: it needs
TensorFlow and is loaded only when asked for.)
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgetl.errors import EdgetlError
from edgetl.safety import check_number

if TYPE_CHECKING:
    import keras

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HUB_PREFIX = "hub:"
HUB_LAYER = "edgetl_hub"
"""The name of a hub backbone's `TFSMLayer` (`edgetl.hub_run` finds it by name)."""
HEAD_DROPOUT = "edgetl_head_dropout"


@dataclass(frozen=True, kw_only=True)
class BackboneSpec:
    """One backbone family.

    Attributes:
        builder: Name of the `keras.applications` function that builds it.
        preprocess_mode: "tf" scales pixels to [-1, 1]; "torch" to ImageNet mean/std of [0, 1]
            values; "none" means the Keras model normalizes by itself.
        default_size: Input size used when the user gives none.
        alphas: Width multipliers the family accepts (empty when it has none).
        extra_kwargs: Fixed builder arguments (e.g. MobileNetV3's own preprocessing turned off).
    """

    builder: str
    preprocess_mode: str
    default_size: int = 224
    alphas: tuple[float, ...] = ()
    extra_kwargs: tuple[tuple[str, Any], ...] = ()


BACKBONES: dict[str, BackboneSpec] = {
    "mobilenet_v2": BackboneSpec(
        builder="MobileNetV2",
        preprocess_mode="tf",
        alphas=(0.35, 0.5, 0.75, 1.0, 1.3, 1.4),
    ),
    "mobilenet_v3_small": BackboneSpec(
        builder="MobileNetV3Small",
        preprocess_mode="tf",
        alphas=(0.75, 1.0),
        extra_kwargs=(("include_preprocessing", False),),
    ),
    "mobilenet_v3_large": BackboneSpec(
        builder="MobileNetV3Large",
        preprocess_mode="tf",
        alphas=(0.75, 1.0),
        extra_kwargs=(("include_preprocessing", False),),
    ),
    "efficientnet_b0": BackboneSpec(builder="EfficientNetB0", preprocess_mode="none"),
    "resnet50_v2": BackboneSpec(builder="ResNet50V2", preprocess_mode="tf"),
    "densenet201": BackboneSpec(builder="DenseNet201", preprocess_mode="torch"),
}

PREPROCESS_NOTES = {
    "tf": "inside the model: x / 127.5 - 1",
    "torch": "inside the model: (x / 255 - ImageNet mean) / ImageNet std",
    "none": "inside the model: the backbone's own normalization",
    "unit": "inside the model: x / 255",
}


MAX_IMAGE_SIZE = 1024
"""Largest square input: beyond it a batch of photos alone outgrows a typical machine's memory."""


@dataclass(frozen=True, kw_only=True)
class BackboneOptions:
    """Which backbone to build and with which weights.

    Attributes:
        name: A key of `BACKBONES`, or "hub:HANDLE" for a TF-Hub handle or a local SavedModel
            directory (TensorFlow backend only). Defaults to `mobilenet_v2`.
        alpha: Width multiplier for the MobileNet families. Defaults to `1.0`.
        image_size: Square input size in pixels; `None` uses the family's default.
        weights: "imagenet" (Keras' normal download, cached under KERAS_HOME), "none" (random
            initialization) or the path of a local weights file for the headless backbone.
            Defaults to `imagenet`.
    """

    name: str = "mobilenet_v2"
    alpha: float = 1.0
    image_size: int | None = None
    weights: str = "imagenet"

    def __post_init__(self) -> None:
        check_number("alpha", self.alpha, 0.1, 4.0)
        check_number("image_size", self.image_size, 32, MAX_IMAGE_SIZE, integer=True, allow_none=True)
        if self.is_hub:
            if self.weights not in ("imagenet", "none"):
                raise EdgetlError(f"A hub backbone carries its own weights. Received: weights={self.weights!r}")
            return
        spec = backbone_spec(self.name)
        if spec.alphas and self.alpha not in spec.alphas:
            raise EdgetlError(f"alpha must be one of {spec.alphas} for {self.name}. Received: alpha={self.alpha}")
        if not spec.alphas and self.alpha != 1.0:
            raise EdgetlError(f"{self.name} has no width multiplier. Received: alpha={self.alpha}")
        if self.weights not in ("imagenet", "none") and not Path(self.weights).is_file():
            raise EdgetlError(
                f"weights must be 'imagenet', 'none' or an existing weights file. Received: weights={self.weights!r}"
            )

    @property
    def is_hub(self) -> bool:
        return self.name.startswith(HUB_PREFIX)

    @property
    def size(self) -> int:
        if self.image_size is not None:
            return self.image_size
        return 224 if self.is_hub else backbone_spec(self.name).default_size

    @property
    def preprocess_mode(self) -> str:
        return "unit" if self.is_hub else backbone_spec(self.name).preprocess_mode


def backbone_spec(name: str) -> BackboneSpec:
    """Look a backbone up in the table, suggesting the likely key for a typo."""
    if name in BACKBONES:
        return BACKBONES[name]
    close = difflib.get_close_matches(name, BACKBONES, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise EdgetlError(
        f"Unknown backbone {name!r}. Valid: {', '.join(BACKBONES)} or hub:HANDLE.{hint}"
    )


def build_backbone(options: BackboneOptions) -> keras.Model:
    """Build the headless backbone (global-average-pooled features), weights loaded.

    Raises:
        EdgetlError: if the weights cannot be loaded or do not fit the backbone.
    """
    if options.is_hub:
        return _build_hub_backbone(options)
    import keras

    spec = backbone_spec(options.name)
    kwargs: dict[str, Any] = dict(spec.extra_kwargs)
    if spec.alphas:
        kwargs["alpha"] = options.alpha
    builder: Callable[..., keras.Model] = getattr(keras.applications, spec.builder)
    shape = (options.size, options.size, 3)
    weights = "imagenet" if options.weights == "imagenet" else None
    try:
        model = builder(input_shape=shape, include_top=False, weights=weights, pooling="avg", **kwargs)
    except (ValueError, OSError) as e:  # an alpha/size without published weights
        raise EdgetlError(f"Cannot build {options.name} with weights={options.weights!r}: {e}") from e
    except Exception as e:
        if "URL fetch failure" not in str(e):  # Keras raises a bare Exception when offline
            raise
        raise EdgetlError(
            f"Cannot download the ImageNet weights of {options.name} (offline?). Received: weights='imagenet'. "
            "Pass --weights PATH to a local weights file, or put Keras' file in $KERAS_HOME/models/."
        ) from e
    if options.weights not in ("imagenet", "none"):
        _load_weights_file(model, Path(options.weights), options.name)
    return model


def _load_weights_file(model: keras.Model, path: Path, name: str) -> None:
    try:
        with warnings.catch_warnings():  # Keras warns per layer before it raises: one line is enough
            warnings.simplefilter("ignore")
            model.load_weights(path)
    except (ValueError, OSError, KeyError) as e:
        raise EdgetlError(
            f"The weights file does not fit backbone {name} (alpha and layers must match). "
            f"Received: weights={str(path)!r} ({str(e).splitlines()[0][:200]})"
        ) from e


def _build_hub_backbone(options: BackboneOptions) -> keras.Model:
    """A TF-Hub feature-vector model (a handle or a local SavedModel directory).

    `tensorflow_hub.resolve` downloads the handle (or finds it in its cache or on disk); the
    SavedModel folder it returns is wrapped by `hub_backbone_from_folder`.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        raise EdgetlError(
            f"A hub backbone needs the TensorFlow backend. Received: KERAS_BACKEND={keras.backend.backend()!r}"
        )
    try:
        import tensorflow_hub as hub
    except ImportError as e:
        raise EdgetlError(
            "A hub backbone needs tensorflow-hub: pip install --no-deps tensorflow-hub tf-keras"
        ) from e
    handle = options.name[len(HUB_PREFIX):]
    try:
        path = hub.resolve(handle)
    except Exception as e:  # hub raises assorted errors for bad handles, offline use, bad folders
        raise EdgetlError(f"Cannot load hub backbone. Received: {handle!r} ({str(e).splitlines()[0][:200]})") from e
    return hub_backbone_from_folder(Path(path), options.size, handle)


def hub_backbone_from_folder(folder: Path, size: int, handle: str) -> keras.Model:
    """A SavedModel folder as a headless backbone: `keras.layers.TFSMLayer` on its serving signature.

    `hub.KerasLayer` does not work inside Keras 3 models; `TFSMLayer` does, and converts to TFLite
    and ONNX. Hub image models take RGB values in [0, 1]. `handle` only names it in errors.
    """
    import keras

    try:
        layer = keras.layers.TFSMLayer(str(folder), call_endpoint="serving_default", trainable=False, name=HUB_LAYER)
    except Exception as e:  # TensorFlow raises assorted errors for a folder that is no SavedModel
        raise EdgetlError(f"Cannot load hub backbone. Received: {handle!r} ({str(e).splitlines()[0][:200]})") from e
    inputs = keras.Input((size, size, 3), name="hub_pixels")
    outputs = layer(inputs)
    if isinstance(outputs, dict):
        outputs = next(iter(outputs.values()))
    return keras.Model(inputs, outputs, name="hub_backbone")


def normalization_layers(mode: str) -> list[keras.Layer]:
    """The layers that take [0, 255] pixels to what the backbone expects."""
    import keras

    if mode == "tf":
        return [keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="edgetl_normalize")]
    if mode == "torch":
        return [
            keras.layers.Rescaling(1 / 255.0, name="edgetl_unit_range"),
            keras.layers.Normalization(
                mean=list(IMAGENET_MEAN), variance=[s * s for s in IMAGENET_STD], name="edgetl_normalize"
            ),
        ]
    if mode == "unit":
        return [keras.layers.Rescaling(1 / 255.0, name="edgetl_normalize")]
    return []


def build_classifier(
    backbone: keras.Model, preprocess_mode: str, head: keras.Model, *, frozen_batch_norm: bool = True
) -> keras.Model:
    """Pixels [0, 255] -> normalization -> backbone -> `head` (dropout, softmax `edgetl_probs`).

    The head is passed in, not built here, so that a head trained alone on cached features is
    the very layer object the classifier uses. Batch-norm statistics stay frozen (the backbone
    runs in inference mode) unless `frozen_batch_norm` is off, for training every layer.
    """
    import keras

    inputs, features = _normalized_features(
        backbone, preprocess_mode, training=None if not frozen_batch_norm else False
    )
    return keras.Model(inputs, head(features), name="edgetl_classifier")


def build_feature_extractor(backbone: keras.Model, preprocess_mode: str) -> keras.Model:
    """Pixels [0, 255] -> normalization -> pooled backbone features (what the head sees)."""
    import keras

    return keras.Model(*_normalized_features(backbone, preprocess_mode), name="edgetl_features")


def _normalized_features(
    backbone: keras.Model, preprocess_mode: str, training: bool | None = False
) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    import keras

    inputs = keras.Input((*backbone.input_shape[1:3], 3), name="pixels")
    x = inputs
    for layer in normalization_layers(preprocess_mode):
        x = layer(x)
    return inputs, backbone(x, training=training)


def build_head(num_classes: int, dropout: float) -> keras.Model:
    """The new head: dropout then a softmax layer. Trained alone on cached features."""
    import keras

    layers: list[keras.Layer] = []
    if dropout > 0:
        layers.append(keras.layers.Dropout(dropout, name=HEAD_DROPOUT))
    layers.append(keras.layers.Dense(num_classes, activation="softmax", name="edgetl_probs", dtype="float32"))
    return keras.Sequential(layers, name="edgetl_head")


def build_scratch_cnn(image_size: int, num_classes: int) -> keras.Model:
    """The from-scratch baseline: 4 conv blocks (32/64/128/256, each conv + batch-norm + ReLU), dropout, dense 256.

    Without batch-norm it stayed at chance on 350 cats/dogs photos at 128 px for its first
    epochs, so the transfer gain was measured against a baseline that never learned. Momentum
    0.9 keeps the moving statistics in step with a short run (see `train.FULL_BATCH_NORM_MOMENTUM`).
    """
    import keras

    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    x = normalization_layers("unit")[0](inputs)
    for filters in (32, 64, 128, 256):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.3)(x)
    x = keras.layers.Dense(256, activation="relu")(x)
    x = keras.layers.Dropout(0.3)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="edgetl_probs", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="edgetl_scratch_cnn")
