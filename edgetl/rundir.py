"""Reading and writing a RUN_DIR: the folder `edgetl train` (or `export --pretrained`) makes.

A RUN_DIR holds `model.keras`, `labels.txt`, `preprocessing.json`, `metadata.json` and, for a
trained run, `splits.json` (the photos of each split). Every stage after training reads it
through this module.

`metadata.json` is the single source: it holds the labels, the preprocessing and the SHA-256
of `model.keras`. `labels.txt` and `preprocessing.json` are copies for people and other tools;
an edit to them that disagrees with metadata.json is refused by name (it was silently ignored),
and so is a `model.keras` whose hash differs (one copied in from another run was exported with
this run's labels and called an ant "cat").
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path
from typing import Any

from edgetl._version import __version__
from edgetl.errors import EdgetlError
from edgetl.safety import file_sha256
from edgetl.spec import ModelMetadata, PreprocessingSpec, labels_text, read_labels, write_text_atomic

MODEL_HASH_KEY = "model_keras_sha256"
"""The key of metadata.json holding the SHA-256 of the run's model.keras."""


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
    _check_model_hash(run_dir, model_path)
    return model_path


def _check_model_hash(run_dir: Path, model_path: Path) -> None:
    """Refuse a model.keras that is not the one metadata.json records (older runs record none)."""
    recorded = _metadata_document(run_dir).get(MODEL_HASH_KEY)
    if recorded is None:
        return
    actual = file_sha256(model_path)
    if actual != recorded:
        raise EdgetlError(
            f"{model_path} is not the model this run saved: its SHA-256 {actual[:12]}... differs from "
            f"{recorded[:12]}... in {run_dir / 'metadata.json'} (a model.keras copied in from another run would be "
            f"exported with this run's labels). Put the run's own model.keras back, or train again. Received: {run_dir}"
        )


def _json_object(path: Path, run_dir: Path) -> dict[str, Any]:
    """A run file holding one JSON object.

    Raises:
        EdgetlError: naming the file, if it cannot be read or is not a JSON object.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise EdgetlError(f"{path} cannot be read ({e}). Received: {run_dir}") from e
    if not isinstance(data, dict):
        raise EdgetlError(f"{path} is malformed: not a JSON object. Received: {run_dir}")
    return data


def _metadata_document(run_dir: Path) -> dict[str, Any]:
    """metadata.json as a dict ({} without one)."""
    path = Path(run_dir) / "metadata.json"
    return _json_object(path, run_dir) if path.is_file() else {}


def read_run_metadata(run_dir: Path) -> ModelMetadata:
    """The run's `metadata.json` (checked against labels.txt and preprocessing.json), or one built
    from `labels.txt` + `preprocessing.json` for a run made without it.

    Raises:
        EdgetlError: if the files are missing or malformed, or disagree with metadata.json.
    """
    run_dir = Path(run_dir)
    path = run_dir / "metadata.json"
    if path.is_file():
        meta = ModelMetadata.from_json(json.dumps(_metadata_document(run_dir)), source=str(path))
        _check_copies(run_dir, meta)
    else:
        if not (run_dir / "labels.txt").is_file() or not (run_dir / "preprocessing.json").is_file():
            raise EdgetlError(f"{run_dir} has neither metadata.json nor labels.txt + preprocessing.json.")
        meta = ModelMetadata(labels=read_labels(run_dir / "labels.txt"), preprocessing=_read_preprocessing(run_dir))
    return dataclasses.replace(meta, source_run=meta.source_run or run_dir.name, edgetl_version=__version__)


def _read_preprocessing(run_dir: Path) -> PreprocessingSpec:
    return PreprocessingSpec.from_dict(_json_object(run_dir / "preprocessing.json", run_dir))


def _check_copies(run_dir: Path, meta: ModelMetadata) -> None:
    """Refuse a labels.txt or preprocessing.json that says other than metadata.json (each may be absent)."""
    source = run_dir / "metadata.json"
    if (run_dir / "labels.txt").exists():
        labels = read_labels(run_dir / "labels.txt")
        if labels != meta.labels:
            first = next((i for i, pair in enumerate(zip(labels, meta.labels)) if pair[0] != pair[1]),
                         min(len(labels), len(meta.labels)))
            shown = [(names[first] if first < len(names) else "(none)") for names in (labels, meta.labels)]
            raise EdgetlError(
                f"{run_dir / 'labels.txt'} disagrees with {source}, which every stage reads: line {first + 1} is "
                f"{shown[0]!r} there but {shown[1]!r} in metadata.json ({len(labels)} vs {len(meta.labels)} labels). "
                f"Labels are fixed at training; restore labels.txt or train again. Received: {run_dir}"
            )
    if (run_dir / "preprocessing.json").exists():
        spec = _read_preprocessing(run_dir).to_dict()
        differ = [key for key, value in meta.preprocessing.to_dict().items() if spec.get(key) != value]
        if differ:
            raise EdgetlError(
                f"{run_dir / 'preprocessing.json'} disagrees with {source}, which every stage reads, on "
                f"{', '.join(differ)}: preprocessing is fixed at training; restore preprocessing.json or train again. "
                f"Received: {run_dir}"
            )


def _splits_document(run_dir: str | Path) -> dict[str, Any] | None:
    """splits.json as a dict with its "data_dir" as a Path, or None without one.

    Raises:
        EdgetlError: if splits.json is malformed.
    """
    path = Path(run_dir) / "splits.json"
    if not path.exists():
        return None
    data = _json_object(path, Path(run_dir))
    try:
        return {**data, "data_dir": Path(data["data_dir"])}
    except (KeyError, TypeError) as e:
        raise EdgetlError(f"splits.json is malformed ({e}). Received: {path}") from e


def run_data_dir(run_dir: str | Path) -> Path | None:
    """The DATA_DIR a run was trained on (from splits.json), or None without one. Thread-safe (reads only)."""
    data = _splits_document(run_dir)
    return data["data_dir"] if data is not None else None


def read_split(run_dir: str | Path, split: str) -> list[tuple[Path, str]] | None:
    """The photos of one split of a RUN_DIR, as (absolute path, class name); None without splits.json.

    Raises:
        EdgetlError: if splits.json is malformed.
    """
    path = Path(run_dir) / "splits.json"
    data = _splits_document(run_dir)
    if data is None:
        return None
    root = data["data_dir"]
    try:
        files, classes = data[split], data[f"{split}_classes"]
    except KeyError as e:
        raise EdgetlError(f"splits.json is malformed (no {e.args[0]!r} key). Received: {path}") from e
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
    document = {**json.loads(meta.to_json()), MODEL_HASH_KEY: file_sha256(run_dir / "model.keras")}
    write_text_atomic(run_dir / "metadata.json", json.dumps(document, indent=2, ensure_ascii=False))
