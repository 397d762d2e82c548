"""`python -m edgetl.runtime.remote FOLDER`: the device side of `edgetl verify/bench --device`.

The host (`edgetl.device`) starts this once per run, inside a temporary FOLDER that a shell
wrapper made and removes when this process ends, however it ends. It uses only numpy, Pillow and
the interpreters, like the rest of `edgetl.runtime`.

Protocol, one session over one pipe pair:
- stdin: one JSON line, the job (`files` with names and sizes, `mode` "verify" or "bench",
  `artefacts`, `photos`, `threads`, and for bench `runs`/`warmup`); then each file's bytes in
  that order. stdin stays open afterwards: its end means the host has gone (Ctrl-C, a dropped
  connection), and this process exits at once so that the wrapper removes FOLDER.
- stdout: JSON lines. `ready` once the upload is on disk; per artefact `opened` (its
  interpreter) or `skipped` (why); in verify mode one `photo` line per photo (every artefact's
  scores and invoke milliseconds); in bench mode one `bench` line; then `done`. A failure is one
  `error` line (`kind` "disk" when the device's disk is full) and exit code 1.

Scores travel as JSON numbers: Python's repr of a float32 widened to float64 reads back exactly.
Not thread-safe: one job per process.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from edgetl.errors import EdgetlError

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,200}$")
_CHUNK = 1 << 20


def emit(event: str, **fields: Any) -> None:
    """Write one JSON line to the host; a host that has gone ends this process."""
    try:
        sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, OSError):
        os._exit(3)


def receive(stream: IO[bytes], folder: Path) -> dict[str, Any]:
    """Read the job line and every file after it into `folder`; the job."""
    job = json.loads(stream.readline().decode("utf-8"))
    for entry in job["files"]:
        name, size = str(entry["name"]), int(entry["size"])
        if not _SAFE_NAME.match(name) or name in (".", ".."):
            raise EdgetlError(f"Refused a file name from the host: {name!r}")
        with open(folder / name, "xb") as out:
            left = size
            while left:
                chunk = stream.read(min(left, _CHUNK))
                if not chunk:
                    raise EdgetlError("The upload ended early: the host stopped sending.")
                out.write(chunk)
                left -= len(chunk)
    return job


def _watch_host(stream: IO[bytes]) -> None:
    """End this process when stdin closes: the host is gone and FOLDER must go with it."""
    while stream.read(_CHUNK):
        pass
    os._exit(3)


def open_artefacts(folder: Path, names: list[str], threads: int | None) -> dict[str, Any]:
    """Open each artefact; one that this device cannot run is reported `skipped` with the reason."""
    from edgetl.runtime.backends import interpreter_version
    from edgetl.runtime.classifier import Classifier

    opened = {}
    for name in names:
        try:
            clf = Classifier.from_file(folder / name, threads=threads)
        except EdgetlError as e:
            emit("skipped", name=name, reason=str(e))
            continue
        opened[name] = clf
        emit("opened", name=name, interpreter=interpreter_version(clf.backend))
    return opened


def run_verify(folder: Path, job: dict[str, Any]) -> None:
    """Decode each photo file here (once per input spec) and run every artefact on it, timing the invoke."""
    import numpy as np

    from edgetl.runtime.image import load_pixels

    opened = open_artefacts(folder, job["artefacts"], job.get("threads"))
    for index, photo in enumerate(job["photos"]):
        decoded: dict[Any, np.ndarray] = {}
        scores, ms = {}, {}
        for name, clf in opened.items():
            if clf.spec not in decoded:
                decoded[clf.spec] = load_pixels(folder / photo, clf.spec)[None]
            start = time.perf_counter()
            out = clf.run_pixels(decoded[clf.spec])
            ms[name] = (time.perf_counter() - start) * 1e3
            scores[name] = [float(x) for x in out[0]]
        emit("photo", index=index, scores=scores, ms=ms)


def run_bench(folder: Path, job: dict[str, Any]) -> None:
    """`edgetl.runtime.benchmark` on the device, on the uploaded photos when there are any."""
    from edgetl.runtime.benchmark import benchmark

    opened = open_artefacts(folder, job["artefacts"], job.get("threads"))
    for clf in opened.values():
        report = benchmark(clf, runs=int(job["runs"]), warmup=int(job["warmup"]),
                           photos=[folder / photo for photo in job["photos"]])
        emit("bench", report=report.to_dict())


def main(argv: list[str] | None = None) -> int:
    """Receive the upload into FOLDER, run the job, stream the results; the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: python -m edgetl.runtime.remote FOLDER (started by `edgetl verify --device`)", file=sys.stderr)
        return 2
    folder, stream = Path(args[0]), sys.stdin.buffer
    try:
        job = receive(stream, folder)
        (folder / "worker.pid").write_text(str(os.getpid()))
        threading.Thread(target=_watch_host, args=(stream,), daemon=True, name="edgetl-watch-host").start()
        emit("ready")
        (run_bench if job.get("mode") == "bench" else run_verify)(folder, job)
    except OSError as e:
        kind = "disk" if e.errno in (errno.ENOSPC, errno.EDQUOT) else "os"
        emit("error", kind=kind, message=f"{e.strerror or e} in {folder}")
        return 1
    except (EdgetlError, ValueError, KeyError) as e:
        emit("error", kind="input", message=str(e))
        return 1
    emit("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
