"""Reading and writing a RUN_DIR: the folder `edgetl train` (or `export --pretrained`) makes.

A RUN_DIR holds `model.keras`, `labels.txt`, `preprocessing.json`, `metadata.json` and, for a
trained run, `splits.json` (the photos of each split). Every stage after training reads it
through this module.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path
from typing import Any

from edgetl._version import __version__
from edgetl.errors import EdgetlError
from edgetl.spec import ModelMetadata, PreprocessingSpec, labels_text, read_labels, write_text_atomic


def load_run(run_dir: Path) -> tuple[Any, ModelMetadata]:
    """Load a RUN_DIR's Keras model and metadata, checking them against each other.

    Raises:
        EdgetlError: if the model or its labels/preprocessing are missing, unreadable or disagree.
    """
    run_dir = Path(run_dir)
    model_path = check_run_dir(run_dir)
    meta = read_run_metadata(run_dir)
    from edgetl.hub_run import load_classifier

    try:
        model = load_classifier(model_path, meta)
    except EdgetlError:
        raise
    except Exception as e:  # keras raises ValueError, OSError, TypeError... for a bad file
        if "safe_mode" in str(e):  # a Lambda layer, or a hub backbone's external SavedModel (TFSMLayer)
            what = str(e).split(". ")[0]  # Keras names the layer: a `Lambda`, a `TFSMLayer`
            raise EdgetlError(
                f"Cannot load {model_path}: it holds code or an external SavedModel that Keras' safe_mode "
                f"refuses to load ({what}), and edgetl never turns safe mode off. A hub: run made before edgetl kept "
                "its SavedModel (hub.json) cannot be loaded: train it again."
            ) from e
        raise EdgetlError(f"Cannot load {model_path} ({type(e).__name__}: {e})") from e
    height, width = meta.preprocessing.image_size
    in_shape, out_shape = tuple(model.inputs[0].shape), tuple(model.outputs[0].shape)
    if in_shape[1:] != (height, width, 3):
        raise EdgetlError(
            f"model.keras takes {in_shape[1:]} but preprocessing.json says {(height, width, 3)}. Received: {run_dir}"
        )
    if out_shape[-1] != len(meta.labels):
        raise EdgetlError(
            f"model.keras has {out_shape[-1]} outputs but labels.txt has {len(meta.labels)} labels. Received: {run_dir}"
        )
    return model, meta


def check_run_dir(run_dir: Path) -> Path:
    """The run's `model.keras`.

    Raises:
        EdgetlError: if the folder or its model is missing, or the model is not a whole archive.
    """
    model_path = run_dir / "model.keras"
    if not run_dir.is_dir():
        raise EdgetlError(f"Run directory not found. Received: {run_dir}")
    if not model_path.is_file():
        raise EdgetlError(f"{run_dir} has no model.keras; train one with `edgetl train` first. Received: {run_dir}")
    if not zipfile.is_zipfile(model_path):  # Keras would say "File not found" for a truncated file
        raise EdgetlError(
            f"{model_path} is truncated or corrupt (not a whole .keras archive); train the run again. "
            f"Received: {run_dir}"
        )
    return model_path


def read_run_metadata(run_dir: Path) -> ModelMetadata:
    """The run's `metadata.json`, or one built from `labels.txt` + `preprocessing.json`."""
    run_dir = Path(run_dir)
    if (run_dir / "metadata.json").is_file():
        meta = ModelMetadata.from_json((run_dir / "metadata.json").read_text(encoding="utf-8"))
    else:
        if not (run_dir / "labels.txt").is_file() or not (run_dir / "preprocessing.json").is_file():
            raise EdgetlError(f"{run_dir} has neither metadata.json nor labels.txt + preprocessing.json.")
        spec = PreprocessingSpec.from_dict(json.loads((run_dir / "preprocessing.json").read_text(encoding="utf-8")))
        meta = ModelMetadata(labels=read_labels(run_dir / "labels.txt"), preprocessing=spec)
    return dataclasses.replace(meta, source_run=meta.source_run or run_dir.name, edgetl_version=__version__)


def read_split(run_dir: str | Path, split: str) -> list[tuple[Path, str]] | None:
    """The photos of one split of a RUN_DIR, as (absolute path, class name); None without splits.json.

    Raises:
        EdgetlError: if splits.json is malformed.
    """
    path = Path(run_dir) / "splits.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        root = Path(data["data_dir"])
        files, classes = data[split], data[f"{split}_classes"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise EdgetlError(f"splits.json is malformed ({e}). Received: {path}") from e
    if len(files) != len(classes):
        raise EdgetlError(f"splits.json lists {len(files)} {split} files but {len(classes)} classes. Received: {path}")
    return [(root / file, name) for file, name in zip(files, classes)]


def write_run(run_dir: Path, model: Any, meta: ModelMetadata) -> None:
    """Write the model and the contract every later stage reads: labels, preprocessing, metadata.

    An OSError from Keras' `model.save` propagates (the caller decides whether a partial run is
    kept for `--resume`); the text files raise `EdgetlError`.
    """
    model.save(run_dir / "model.keras")
    write_text_atomic(run_dir / "labels.txt", labels_text(meta.labels))
    write_text_atomic(run_dir / "preprocessing.json", json.dumps(meta.preprocessing.to_dict(), indent=2))
    write_text_atomic(run_dir / "metadata.json", meta.to_json())
