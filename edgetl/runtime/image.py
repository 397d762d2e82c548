"""Decoding and resizing photos exactly as training did: the one image path of edgetl.

Training (`edgetl.data`), verification, the device runtime and the golden vectors all call
these functions, and the Android demo ports `resize_bilinear` bit for bit, so a photo becomes the
same uint8 tensor everywhere. Only numpy and Pillow are used.
"""

from __future__ import annotations

import os
import re
import threading
import warnings
from collections.abc import Callable, Sequence
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


ImageSource = str | Path | Image.Image | np.ndarray
"""What `load_image` takes: a photo's path, a PIL image, or a numpy array of pixels."""


def load_image(source: ImageSource) -> Image.Image:
    """Decode a photo to an upright 8-bit RGB image: the one conversion of every input kind.

    A path is opened and decoded; a PIL image and a numpy array take the same steps from there,
    so a photo gives the same pixels whichever way it comes. EXIF orientation is applied;
    grayscale, palette (with transparency too), LA, RGBA, CMYK and 16-bit images are converted
    to RGB (alpha is dropped, 16-bit values are scaled to 8 bits). A numpy array is read as
    `PIL.Image.fromarray` reads it: uint8 (H, W) gray, (H, W, 2) LA, (H, W, 3) RGB or
    (H, W, 4) RGBA, or uint16 (H, W) 16-bit gray.

    Raises:
        EdgetlError: if the file is missing, a directory, not an image, truncated or too large, or
            the array or object is not an image.
    """
    if isinstance(source, (Image.Image, np.ndarray)):
        name = "the PIL image" if isinstance(source, Image.Image) else f"a {source.dtype} array {source.shape}"
        img = source if isinstance(source, Image.Image) else _array_image(source)
        return _decoded(lambda: _upright_rgb(img, name), name)
    if not isinstance(source, (str, Path)):
        raise EdgetlError(
            f"An image must be a path, a PIL image or a numpy array of pixels. Received: {type(source).__name__}"
        )
    path = Path(source)
    if path.is_dir():
        raise EdgetlError(f"Expected an image file, got a directory. Received: {path}")
    check_regular_file(path, "Image file")

    def decode() -> Image.Image:
        with _open_image(path) as img:
            return _upright_rgb(img, str(path))

    return _decoded(decode, str(path))


def _decoded(decode: Callable[[], Image.Image], name: str) -> Image.Image:
    """Run `decode`; Pillow's and the file system's errors become one `EdgetlError` naming `name`."""
    try:
        return decode()
    except FileNotFoundError as e:
        raise EdgetlError(f"Image file not found. Received: {name}") from e
    except Image.DecompressionBombError as e:  # over Pillow's own hard limit: not even opened
        raise EdgetlError(
            f"Image is too large to decode safely ({_bomb_size(e)}, limit {MAX_IMAGE_PIXELS:,}). Received: {name}"
        ) from e
    except UnidentifiedImageError as e:
        raise EdgetlError(f"Not a readable image. Received: {name}") from e
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt data
        raise EdgetlError(f"Image is corrupt or truncated ({e}). Received: {name}") from e


def _upright_rgb(img: Image.Image, name: str) -> Image.Image:
    """Size check, decode, EXIF rotation and RGB conversion: the steps every input kind shares."""
    width, height = img.size
    if width * height > MAX_IMAGE_PIXELS:
        raise EdgetlError(
            f"Image is too large to decode safely ({width}x{height} pixels, limit {MAX_IMAGE_PIXELS:,}). "
            f"Received: {name}"
        )
    img.load()
    return _to_rgb(ImageOps.exif_transpose(img))


def _open_image(path: Path) -> Image.Image:
    """`Image.open` (it reads the header only) with Pillow's decompression-bomb warning silenced.

    Our own limit (`MAX_IMAGE_PIXELS`, below Pillow's) is checked on the real width and height
    before decoding. `warnings.catch_warnings` swaps process-wide state, so decode threads
    (`edgetl.runtime.pipeline`) take turns here; the decoding itself runs outside the lock.
    """
    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(path)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(img, dtype=np.float64)
        # A 16-bit image is always scaled; a 32-bit 'I' one when its values say they are 16-bit.
        scale = 257.0 if img.mode != "I" or wide.max(initial=0) > 255 else 1.0
        narrow = np.clip(np.rint(wide / scale), 0, 255).astype(np.uint8)
        return Image.fromarray(narrow).convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert("RGB")


def _array_image(pixels: np.ndarray) -> Image.Image:
    """A numpy array as Pillow reads it, or one clear error for what is not an image."""
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    unsigned = pixels.dtype.kind == "u"
    gray = pixels.ndim == 2 and unsigned and pixels.dtype.itemsize in (1, 2)  # either byte order
    colour = pixels.ndim == 3 and pixels.shape[2] in (2, 3, 4) and unsigned and pixels.dtype.itemsize == 1
    if not (gray or colour) or 0 in pixels.shape:
        raise EdgetlError(
            "A numpy image must be uint8 (H, W), (H, W, 1), (H, W, 2), (H, W, 3) or (H, W, 4), or uint16 "
            f"(H, W). Received: {pixels.dtype} array of shape {pixels.shape}"
        )
    return Image.fromarray(np.ascontiguousarray(pixels))


def _bomb_size(error: Image.DecompressionBombError) -> str:
    """The pixel count Pillow measured in the header, from its message (it gives no width and height)."""
    found = re.search(r"\((\d+) pixels\)", str(error))
    return f"{int(found.group(1)):,} pixels" if found else "over Pillow's limit"


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


def load_pixels(source: ImageSource, spec: PreprocessingSpec) -> np.ndarray:
    """Decode a photo (a path, a PIL image or a numpy array) to its uint8 pixels for `spec` (H, W, 3)."""
    return image_to_pixels(load_image(source), spec)


def is_image_file(path: Path) -> bool:
    """True for a regular file whose name says it is an image (content is checked on load)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def expand_image_paths(paths: Sequence[str | Path]) -> list[Path]:
    """The photos to classify: files as given, and every photo below each folder.

    A folder is searched recursively, hidden files and folders skipped, in sorted order of the
    path below it, so the output order is the same on every device.

    Raises:
        EdgetlError: if a folder holds no photo, or `paths` is one path instead of a list.
    """
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise EdgetlError(f"paths must be a list of files or folders; for one pass [path]. Received: {paths!r}")
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
