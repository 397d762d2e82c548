"""The float model's scores on the run's held-out photos: recorded by export, reused by verify.

verify compares every artefact with the Keras model on the same photos. Importing TensorFlow,
loading model.keras and running it were most of verify's time (about 10 of 16 s on a 2-core
CPU). export has the model loaded anyway, and a core to spare while its worker process
finishes, so it records the scores there: `reference.json` in the export folder, listed in the
manifest. verify uses them when export.json vouches for model.keras and for the file, and every
photo it compares is recorded with the same SHA-256; otherwise it runs the model itself. The
scores are computed as verify computes them (`predict`: batches of 32 in the held-out order), so
the report is the same either way.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgetl.errors import EdgetlError
from edgetl.runtime.image import load_pixels
from edgetl.runtime.pipeline import decode_ahead
from edgetl.spec import PreprocessingSpec, write_text_atomic

FILE = "reference.json"
BATCH = 32
LATENCY_RUNS = 20
"""Timed runs per artefact (the float model gets `KERAS_LATENCY_RUNS`: each takes longer)."""
KERAS_LATENCY_RUNS = 10
MAX_SCORES = 2_000_000
"""More photos x classes than this are not recorded (the file would pass 40 MB): verify runs the model."""
MAX_PIXEL_BYTES = 512 * 2**20
"""Nor more photos than this many bytes of decoded pixels (3,500 photos at 224 x 224): export
does not take verify's memory for a large held-out set."""


def predict(model: Any, pixels: np.ndarray) -> np.ndarray:
    """The Keras model's scores (N, C) for uint8 pixels (N, H, W, 3), in batches of `BATCH`.

    A short last batch is padded with black photos (their scores dropped): one batch shape is
    one graph trace, where a second shape cost another second or two.
    """
    out = []
    for i in range(0, len(pixels), BATCH):
        batch = pixels[i : i + BATCH].astype(np.float32)
        padded = np.zeros((BATCH, *batch.shape[1:]), np.float32) if len(batch) < BATCH <= len(pixels) else None
        if padded is not None:
            padded[: len(batch)] = batch
        out.append(np.asarray(model.predict_on_batch(batch if padded is None else padded))[: len(batch)])
    return np.concatenate(out).astype(np.float32)


def latency(fn: Callable[[np.ndarray], Any], one: np.ndarray, runs: int = LATENCY_RUNS) -> tuple[float, float]:
    """p50 and p95 milliseconds of `fn(one)` over `runs` calls, after two warm-up calls."""
    for _ in range(2):
        fn(one)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(one)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def keras_latency(model: Any, pixels: np.ndarray) -> tuple[float, float]:
    return latency(lambda x: model.predict_on_batch(x), pixels[:1].astype(np.float32), runs=KERAS_LATENCY_RUNS)


def decode(paths: Sequence[Path], spec: PreprocessingSpec) -> tuple[np.ndarray | None, list[int], list[str]]:
    """Decode photos on threads: (pixels of the readable ones, their indices, one note per unreadable one)."""
    pixels, kept, bad = [], [], []
    for i, decoded in enumerate(decode_ahead(lambda path: _pixels_or_error(path, spec), paths)):
        if isinstance(decoded, EdgetlError):
            bad.append(f"{Path(paths[i]).name} ({decoded})")
        else:
            pixels.append(decoded)
            kept.append(i)
    return (np.stack(pixels) if pixels else None), kept, bad


def record(folder: Path, model: Any, photos: Sequence[Path], spec: PreprocessingSpec, num_classes: int) -> Path | None:
    """Write `folder/reference.json` with the model's scores on `photos`; None when there is nothing to record."""
    height, width = spec.image_size
    if not photos or len(photos) * num_classes > MAX_SCORES or len(photos) * height * width * 3 > MAX_PIXEL_BYTES:
        return None
    pixels, kept, _ = decode(photos, spec)
    if pixels is None:
        return None
    scores = predict(model, pixels)
    p50, p95 = keras_latency(model, pixels)
    document = {
        "photos": [{"path": str(photos[i]), "sha256": _sha256(photos[i])} for i in kept],
        "scores": scores.tolist(),
        "latency_ms_p50": p50,
        "latency_ms_p95": p95,
    }
    path = Path(folder) / FILE
    write_text_atomic(path, json.dumps(document, allow_nan=True))
    return path


def lookup(export_dir: Path, photos: Sequence[Path]) -> tuple[np.ndarray, tuple[float, float]] | None:
    """The recorded scores (N, C) of `photos`, in their order, and the float model's latency; None on any miss.

    The caller has checked `reference.json` against the export manifest.
    """
    try:
        document = json.loads((Path(export_dir) / FILE).read_text(encoding="utf-8"))
        rows = {(entry["path"], entry["sha256"]): i for i, entry in enumerate(document["photos"])}
        scores = np.asarray(document["scores"], dtype=np.float32)
        wanted = [rows.get((str(photo), _sha256(photo))) for photo in photos]
        latency_ms = (float(document["latency_ms_p50"]), float(document["latency_ms_p95"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not photos or None in wanted or scores.ndim != 2 or len(scores) != len(rows):
        return None
    return scores[wanted], latency_ms


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def _pixels_or_error(path: Path, spec: PreprocessingSpec) -> np.ndarray | EdgetlError:
    try:
        return load_pixels(path, spec)
    except EdgetlError as e:
        return e
