"""Decoding and resizing photos exactly as training did: the one image path of edgetl.

Training (`edgetl.data`), verification, the device runtime and the golden vectors all call
these functions, and the Android demo ports `resize_bilinear` bit for bit, so a photo becomes the
same uint8 tensor everywhere. Only numpy and Pillow are used.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from edgetl.errors import EdgetlError
from edgetl.spec import PreprocessingSpec, check_regular_file

MAX_IMAGE_PIXELS = 64_000_000
"""Larger images are refused: a 64-megapixel photo is already beyond any phone camera, and
decoding a crafted 'decompression bomb' would exhaust a small device's memory."""

_OPEN_LOCK = threading.Lock()

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def load_image(path: str | Path) -> Image.Image:
    """Decode a photo to an upright 8-bit RGB image.

    EXIF orientation is applied; grayscale, palette, RGBA, CMYK and 16-bit images are converted
    to RGB (alpha is dropped, 16-bit values are scaled to 8 bits).

    Raises:
        EdgetlError: if the file is missing, a directory, not an image, truncated or too large.
    """
    path = Path(path)
    if path.is_dir():
        raise EdgetlError(f"Expected an image file, got a directory. Received: {path}")
    check_regular_file(path, "Image file")
    try:
        with _open_image(path) as img:
            width, height = img.size
            if width * height > MAX_IMAGE_PIXELS:
                raise EdgetlError(
                    f"Image is too large to decode safely ({width}x{height} pixels, limit "
                    f"{MAX_IMAGE_PIXELS:,}). Received: {path}"
                )
            img.load()
            return _to_rgb(ImageOps.exif_transpose(img))
    except EdgetlError:
        raise
    except FileNotFoundError as e:
        raise EdgetlError(f"Image file not found. Received: {path}") from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:  # over Pillow's own limit
        raise EdgetlError(
            f"Image is too large to decode safely (over {Image.MAX_IMAGE_PIXELS:,} pixels, limit "
            f"{MAX_IMAGE_PIXELS:,}). Received: {path}"
        ) from e
    except UnidentifiedImageError as e:
        raise EdgetlError(f"Not a readable image. Received: {path}") from e
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt data
        raise EdgetlError(f"Image is corrupt or truncated ({e}). Received: {path}") from e


def _open_image(path: Path) -> Image.Image:
    """`Image.open` (it reads the header only) with Pillow's decompression-bomb warning raised.

    `warnings.catch_warnings` swaps process-wide state, so decode threads
    (`edgetl.runtime.pipeline`) take turns here; the decoding itself runs outside the lock.
    """
    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(path)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(img, dtype=np.float64)
        scale = 257.0 if wide.max(initial=0) > 255 else 1.0  # 16-bit data in a 32-bit 'I' image too
        narrow = np.clip(np.rint(wide / scale), 0, 255).astype(np.uint8)
        return Image.fromarray(narrow).convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert("RGB")


def resize_bilinear(img: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """Resize to (height, width) with Pillow's bilinear filter and return uint8 HWC RGB.

    Pillow's bilinear filter widens its support when shrinking (an antialiasing filter), so a
    12-megapixel photo and its thumbnail give nearly the same tensor. The Android demo ports this
    exact algorithm (`android_demo/core`), checked against golden vectors.
    """
    height, width = size
    if img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def image_to_pixels(img: Image.Image, spec: PreprocessingSpec) -> np.ndarray:
    """Return the uint8 pixels (H, W, 3) in the spec's size and colour order."""
    pixels = resize_bilinear(img, spec.image_size)
    return pixels[..., ::-1].copy() if spec.color_order == "BGR" else pixels


def load_pixels(path: str | Path, spec: PreprocessingSpec) -> np.ndarray:
    """Decode a photo and return its uint8 pixels ready for `spec` (H, W, 3)."""
    return image_to_pixels(load_image(path), spec)


def is_image_file(path: Path) -> bool:
    """True for a regular file whose name says it is an image (content is checked on load)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def expand_image_paths(paths: Sequence[str | Path]) -> list[Path]:
    """The photos to classify: files as given, and every photo below each folder.

    A folder is searched recursively, hidden files and folders skipped, in sorted order of the
    path below it, so the output order is the same on every device.

    Raises:
        EdgetlError: if a folder holds no photo.
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            found.append(path)  # a missing or unreadable file is reported when it is loaded
            continue
        photos = sorted(
            (
                p for p in path.rglob("*")
                if is_image_file(p) and not any(part.startswith(".") for part in p.relative_to(path).parts)
            ),
            key=lambda p: p.relative_to(path).parts,
        )
        if not photos:
            raise EdgetlError(f"The folder holds no photos ({', '.join(sorted(IMAGE_SUFFIXES))}). Received: {path}")
        found.extend(photos)
    return found
