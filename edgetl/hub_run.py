"""A run trained on a TF-Hub backbone: its SavedModel kept in the RUN_DIR, checked, and the classifier rebuilt.

A hub run's model.keras holds a `TFSMLayer`, whose config names an external SavedModel folder;
Keras refuses to deserialize it with safe mode on, and edgetl never turns safe mode off. So
training also keeps a copy of the hub SavedModel in the RUN_DIR (`hub_saved_model/`), with the
SHA-256 of its files in `hub.json`. Loading checks that hash, rebuilds the classifier the way
training built it (`TFSMLayer` on the checked copy, the [0, 1] rescaling, the head from the
recorded dropout and the run's labels) and reads model.keras' weights alone
(`load_weights` reads its `model.weights.h5`, never its `config.json`): no Python is
deserialized. Measured on MobileNetV2-1.0 at 96 px: outputs equal to Keras' unsafe load to the
bit (max difference 0.0), in about 6.5 s (5 s of it TensorFlow reading the SavedModel).

A SavedModel is a TensorFlow graph, not Python, but one swapped in after training would change
what every artefact computes: a copy whose files do not hash as recorded is refused, like a
foreign model.keras. Functions here hold no state and are thread-safe.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgetl.backbones import HEAD_DROPOUT, HUB_LAYER
from edgetl.errors import EdgetlError
from edgetl.safety import file_sha256
from edgetl.spec import ModelMetadata, write_text_atomic

if TYPE_CHECKING:
    import keras

RECORD = "hub.json"
"""In a hub run: the kept SavedModel's SHA-256, where it came from and the head's dropout."""
FOLDER = "hub_saved_model"
"""In a hub run: the copy of the hub SavedModel the classifier is rebuilt on."""


def is_hub_run(run_dir: Path) -> bool:
    """Whether `run_dir` was trained on a hub backbone (it has `hub.json`)."""
    return (Path(run_dir) / RECORD).is_file()


def keep_hub_backbone(run_dir: Path, model: keras.Model) -> None:
    """Copy the hub SavedModel under `model` into `run_dir` and record its SHA-256; nothing for other models.

    Raises:
        EdgetlError: if the SavedModel folder the model was built from is gone.
    """
    layer = _hub_layer(model)
    if layer is None:
        return
    source = Path(layer.filepath)
    if not source.is_dir():
        raise EdgetlError(f"The hub SavedModel the model was built from is gone. Received: {source}")
    shutil.copytree(source, Path(run_dir) / FOLDER, dirs_exist_ok=True)
    record = {"sha256": folder_sha256(Path(run_dir) / FOLDER), "source": str(source),
              "head_dropout": _head_dropout(model)}
    write_text_atomic(Path(run_dir) / RECORD, json.dumps(record, indent=2) + "\n")


def load_classifier(model_path: Path, meta: ModelMetadata) -> keras.Model:
    """The run's classifier: model.keras loaded with safe mode on, or a hub run's rebuilt and checked.

    Raises:
        EdgetlError: for a hub run whose SavedModel copy is missing, tampered or does not fit model.keras.
    """
    run_dir = Path(model_path).parent
    if not is_hub_run(run_dir):
        import keras

        return keras.saving.load_model(model_path, safe_mode=True)
    return _rebuilt_hub_classifier(run_dir, Path(model_path), meta)


def folder_sha256(folder: Path) -> str:
    """One SHA-256 over every file of `folder`: its relative path and its content's SHA-256, in path order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def check_hub_copy(run_dir: Path) -> dict[str, Any]:
    """The run's `hub.json`, once its SavedModel copy hashes as recorded.

    Raises:
        EdgetlError: if hub.json is malformed or the copy is missing or differs from what training kept.
    """
    try:
        record = json.loads((run_dir / RECORD).read_text(encoding="utf-8"))
        recorded, dropout = str(record["sha256"]), float(record["head_dropout"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise EdgetlError(f"{RECORD} is malformed ({e}). Received: {run_dir / RECORD}") from e
    folder = run_dir / FOLDER
    if not folder.is_dir():
        raise EdgetlError(f"This hub run has no copy of its SavedModel ({FOLDER}/); train it again. "
                          f"Received: {run_dir}")
    if folder_sha256(folder) != recorded:
        raise EdgetlError(
            f"{folder} is not the SavedModel this run was trained on (its SHA-256 differs from {RECORD}): "
            f"tampered with or from another run, so edgetl refuses to load it. Train the run again. Received: {run_dir}"
        )
    return {**record, "head_dropout": dropout}


def _rebuilt_hub_classifier(run_dir: Path, model_path: Path, meta: ModelMetadata) -> keras.Model:
    from edgetl.backbones import build_classifier, build_head, hub_backbone_from_folder

    record = check_hub_copy(run_dir)
    backbone = hub_backbone_from_folder(run_dir / FOLDER, meta.preprocessing.image_size[0], str(meta.backbone))
    model = build_classifier(backbone, "unit", build_head(len(meta.labels), record["head_dropout"]))
    try:
        model.load_weights(model_path)  # the weights only: config.json is never read
    except (ValueError, OSError, KeyError) as e:
        raise EdgetlError(
            f"{model_path}'s weights do not fit the classifier rebuilt on {FOLDER}/ ({str(e).splitlines()[0][:200]}). "
            f"Received: {run_dir}"
        ) from e
    return model


def _hub_layer(model: keras.Model) -> Any:
    return next((layer for layer in model._flatten_layers() if layer.name == HUB_LAYER), None)


def _head_dropout(model: keras.Model) -> float:
    dropout = next((layer for layer in model._flatten_layers() if layer.name == HEAD_DROPOUT), None)
    return float(dropout.rate) if dropout is not None else 0.0
