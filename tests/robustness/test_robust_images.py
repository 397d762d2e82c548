"""Awkward photos, through the runtime on an exported model and through training's folder scan.

Each case asserts what a user sees: the exit code and the one `error:` line of `edgetl
predict`, or the prediction itself, or which photos training keeps.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from _export_shared import Exported, exported_run
from conftest import write_solid_photos
from PIL import Image
from typer.testing import CliRunner

from edgetl.cli import app
from edgetl.data import LabelledFiles, UnreadableImagesWarning, decode_images, scan_classes
from edgetl.errors import EdgetlError
from edgetl.runtime import Classifier
from edgetl.runtime.image import MAX_IMAGE_PIXELS, load_image
from edgetl.spec import PreprocessingSpec

runner = CliRunner()
SPEC = PreprocessingSpec(image_size=(16, 16))


@pytest.fixture(scope="session")
def exported(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return exported_run(tiny_run, tmp_path_factory)


@pytest.fixture(scope="module")
def fp32(exported: Exported) -> Classifier:
    return Classifier.from_file(exported.run / "export" / "model_tflite-fp32.tflite")


def _photo() -> Image.Image:
    """Red on the left, blue on the right, 60x40: orientation changes the pixels."""
    pixels = np.zeros((40, 60, 3), dtype=np.uint8)
    pixels[:, :30] = (200, 30, 30)
    pixels[:, 30:] = (30, 40, 200)
    return Image.fromarray(pixels)


def _predict_fails(exported: Exported, image: Path, message: str) -> None:
    result = runner.invoke(app, ["predict", str(exported.run / "export" / "model_tflite-fp32.tflite"), str(image)])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_truncated_jpeg_is_exit_2_naming_the_file(exported: Exported, tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "whole.jpg", quality=95)  # mostly scan data: the cut keeps the header
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    _predict_fails(exported, tmp_path / "cut.jpg", "Image is corrupt or truncated (image file is truncated")


def test_zero_byte_file_is_not_a_readable_image(exported: Exported, tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    _predict_fails(exported, tmp_path / "empty.png", f"Not a readable image. Received: {tmp_path / 'empty.png'}")


def test_text_file_named_jpg_is_not_a_readable_image(exported: Exported, tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("shopping list: milk, eggs\n")
    _predict_fails(exported, tmp_path / "notes.jpg", "Not a readable image")


@pytest.mark.parametrize(("size", "message"), [
    ((9_000, 8_000), "(9000x8000 pixels, limit 64,000,000)"),  # over edgetl's limit, under Pillow's
    ((10_000, 10_000), "(10000x10000 pixels, limit 64,000,000)"),  # over Pillow's warning limit too
    ((15_000, 15_000), "(225,000,000 pixels, limit 64,000,000)"),  # over Pillow's hard limit: it refuses first
])
def test_decompression_bomb_is_refused_before_decoding(exported: Exported, tmp_path: Path, size: tuple[int, int],
                                                       message: str) -> None:
    Image.new("1", size).save(tmp_path / "bomb.png")  # tens of megapixels in a few kB
    assert (tmp_path / "bomb.png").stat().st_size < 100_000 and size[0] * size[1] > MAX_IMAGE_PIXELS
    _predict_fails(exported, tmp_path / "bomb.png", f"Image is too large to decode safely {message}")


@pytest.mark.parametrize("mode", ["RGBA", "P", "I;16", "CMYK", "L"])
def test_other_modes_predict_like_the_rgb_photo(fp32: Classifier, tmp_path: Path, mode: str) -> None:
    """Alpha, palette, 16-bit, CMYK and grayscale photos become the RGB the model was trained on."""
    rgb = _photo()
    if mode == "I;16":
        other = Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
        rgb = rgb.convert("L").convert("RGB")
    elif mode == "L":
        other, rgb = rgb.convert("L"), rgb.convert("L").convert("RGB")
    elif mode == "P":  # an adaptive palette of the photo's colours, as a GIF or an 8-bit PNG has
        other = rgb.convert("P", palette=Image.Palette.ADAPTIVE)
        rgb = other.convert("RGB")
    else:
        other = rgb.convert(mode)
    path = tmp_path / f"photo.{'jpg' if mode == 'CMYK' else 'png'}"
    other.save(path, **({"quality": 100} if mode == "CMYK" else {}))
    assert load_image(path).mode == "RGB"
    got, want = fp32.run_pixels(fp32.load_pixels(path)[None]), fp32.run_pixels(fp32.load_pixels(rgb)[None])
    assert got.argmax() == want.argmax()
    tolerance = 0.05 if mode == "CMYK" else 1e-6  # CMYK goes through lossy JPEG and a colour conversion
    np.testing.assert_allclose(got, want, atol=tolerance)


def test_rgba_alpha_is_dropped_not_blended(tmp_path: Path) -> None:
    pixels = np.zeros((8, 8, 4), dtype=np.uint8)
    pixels[..., :3], pixels[..., 3] = (10, 200, 30), 0  # fully transparent green stays green
    Image.fromarray(pixels, "RGBA").save(tmp_path / "clear.png")
    assert np.asarray(load_image(tmp_path / "clear.png"))[0, 0].tolist() == [10, 200, 30]


def test_exif_rotated_photo_predicts_like_the_upright_one(fp32: Classifier, tmp_path: Path) -> None:
    upright = _photo()
    upright.save(tmp_path / "upright.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view": the sensor's pixels are the upright photo turned back
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "sensor.png", exif=exif)
    raw = np.asarray(Image.open(tmp_path / "sensor.png"))
    assert raw.shape == (60, 40, 3)
    assert np.array_equal(np.asarray(load_image(tmp_path / "sensor.png")), np.asarray(upright))
    scores = [fp32.run_pixels(fp32.load_pixels(tmp_path / name)[None])[0] for name in ("sensor.png", "upright.png")]
    np.testing.assert_array_equal(scores[0], scores[1])
    results = fp32.classify([tmp_path / "sensor.png", tmp_path / "upright.png"], top_k=3)
    assert results[0] == results[1]


@pytest.mark.parametrize("size", [(1, 1), (1000, 3), (3, 1000)])
def test_any_image_size_is_resized_to_the_models_input(fp32: Classifier, tmp_path: Path, size: tuple[int, int]) -> None:
    Image.new("RGB", size, (200, 30, 30)).save(tmp_path / "odd.png")
    pixels = fp32.load_pixels(tmp_path / "odd.png")
    assert pixels.shape == (64, 64, 3) and (pixels == (200, 30, 30)).all()
    assert fp32.classify([tmp_path / "odd.png"], top_k=1)[0][0].label == "red"


def test_symlink_loops_in_data_dir_neither_hang_nor_count(tmp_path: Path) -> None:
    data = write_solid_photos(tmp_path / "data", {"a": (200, 0, 0), "b": (0, 0, 200)}, per_class=2, size=8)
    os.symlink("../..", data / "a" / "up")  # a folder loop: data/a/up/data/a/up/...
    os.symlink("self.png", data / "b" / "self.png")  # a file link to itself (ELOOP)
    os.symlink(data / "b", data / "c")  # a class folder that is a link: followed once, not into loops
    names, files = scan_classes(data)
    assert names == ("a", "b", "c")
    assert sorted(str(f.relative_to(data)) for f in files.files) == ["a/0.png", "a/1.png", "b/0.png", "b/1.png", "c/0.png", "c/1.png"]


def test_class_whose_photos_are_all_unreadable_is_refused_naming_it(tmp_path: Path) -> None:
    """The scan counts files by name; after decoding, class 'b' has no training photo at all."""
    data = write_solid_photos(tmp_path / "data", {"a": (200, 0, 0), "b": (0, 0, 200)}, per_class=3, size=8)
    for f in (data / "b").iterdir():
        f.write_bytes(b"")
    result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "run"), "--strategy", "scratch",
                                 "--image-size", "32", "--epochs", "1", "--val-split", "0", "--test-split", "0", "-q"])
    assert result.exit_code == 2, result.output
    assert "error: No readable training images left for class(es) ['b']" in result.stderr
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob(".run*"))


def test_class_folder_of_non_images_counts_as_empty(tmp_path: Path) -> None:
    data = write_solid_photos(tmp_path / "data", {"a": (200, 0, 0), "b": (0, 0, 200)}, per_class=3, size=8)
    (data / "docs").mkdir()
    (data / "docs" / "README.txt").write_text("not a class")
    (data / ".ipynb_checkpoints").mkdir()  # hidden folders are not classes at all
    with pytest.raises(EdgetlError, match=r"Every class needs at least 2 images\. Received: .* with 'docs': 0$"):
        scan_classes(data)


def test_unreadable_photos_are_skipped_once_with_a_warning_listing_them(tmp_path: Path) -> None:
    data = write_solid_photos(tmp_path / "data", {"a": (200, 0, 0)}, per_class=2, size=8)
    Image.new("1", (10_000, 10_000)).save(data / "a" / "bomb.png")
    (data / "a" / "empty.jpg").write_bytes(b"")
    files = LabelledFiles(tuple(sorted((data / "a").iterdir())), np.zeros(4, dtype=np.int64))
    with pytest.warns(UnreadableImagesWarning, match=r"Skipped 2 unreadable image\(s\): .*bomb\.png, .*empty\.jpg$"):
        pixels, labels = decode_images(files, SPEC)
    assert pixels.shape == (2, 16, 16, 3) and labels.tolist() == [0, 0]


def test_tampered_decoded_image_cache_is_not_unpickled(tmp_path: Path) -> None:
    """The cache is numpy files loaded without pickle: an object array in it is ignored, never run."""
    data = write_solid_photos(tmp_path / "data", {"a": (200, 0, 0)}, per_class=2, size=8)
    files = LabelledFiles(tuple(sorted((data / "a").iterdir())), np.zeros(2, dtype=np.int64))
    first, _ = decode_images(files, SPEC, cache_dir=tmp_path / "cache")
    cache = next(p for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".labels.npy"))
    np.save(cache, np.array([print], dtype=object), allow_pickle=True)
    with pytest.warns(UserWarning, match="decoded-image cache .* is unreadable"):
        again, _ = decode_images(files, SPEC, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(again, first)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(decode_images(files, SPEC, cache_dir=tmp_path / "cache")[0], first)  # rewritten whole
