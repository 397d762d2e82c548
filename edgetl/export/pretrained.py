"""Export a pretrained ImageNet classifier as it is, laid out like a RUN_DIR.

The table lists only what Keras' ImageNet weights fix (the input sizes); the builder, width
multipliers and normalization come from the backbone of the same name in
`edgetl.backbones.BACKBONES`, so a trained run and a pretrained export normalize alike.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgetl._version import __version__
from edgetl.backbones import BACKBONES, PREPROCESS_NOTES, BackboneSpec, normalization_layers
from edgetl.errors import EdgetlError
from edgetl.export import (
    ExportOptions,
    ExportReport,
    artefact_path,
    calibration,
    check_calibration_source,
    check_formats_options,
)
from edgetl.export.edgetpu import require_compiler
from edgetl.export.pipeline import GOLDEN_IMAGES, build_export
from edgetl.rundir import write_run
from edgetl.runlock import folder_locks
from edgetl.safety import check_no_dangling_link, check_replaceable, staged
from edgetl.spec import ModelMetadata, PreprocessingSpec, check_labels, read_labels


@dataclass(frozen=True, kw_only=True)
class PretrainedModel:
    """A Keras ImageNet classifier that `export_pretrained` can export as it is.

    Attributes:
        backbone: Key of `edgetl.backbones.BACKBONES` (builder, alphas, normalization).
        sizes: Input sizes with ImageNet weights.
    """

    backbone: str
    sizes: tuple[int, ...]

    @property
    def backbone_spec(self) -> BackboneSpec:
        return BACKBONES[self.backbone]

    @property
    def builder(self) -> str:
        """`keras.applications` constructor name."""
        return self.backbone_spec.builder

    @property
    def alphas(self) -> tuple[float, ...]:
        """Width multipliers with ImageNet weights."""
        return self.backbone_spec.alphas

    @property
    def normalization(self) -> str:
        """Note stored in the preprocessing spec."""
        return f"{PREPROCESS_NOTES[self.backbone_spec.preprocess_mode]} ({self.builder})"


PRETRAINED: dict[str, PretrainedModel] = {
    "mobilenet_v2": PretrainedModel(backbone="mobilenet_v2", sizes=(96, 128, 160, 192, 224)),
}


def export_pretrained(
    name: str,
    out_dir: Path,
    options: ExportOptions = ExportOptions(),
    *,
    weights: str = "imagenet",
    alpha: float = 1.0,
    image_size: int = 224,
    labels_file: Path | None = None,
    overwrite: bool = False,
    wait: bool = False,
) -> ExportReport:
    """Export an ImageNet classifier as it is, with its labels, through the same formats.

    `out_dir` is laid out like a RUN_DIR (model.keras, labels.txt, preprocessing.json,
    metadata.json, export/), so `edgetl verify OUT_DIR --data TEST_DIR` works on it.

    Args:
        name: Key of `PRETRAINED` (e.g. "mobilenet_v2").
        out_dir: Folder to create.
        options: Formats etc.; int8 formats need `options.calibration_dir`. Defaults to `ExportOptions()`.
        weights: "imagenet" (Keras' download) or the path of a full-model `.weights.h5` file
            (1000 or 1001 classes). Defaults to "imagenet".
        alpha: Width multiplier. Defaults to 1.0.
        image_size: Square input size. Defaults to 224.
        labels_file: One label per line; required unless `weights="imagenet"` (Keras' 1000 labels).
            Defaults to None.
        overwrite: Replace an existing `out_dir` that an earlier `export_pretrained` made (never a
            trained run, nor a folder edgetl did not make). Defaults to False.
        wait: Wait for another process writing `out_dir` instead of raising `FolderBusy`
            (`edgetl.runlock`). Defaults to False.

    Raises:
        EdgetlError: for an unknown model, bad weights/alpha/size/labels, missing calibration images,
            or an existing `out_dir` it may not replace.
    """
    entry = PRETRAINED.get(name)
    if entry is None:
        close = difflib.get_close_matches(name, PRETRAINED, n=1)
        raise EdgetlError(
            f"Unknown pretrained model {name!r}. Valid: {', '.join(PRETRAINED)}."
            + (f" Did you mean {close[0]!r}?" if close else "")
        )
    labels = read_labels(Path(labels_file)) if labels_file is not None else None
    check_labels(labels or (), str(labels_file))
    if weights == "imagenet" and (alpha not in entry.alphas or image_size not in entry.sizes):
        raise EdgetlError(
            f"With weights='imagenet', alpha must be one of {entry.alphas} and image_size one of "
            f"{entry.sizes}. Received: alpha={alpha}, image_size={image_size}"
        )
    if weights != "imagenet" and not Path(weights).is_file():
        raise EdgetlError(f"weights must be 'imagenet' or an existing .weights.h5 file. Received: weights={weights!r}")
    if not 32 <= image_size <= 1024:
        raise EdgetlError(f"image_size must be in [32, 1024]. Received: image_size={image_size}")
    check_formats_options(options)
    if options.target_agreement is not None:
        raise EdgetlError("--target-agreement is measured on a run's validation split, and --pretrained has none: "
                          f"export a trained run instead. Received: target_agreement={options.target_agreement}")
    check_calibration_source(options, has_train_split=False)
    check_no_dangling_link(Path(out_dir), "--out")
    out_dir = Path(out_dir)
    if "edgetpu" in options.resolved_formats:
        require_compiler(artefact_path(options.output_dir or out_dir / "export", "tflite-int8"))
    with folder_locks([out_dir, *([options.output_dir] if options.output_dir else [])], "edgetl export --pretrained",
                      wait=wait):
        if out_dir.exists() and not overwrite:
            raise EdgetlError(f"The output folder already exists; pass --overwrite to replace it. Received: {out_dir}")
        check_replaceable(out_dir, "pretrained")
        return _export_pretrained_locked(entry, out_dir, options, weights, alpha, image_size, labels, labels_file)


def _export_pretrained_locked(entry: PretrainedModel, out_dir: Path, options: ExportOptions, weights: str,
                              alpha: float, image_size: int, labels: tuple[str, ...] | None,
                              labels_file: Path | None) -> ExportReport:
    """`export_pretrained` once its options are checked and `out_dir` is locked."""
    name = entry.backbone
    model, num_classes = _build_pretrained(entry, weights, alpha, image_size)
    labels = labels or _imagenet_labels(num_classes)
    if len(labels) != num_classes:
        raise EdgetlError(
            f"The model has {num_classes} classes but the labels file has {len(labels)} lines. "
            f"Received: labels_file={labels_file}"
        )
    spec = PreprocessingSpec(image_size=(image_size, image_size), normalization=entry.normalization)
    meta = ModelMetadata(
        labels=tuple(labels),
        preprocessing=spec,
        backbone=name,
        source_run=f"pretrained:{Path(weights).name if weights != 'imagenet' else 'imagenet'}",
        edgetl_version=__version__,
    )

    def calib_fn() -> calibration.CalibrationSet:
        return calibration.from_dir(
            options.calibration_dir,
            spec,
            size=options.calibration_size,
            seed=options.seed,
            reference=calibration.IMAGENET_STATS,
        )

    golden = _first_images(Path(options.calibration_dir), GOLDEN_IMAGES) if options.calibration_dir else []
    with staged(out_dir, "pretrained", "the output folder") as stage:
        _write_pretrained_run(stage, model, meta)
        report = build_export(
            model,
            meta,
            options.output_dir or stage / "export",
            options,
            calib_fn,
            golden,
            source_model=stage / "model.keras",
            shown_as=options.output_dir or out_dir / "export",
        )
    return report


def _first_images(directory: Path, n: int) -> list[Path]:
    from edgetl.runtime.image import is_image_file

    return sorted(p for p in directory.rglob("*") if is_image_file(p))[:n] if directory.is_dir() else []


def _build_pretrained(entry: PretrainedModel, weights: str, alpha: float, size: int) -> tuple[Any, int]:
    """The Keras classifier behind a Rescaling layer, taking [0, 255] pixels; and its class count."""
    import keras

    builder = getattr(keras.applications, entry.builder)
    extra = dict(entry.backbone_spec.extra_kwargs)
    shape = (size, size, 3)
    base = None
    if weights == "imagenet":
        try:
            base = builder(input_shape=shape, alpha=alpha, include_top=True, weights="imagenet", **extra)
        except Exception as e:  # download failures surface as URLError, OSError, Exception
            raise EdgetlError(
                f"Cannot load Keras' ImageNet weights ({type(e).__name__}: {e}). Without network access, "
                "pass --weights PATH to a .weights.h5 file."
            ) from e
    else:
        for classes in (1000, 1001):  # Keras' own head, or TF-slim's with a "background" class 0
            candidate = builder(
                input_shape=shape, alpha=alpha, include_top=True, weights=None, classes=classes, **extra
            )
            try:
                candidate.load_weights(weights)
            except ValueError:
                continue
            base = candidate
            break
        if base is None:
            raise EdgetlError(f"{weights} does not fit {entry.builder}(alpha={alpha}) with a 1000- or 1001-class head.")
    inputs = keras.Input(shape, name="pixels")
    x = inputs
    for layer in normalization_layers(entry.backbone_spec.preprocess_mode):
        x = layer(x)
    outputs = keras.layers.Identity(name="edgetl_probs")(base(x))
    return keras.Model(inputs, outputs, name=f"pretrained_{entry.builder.lower()}"), int(base.outputs[0].shape[-1])


def _imagenet_labels(num_classes: int) -> tuple[str, ...]:
    if num_classes != 1000:
        raise EdgetlError(
            f"The model has {num_classes} classes; pass --labels FILE with one label per line "
            "(for 1001-class TF-slim heads, class 0 is 'background')."
        )
    try:
        from keras.src.applications import imagenet_utils

        path = imagenet_utils.file_utils.get_file(
            "imagenet_class_index.json", imagenet_utils.CLASS_INDEX_PATH, cache_subdir="models"
        )
        index = json.loads(Path(path).read_text(encoding="utf-8"))
    except Exception as e:  # offline: the download fails with URLError/OSError/Exception
        raise EdgetlError(f"Cannot get Keras' ImageNet labels ({type(e).__name__}); pass --labels FILE.") from e
    return tuple(index[str(i)][1] for i in range(1000))


def _write_pretrained_run(out_dir: Path, model: Any, meta: ModelMetadata) -> None:
    try:
        write_run(out_dir, model, meta)
    except OSError as e:  # from Keras' model.save (the text files raise EdgetlError themselves)
        raise EdgetlError(f"Cannot write {out_dir}: {e.strerror or e}") from e
