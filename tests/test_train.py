"""Training: the API and the CLI on real photos, real weights and bad input."""

from __future__ import annotations

import ast
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import KERAS_HOME, REPO, shared_path, write_solid_photos
from PIL import Image
from typer.testing import CliRunner

from edgetl.backbones import BackboneOptions
from edgetl.cli import app
from edgetl.data import UnreadableImagesWarning
from edgetl.runtime.image import load_image
from edgetl.train import TrainOptions, train

RUN_FILES = {"model.keras", "labels.txt", "preprocessing.json", "metadata.json", "metrics.json", "history.csv", "curves.png", "confusion.png", "splits.json"}
runner = CliRunner()


def test_tiny_run_has_every_file_and_learned(tiny_run: Path) -> None:
    assert RUN_FILES <= {p.name for p in tiny_run.iterdir()}
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.99
    assert metrics["learned"] is True and metrics["chance_accuracy"] == pytest.approx(1 / 3, abs=0.05)
    assert (tiny_run / "labels.txt").read_text().split() == ["blue", "green", "red"]
    spec = json.loads((tiny_run / "preprocessing.json").read_text())
    assert spec["image_size"] == [64, 64] and spec["mean"] == [0, 0, 0] and spec["std"] == [1, 1, 1]
    assert metrics["test_confusion_matrix"] == np.diag(np.diag(metrics["test_confusion_matrix"])).tolist()
    assert not list(tiny_run.parent.glob(".*partial"))


def test_saved_model_loads_in_safe_mode_and_takes_raw_pixels(tiny_run: Path) -> None:
    import keras

    model = keras.saving.load_model(tiny_run / "model.keras", safe_mode=True)
    red = np.full((1, 64, 64, 3), (200, 30, 30), dtype=np.float32)
    probs = model.predict(red, verbose=0)
    assert probs.shape == (1, 3) and np.isclose(probs.sum(), 1, atol=1e-5)
    assert probs.argmax() == 2  # labels: blue, green, red
    assert model.layers[-1].name == "edgetl_head" and model.output.name


@pytest.fixture(scope="module")
def cats_vs_dogs_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Feature extraction with real ImageNet weights against the scratch baseline, 128 px."""
    data = shared_path("data", "cats_vs_dogs")
    weights = shared_path("weights", "mobilenet_v2_1.0_224_imagenet_no_top.weights.h5")
    root = tmp_path_factory.mktemp("cvd")
    cache = root / "cache"
    results = {}
    for strategy, backbone_weights in (("feature-extract", str(weights)), ("scratch", "none")):
        result = train(
            data,
            root / strategy,
            backbone=BackboneOptions(image_size=128, weights=backbone_weights),
            options=TrainOptions(strategy=strategy, epochs=5, cache_dir=cache),
            verbose=0,
        )
        results[strategy] = result.metrics
    return results


def test_transfer_learning_beats_scratch_on_real_photos(cats_vs_dogs_runs: dict[str, dict]) -> None:
    transfer, scratch = cats_vs_dogs_runs["feature-extract"], cats_vs_dogs_runs["scratch"]
    assert transfer["class_counts"]["test"] == {"cat": 50, "dog": 50}  # the folder's own test/ split
    assert transfer["test_accuracy"] >= 0.9
    assert transfer["test_accuracy"] - scratch["test_accuracy"] >= 0.15


def test_imagenet_weights_through_keras_download_path_offline(tmp_path: Path) -> None:
    """`weights="imagenet"` as a user online gets it, served from the session's KERAS_HOME cache."""
    keras_file = shared_path("weights", "keras", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_224_no_top.h5")
    assert (KERAS_HOME / "models" / keras_file.name).exists()
    data = write_solid_photos(tmp_path / "photos", {"a": (220, 220, 30), "b": (30, 30, 220)}, per_class=6)
    result = train(
        data,
        tmp_path / "run",
        backbone=BackboneOptions(alpha=0.5, image_size=64, weights="imagenet"),  # not a published size: 224 weights
        options=TrainOptions(strategy="linear", epochs=3, learning_rate=1e-2, cache_dir=tmp_path / "cache"),
        verbose=0,
    )
    assert result.metrics["backbone"]["weights"] == "imagenet"
    assert result.metrics["val_accuracy"] == 1.0


def test_offline_imagenet_download_is_one_clear_line(colour_photos: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", str(colour_photos), "--out", str(tmp_path / "run"), "--alpha", "0.75", "--image-size", "96", "-q"])
    _assert_clean_failure(result, tmp_path / "run", "Cannot download the ImageNet weights of mobilenet_v2 (offline?)")


def test_fine_tune_reports_both_stages_and_keeps_the_better(colour_photos: Path, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="random backbone"):
        result = train(
            colour_photos,
            tmp_path / "ft",
            backbone=BackboneOptions(alpha=0.35, image_size=48, weights="none"),
            options=TrainOptions(strategy="fine-tune", epochs=3, fine_tune_epochs=2, fine_tune_layers=4, batch_size=12, cache_dir=tmp_path / "c"),
            verbose=0,
        )
    report = result.metrics["fine_tune"]
    assert len(report["unfrozen_layers"]) == 4
    assert not any("bn" in name.lower() for name in report["unfrozen_layers"])
    assert report["kept"].startswith("fine-tuned") or report["fine_tuned_val_accuracy"] < report["head_val_accuracy"]
    history = (tmp_path / "ft" / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,stage") and {line.split(",")[1] for line in history[1:]} == {"head", "fine-tune"}


def test_a_model_at_chance_is_reported_as_not_learned(tmp_path: Path) -> None:
    """Two classes of the same noise: no model can tell them apart, and metrics.json says so."""
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / "noise" / name).mkdir(parents=True)
        for i in range(30):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "noise" / name / f"{i}.png")
    with pytest.warns(UserWarning, match=r"The scratch model did not learn: test accuracy .* within noise of chance \(50\.0%"):
        result = train(tmp_path / "noise", tmp_path / "run", backbone=BackboneOptions(image_size=32, weights="none"),
                       options=TrainOptions(strategy="scratch", epochs=2, cache_dir=tmp_path / "c"), verbose=0)
    assert result.metrics["learned"] is False and result.metrics["chance_accuracy"] == 0.5


def test_scratch_defaults_to_its_own_budget_and_learns(colour_photos: Path, tmp_path: Path) -> None:
    from edgetl.train import SCRATCH_EPOCHS

    assert TrainOptions(strategy="scratch").resolved_epochs == SCRATCH_EPOCHS > TrainOptions().resolved_epochs == 10
    result = train(colour_photos, tmp_path / "run", backbone=BackboneOptions(image_size=32, weights="none"),
                   options=TrainOptions(strategy="scratch", batch_size=8, cache_dir=tmp_path / "c"), verbose=0)
    assert result.metrics["learned"] is True and result.metrics["test_accuracy"] >= 0.8


def test_train_output_in_a_log_is_plain_and_json_is_clean(colour_photos: Path, tmp_path: Path) -> None:
    """Not a terminal (CliRunner): stage lines and one line per epoch, no progress-bar escape codes."""
    args = ["train", str(colour_photos), "--weights", "none", "--alpha", "0.35", "--image-size", "32", "--epochs", "2",
            "--strategy", "fine-tune", "--fine-tune-epochs", "1"]
    with pytest.warns(UserWarning, match="random backbone"):
        result = runner.invoke(app, [*args, "--out", str(tmp_path / "log")])
    assert result.exit_code == 0, result.output
    for line in ("==> splits: train 24 (colours", "val 6 (taken from colours", "==> decoding: 36 photos at 32x32 px",
                 "==> head: up to 2 epochs", "==> fine-tune: up to 1 epochs", "==> kept: ", "Kept: "):
        assert line in result.stdout, result.stdout
    assert "\x1b" not in result.stdout and "━" not in result.stdout and "\r" not in result.stdout
    assert "Epoch 1/2" in result.stdout and len(result.stdout.splitlines()) < 40
    with pytest.warns(UserWarning, match="random backbone"):
        result = runner.invoke(app, [*args, "--out", str(tmp_path / "json"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["run_dir"] == str(tmp_path / "json") and summary["fine_tune"]["kept"]
    assert "==> head:" in result.stderr


def test_the_strategy_table_has_one_row_per_choice_in_order() -> None:
    from edgetl.choices import STRATEGIES
    from edgetl.train.options import STRATEGY_TABLE
    from edgetl.train.strategies import FITS

    assert tuple(STRATEGY_TABLE) == tuple(FITS) == STRATEGIES
    assert [name for name, row in STRATEGY_TABLE.items() if not row.pretrained] == ["scratch"]


def test_training_modules_use_keras_only() -> None:
    """data, backbones and train never import tensorflow (the GPU machine has only JAX)."""
    files = [REPO / "edgetl" / f"{name}.py" for name in ("data", "backbones", "rundir", "plots")]
    for path in [*files, *(REPO / "edgetl" / "train").glob("*.py")]:
        name = path.relative_to(REPO / "edgetl").with_suffix("")
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(m.split(".")[0] == "tensorflow" for m in modules), f"edgetl/{name}.py imports {modules}"


# --- bad input: one line on stderr, exit 2, no RUN_DIR left behind ---------------------------------


def _train_cli(data: Path, out: Path, *extra: str):
    return runner.invoke(app, ["train", str(data), "--out", str(out), "--weights", "none", "--image-size", "32", "--epochs", "1", "-q", *extra])


def _assert_clean_failure(result, out: Path, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*"))


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        (None, "DATA_DIR does not exist"),
        ({}, "holds no class folders"),
        ({"only": 3}, "at least 2 class folders"),
        ({"a": 3, "b": 1}, "at least 2 images"),
        ({"a": 3, "empty": 0}, "at least 2 images"),
    ],
)
def test_bad_data_dirs(tmp_path: Path, layout: dict | None, message: str) -> None:
    data = tmp_path / "data"
    if layout is not None:
        data.mkdir()
        for name, count in layout.items():
            (data / name).mkdir()
            write_solid_photos(data, {name: (9, 9, 9)}, per_class=count) if count else None
    _assert_clean_failure(_train_cli(data, tmp_path / "run"), tmp_path / "run", message)


def test_existing_run_dir_is_refused_without_overwrite(colour_photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    result = _train_cli(colour_photos, out)
    assert result.exit_code == 2 and "--overwrite" in result.stderr and not any(out.iterdir())


def test_unknown_backbone_suggests_the_key(colour_photos: Path, tmp_path: Path) -> None:
    result = _train_cli(colour_photos, tmp_path / "run", "--backbone", "mobilenet_v3")
    _assert_clean_failure(result, tmp_path / "run", "Unknown backbone 'mobilenet_v3'")


def test_weights_file_that_does_not_fit(colour_photos: Path, tmp_path: Path) -> None:
    weights = shared_path("weights", "mobilenet_v2_1.0_224_imagenet_no_top.weights.h5")
    result = runner.invoke(app, ["train", str(colour_photos), "--out", str(tmp_path / "run"), "--alpha", "0.35", "--weights", str(weights), "--image-size", "32", "-q"])
    _assert_clean_failure(result, tmp_path / "run", "does not fit backbone mobilenet_v2")


def test_corrupt_photos_are_skipped_with_a_warning_or_refused_with_strict(tmp_path: Path) -> None:
    data = write_solid_photos(tmp_path / "data", {"a": (200, 0, 0), "b": (0, 0, 200)}, per_class=4)
    good = (data / "a" / "0.png").read_bytes()
    (data / "a" / "truncated.png").write_bytes(good[: len(good) // 3])
    (data / "b" / "empty.jpg").write_bytes(b"")
    (data / "b" / "notes.txt").write_text("not a photo, ignored")
    with pytest.warns(UserWarning, match=r"Skipped 2 unreadable image\(s\)"):
        result = train(data, tmp_path / "run", backbone=BackboneOptions(alpha=0.35, image_size=32, weights="none"),
                       options=TrainOptions(strategy="scratch", epochs=1, val_split=0.0, test_split=0.0, cache_dir=tmp_path / "c"), verbose=0)
    assert sum(result.metrics["class_counts"]["train"].values()) == 8
    strict = _train_cli(data, tmp_path / "strict", "--strict", "--strategy", "scratch")
    _assert_clean_failure(strict, tmp_path / "strict", "cannot be decoded (--strict)")


def test_awkward_image_modes_are_converted(tmp_path: Path) -> None:
    """Grayscale, RGBA, palette, CMYK, 16-bit and EXIF-rotated photos all train."""
    data = tmp_path / "data"
    for name in ("odd", "plain"):
        (data / name).mkdir(parents=True)
    base = Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 60, 3), dtype=np.uint8))
    base.convert("L").save(data / "odd" / "gray.png")
    base.convert("RGBA").save(data / "odd" / "rgba.png")
    base.convert("P").save(data / "odd" / "palette.png")
    base.convert("CMYK").save(data / "odd" / "cmyk.jpg")
    Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257).save(data / "odd" / "deep16.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    base.save(data / "plain" / "rotated.jpg", exif=exif)
    base.save(data / "plain" / "plain.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnreadableImagesWarning)
        train(data, tmp_path / "run", backbone=BackboneOptions(image_size=32, weights="none"),
              options=TrainOptions(strategy="scratch", epochs=1, val_split=0.0, test_split=0.0, cache_dir=tmp_path / "c"), verbose=0)
    assert (tmp_path / "run" / "model.keras").exists()
    upright = load_image(data / "plain" / "rotated.jpg")
    assert upright.size == (40, 60) and upright.mode == "RGB"  # EXIF orientation 6: rotated 90 degrees
    deep = np.asarray(load_image(data / "odd" / "deep16.png"))
    assert deep.dtype == np.uint8 and abs(int(deep.mean()) - int(np.asarray(base.convert("L")).mean())) <= 1


def test_split_fractions_are_of_each_whole_class(tmp_path: Path) -> None:
    from edgetl.data import load_splits

    data = write_solid_photos(tmp_path / "photos", {"a": (200, 0, 0), "b": (0, 0, 200)}, per_class=20, size=8)
    splits = load_splits(data, val_split=0.25, test_split=0.25)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (20, 10, 10)



def test_full_training_from_random_weights_predicts_in_inference_mode(tmp_path: Path) -> None:
    """Keras' batch-norm momentum of 0.999 left the moving statistics near their initial values
    after a short run: a backbone trained with `full` from random weights predicted one class.

    No validation split: with one, early stopping keeps the epoch of lowest val_loss, which on a
    random start can be the first (an untrained model that predicts one class on any CPU whose
    trajectory puts it there). Without, the kept epoch is the one of lowest training loss, and
    the check is the property itself: the photos the network fitted (in training mode, batch
    statistics) are classified as well in inference mode (moving statistics), whatever the trajectory."""
    import keras

    from edgetl.rundir import read_split
    from edgetl.runtime.image import load_pixels
    from edgetl.spec import PreprocessingSpec

    with np.load(REPO / "edgetl" / "demo_data" / "digits.npz") as data:
        images, labels = data["images"], data["labels"]
    for digit in (0, 1, 4):
        (tmp_path / "digits" / str(digit)).mkdir(parents=True)
        for n in np.flatnonzero(labels == digit)[:40]:
            Image.fromarray(images[n]).resize((32, 32), Image.Resampling.BILINEAR).save(tmp_path / "digits" / str(digit) / f"{n}.png")
    with pytest.warns(UserWarning, match="random backbone"):
        train(
            tmp_path / "digits",
            tmp_path / "full",
            backbone=BackboneOptions(alpha=0.35, image_size=32, weights="none"),
            options=TrainOptions(strategy="full", epochs=10, batch_size=8, augment=False, patience=10, val_split=0.0,
                                 cache_dir=tmp_path / "c"),
            verbose=0,
        )
    photos = read_split(tmp_path / "full", "train")
    spec = PreprocessingSpec(image_size=(32, 32))
    pixels = np.stack([load_pixels(path, spec) for path, _ in photos]).astype(np.float32)
    names = sorted({name for _, name in photos})
    truth = np.array([names.index(name) for _, name in photos])
    model = keras.saving.load_model(tmp_path / "full" / "model.keras")
    batch_statistics = np.concatenate([np.asarray(model(pixels[i : i + 8], training=True)) for i in range(0, len(pixels), 8)])
    fitted = float(np.mean(batch_statistics.argmax(axis=1) == truth))
    inference = float(np.mean(model.predict(pixels, verbose=0).argmax(axis=1) == truth))
    # How well a random start fits 102 photos in 10 epochs is a trajectory (0.37 to 1.0 measured on
    # one AMD EPYC): the check is that inference mode keeps what training mode has, whatever it is.
    assert inference >= fitted - 0.1, (inference, fitted)


def test_hub_backbone_from_a_local_saved_model(colour_photos: Path, tmp_path: Path) -> None:
    """`--backbone hub:DIR` trains through tensorflow-hub on a local SavedModel and keeps a copy of it
    in the run, which loads rebuilt with safe mode on (tests/test_hub.py exports and verifies one)."""
    import keras

    pytest.importorskip("tensorflow_hub", reason="hub backbones need tensorflow-hub")
    inputs = keras.Input((32, 32, 3))
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3, activation="relu")(inputs))
    keras.Model(inputs, features).export(str(tmp_path / "saved_model"), verbose=False)
    result = runner.invoke(app, ["train", str(colour_photos), "--out", str(tmp_path / "run"), "--backbone", f"hub:{tmp_path / 'saved_model'}",
                                 "--image-size", "32", "--epochs", "3", "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["backbone"]["name"].startswith("hub:")
    from edgetl.export import load_run
    from edgetl.hub_run import FOLDER, folder_sha256

    assert folder_sha256(tmp_path / "run" / FOLDER) == folder_sha256(tmp_path / "saved_model")
    model, _ = load_run(tmp_path / "run")
    assert model.get_layer("hub_backbone").get_layer("edgetl_hub").__class__.__name__ == "TFSMLayer"
