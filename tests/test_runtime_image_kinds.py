"""`classify()` on paths, PIL images and numpy arrays: one conversion (training's) for every kind,
on the awkward formats (16-bit, palette with transparency, LA, CMYK, RGBA, EXIF-rotated), and a
clear `EdgetlError` for API misuse. Real photos and Coral's real uint8 model."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_path
from PIL import Image

from edgetl.errors import EdgetlError
from edgetl.runtime import Classifier
from edgetl.runtime.image import load_image, load_pixels


@pytest.fixture(scope="module")
def coral() -> Classifier:
    return Classifier.from_file(shared_path("coral", "mobilenet_v1_0.25_128_quant.tflite"))


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """A real photo (Coral's cat), 8-bit RGB."""
    with Image.open(shared_path("coral", "cat.bmp")) as img:
        return img.convert("RGB").resize((160, 120))


def _save(img: Image.Image, path: Path, **options: object) -> Path:
    img.save(path, **options)
    return path


def _odd_files(photo: Image.Image, root: Path) -> dict[str, Path]:
    """The photo in each awkward format, as a file."""
    gray16 = Image.fromarray(np.asarray(photo.convert("L"), dtype=np.uint16) * 257)
    palette = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    palette.info["transparency"] = 0  # palette entry 0 is transparent: P + tRNS, as GIFs have
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to view
    return {
        "I;16": _save(gray16, root / "gray16.png"),
        "P+transparency": _save(palette, root / "palette.png", transparency=0),
        "LA": _save(photo.convert("LA"), root / "la.png"),
        "CMYK": _save(photo.convert("CMYK"), root / "cmyk.jpg", quality=95),
        "RGBA": _save(photo.convert("RGBA"), root / "rgba.png"),
        "EXIF": _save(photo, root / "rotated.jpg", exif=exif, quality=95),
        "L": _save(photo.convert("L"), root / "gray.png"),
    }


ARRAY_KINDS = {"I;16", "LA", "RGBA", "L"}  # the modes an array carries (`Image.fromarray` reads them back)


@pytest.mark.parametrize("kind", ["I;16", "P+transparency", "LA", "CMYK", "RGBA", "EXIF", "L"])
def test_path_pil_and_numpy_inputs_convert_alike(
    coral: Classifier, photo: Image.Image, tmp_path: Path, kind: str
) -> None:
    path = _odd_files(photo, tmp_path)[kind]
    with Image.open(path) as opened:
        assert opened.mode == kind.split("+")[0] or kind == "EXIF"
        inputs: dict[str, object] = {"path": path, "opened PIL": opened, "loaded PIL": opened.copy()}
        if kind in ARRAY_KINDS:
            inputs["numpy"] = np.asarray(opened)
        want = coral.load_pixels(path)  # training decodes files with this very function
        for name, source in inputs.items():
            assert np.array_equal(coral.load_pixels(source), want), name
        results = coral.classify(list(inputs.values()), top_k=5)
    assert all(result == results[0] for result in results), list(inputs)


def test_sixteen_bit_is_scaled_not_saturated(coral: Classifier, photo: Image.Image, tmp_path: Path) -> None:
    path = _odd_files(photo, tmp_path)["I;16"]
    eight_bit = np.asarray(photo.convert("L").convert("RGB"))
    for source in (path, Image.open(path), np.asarray(Image.open(path))):
        assert np.abs(np.asarray(load_image(source), dtype=int) - eight_bit).max() <= 1


def test_big_endian_sixteen_bit_arrays_read_as_their_values(photo: Image.Image) -> None:
    deep = np.asarray(photo.convert("L"), dtype=np.uint16) * 257
    assert np.array_equal(np.asarray(load_image(deep.astype(">u2"))), np.asarray(load_image(deep)))


def test_exif_rotation_applies_to_pil_images(photo: Image.Image, tmp_path: Path) -> None:
    path = _odd_files(photo, tmp_path)["EXIF"]
    with Image.open(path) as opened:
        assert opened.size == (160, 120) and load_image(opened).size == (120, 160)


def test_arrays_of_more_dimensions_take_each_photo(coral: Classifier, photo: Image.Image) -> None:
    batch = np.stack([np.asarray(photo), np.asarray(photo.transpose(Image.Transpose.FLIP_TOP_BOTTOM))])
    assert coral.classify(batch, top_k=2) == coral.classify([photo, batch[1]], top_k=2)


@pytest.mark.parametrize(("images", "message"), [
    ("photo.jpg", "images must be a list of photos .* Received: str"),
    (Path("photo.jpg"), "images must be a list of photos .* Received: PosixPath"),
    (np.zeros((32, 32, 3), np.uint8), "images must be a list of photos .* Received: ndarray"),
    ([], "images is empty"),
    (iter([]), "images is empty"),
    (3, "images must be a list of photos .* Received: int"),
    ([3], "An image must be a path, a PIL image or a numpy array of pixels. Received: int"),
    ([np.zeros((32, 32, 3), np.float32)], "A numpy image must be uint8 .* Received: float32 array of shape"),
    ([np.zeros((32, 32, 5), np.uint8)], r"Received: uint8 array of shape \(32, 32, 5\)"),
])
def test_classify_misuse_is_one_clear_error(coral: Classifier, images: object, message: str) -> None:
    with pytest.raises(EdgetlError, match=message):
        coral.classify(images)


def test_a_single_pil_image_is_not_taken_for_a_list(coral: Classifier, photo: Image.Image) -> None:
    with pytest.raises(EdgetlError, match="for one photo pass \\[photo\\]. Received: Image"):
        coral.classify(photo)


@pytest.mark.parametrize("top_k", [0, -1, 2.5, 3.0, True, "3", None])
def test_top_k_must_be_an_integer_of_at_least_one(coral: Classifier, photo: Image.Image, top_k: object) -> None:
    with pytest.raises(EdgetlError, match=f"top_k must be an integer of at least 1. Received: top_k={top_k!r}"):
        coral.classify([photo], top_k=top_k)
    assert len(coral.classify([photo], top_k=np.int64(2))[0]) == 2


def test_empty_pixel_batch_is_refused(coral: Classifier) -> None:
    with pytest.raises(EdgetlError, match=r"Pixels must be a uint8 array .* Received: uint8 \(0, 128, 128, 3\)"):
        coral.run_pixels(np.zeros((0, 128, 128, 3), np.uint8))


@pytest.mark.parametrize(("size", "message"), [
    ((9_000, 8_000), "(9000x8000 pixels, limit 64,000,000)"),  # under Pillow's limit: exact size
    ((15_000, 15_000), "(225,000,000 pixels, limit 64,000,000)"),  # over Pillow's hard limit: its count
])
def test_decompression_bomb_message_states_the_real_size(tmp_path: Path, size: tuple[int, int], message: str) -> None:
    Image.new("1", size).save(tmp_path / "bomb.png")
    with pytest.raises(EdgetlError, match=f"too large to decode safely {re.escape(message)}"):
        load_image(tmp_path / "bomb.png")


def test_in_memory_image_over_the_limit_states_its_size(coral: Classifier) -> None:
    with pytest.raises(EdgetlError, match=r"\(9000x8000 pixels, limit 64,000,000\). Received: the PIL image"):
        coral.classify([Image.new("1", (9_000, 8_000))])


def test_load_pixels_takes_every_kind(coral: Classifier, photo: Image.Image) -> None:
    assert np.array_equal(load_pixels(photo, coral.spec), load_pixels(np.asarray(photo), coral.spec))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"threads": 2.5}, r"threads must be in \[1, \d+\], an integer .* Received: threads=2.5"),
    ({"threads": "2"}, r"threads must be in \[1, \d+\], an integer .* Received: threads='2'"),
    ({"labels": ["cat", "dog"]}, "labels must be the path of a labels file. Received: list"),
])
def test_opening_options_of_the_wrong_type_are_one_clear_error(kwargs: dict, message: str) -> None:
    with pytest.raises(EdgetlError, match=message):
        Classifier.from_file(shared_path("coral", "mobilenet_v1_0.25_128_quant.tflite"), **kwargs)


def test_one_folder_where_a_list_is_expected_is_refused() -> None:
    from edgetl.runtime.image import expand_image_paths

    folder = shared_path("coral", "imprinting")
    with pytest.raises(EdgetlError, match="paths must be a list of files or folders; for one pass \\[path\\]"):
        expand_image_paths(str(folder))
    assert expand_image_paths([folder])


def test_a_tensor_of_the_wrong_type_or_size_is_refused_and_the_runner_still_works(coral: Classifier,
                                                                                photo: Image.Image) -> None:
    want = coral.classify([photo])
    for tensor, got in ((np.zeros((1, 128, 128, 3), np.float32), "float32 (1, 128, 128, 3)"),
                        (np.zeros((1, 64, 64, 3), np.uint8), "uint8 (1, 64, 64, 3)")):
        with pytest.raises(EdgetlError, match=re.escape(f"must be uint8 of shape (N, 128, 128, 3) for this model. "
                                                        f"Received: {got}")):
            coral.invoke_raw(tensor)
    with pytest.raises(EdgetlError, match="top_k must be an integer"):
        coral.top_k(np.zeros(1001, np.float32), 2.5)
    assert coral.classify([photo]) == want
