"""Scale: outputs bounded whatever the class count, and the data warnings a large folder needs.

Peak memory and time at 1,000 classes are measured by `bench/many_classes.py`, not here.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import write_solid_photos
from PIL import Image

from edgetl.backbones import BackboneOptions
from edgetl.data import DuplicatePhotosWarning, IgnoredFoldersWarning, load_splits
from edgetl.plots import FULL_MATRIX_MAX_CLASSES, MAX_FIGURE_INCHES, plot_confusion
from edgetl.train import TrainOptions, train
from edgetl.train.metrics import _classification_report

MAX_SIDE_PX = int(MAX_FIGURE_INCHES * 110)
RUN_FILES = {"model.keras", "labels.txt", "preprocessing.json", "metadata.json", "metrics.json", "history.csv",
             "curves.png", "confusion.png", "splits.json"}


def _colours(count: int) -> dict[str, tuple[int, int, int]]:
    rng = np.random.default_rng(3)
    return {f"class_{i:03d}": tuple(int(v) for v in rng.integers(0, 256, 3)) for i in range(count)}


def test_300_tiny_classes_write_every_output_with_bounded_pictures(tmp_path: Path) -> None:
    data = write_solid_photos(tmp_path / "photos", _colours(300), per_class=2, size=32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one epoch of random weights does not learn; that warning is right
        result = train(data, tmp_path / "run", backbone=BackboneOptions(alpha=0.35, image_size=32, weights="none"),
                       options=TrainOptions(epochs=1, batch_size=64, cache_dir=tmp_path / "cache"), verbose=0)
    assert RUN_FILES <= {p.name for p in result.run_dir.iterdir()}
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert "val_confusion_matrix" not in metrics and len(metrics["val_per_class"]) == 300
    pairs = metrics["val_confused_pairs"]
    wrong = sum(c["support"] - round(c["recall"] * c["support"]) for c in metrics["val_per_class"].values())
    assert sum(p["count"] for p in pairs) == wrong and all(p["true"] != p["predicted"] for p in pairs)
    assert (result.run_dir / "metrics.json").stat().st_size < 200_000  # linear in classes, not quadratic
    for picture in ("confusion.png", "curves.png"):
        width, height = Image.open(result.run_dir / picture).size
        assert width <= MAX_SIDE_PX and height <= MAX_SIDE_PX, (picture, width, height)


@pytest.mark.parametrize("classes", [FULL_MATRIX_MAX_CLASSES, FULL_MATRIX_MAX_CLASSES + 1, 5000])
def test_confusion_is_a_matrix_up_to_the_limit_then_a_bounded_summary(classes: int, tmp_path: Path) -> None:
    names = tuple(f"a class with a long name number {i}" for i in range(classes))
    rng = np.random.default_rng(0)
    truth = np.arange(classes).repeat(2)
    predicted = np.where(rng.random(len(truth)) < 0.5, truth, rng.integers(0, classes, len(truth)))
    metrics = {"class_names": list(names)} | _classification_report("test", truth, predicted, names)
    assert ("test_confusion_matrix" in metrics) == (classes <= FULL_MATRIX_MAX_CLASSES)
    plot_confusion(metrics, "test", tmp_path / "confusion.png")
    width, height = Image.open(tmp_path / "confusion.png").size
    assert 400 < width <= MAX_SIDE_PX and 400 < height <= MAX_SIDE_PX


def _split_folders(root: Path) -> Path:
    """train/ val/ test/ of two classes; each split its own shades, so no two files are equal."""
    for shift, (split, per_class) in enumerate((("train", 4), ("val", 2), ("test", 2))):
        colours = {"cat": (200, 120, 40 + 30 * shift), "dog": (40, 90 + 30 * shift, 200)}
        write_solid_photos(root / split, colours, per_class=per_class)
    return root


def test_duplicated_photos_across_classes_and_splits_are_named(tmp_path: Path) -> None:
    data = _split_folders(tmp_path / "photos")
    shutil.copy(data / "train" / "cat" / "0.png", data / "test" / "dog" / "copy.png")  # another class and split
    shutil.copy(data / "train" / "dog" / "1.png", data / "val" / "dog" / "again.png")  # same class, another split
    shutil.copy(data / "train" / "dog" / "2.png", data / "train" / "dog" / "twin.png")  # same class and split: fine
    with pytest.warns(DuplicatePhotosWarning) as caught:
        load_splits(data)
    message = str(caught[0].message)
    assert message.startswith("2 photo(s) are duplicated")
    assert "train/cat/0.png (train, cat) = test/dog/copy.png (test, dog)" in message
    assert "val/dog/again.png (val, dog)" in message and "twin.png" not in message


def test_folders_beside_the_split_folders_are_named_as_ignored(tmp_path: Path) -> None:
    data = _split_folders(tmp_path / "photos")
    write_solid_photos(data / "extra", {"bird": (10, 200, 10)}, per_class=2)
    Image.new("RGB", (8, 8)).save(data / "loose.jpg")
    (data / ".hidden").mkdir()
    with pytest.warns(IgnoredFoldersWarning, match=r"Ignored beside the split folders in .*: extra/, loose.jpg\. Only "
                                                    r"train/, val/, test/ are read"):
        splits = load_splits(data)
    assert splits.class_names == ("cat", "dog")


def test_a_clean_folder_gets_no_data_warning(tmp_path: Path) -> None:
    data = _split_folders(tmp_path / "photos")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_splits(data)
