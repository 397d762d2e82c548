"""`edgetl verify` against the same verify run one step at a time (issue 16 target: <= 0.5x).

The naive side is today's order of work: load the Keras model, decode the photos one by one,
run the float model, then each artefact after the other. It is the same code with one worker
thread and no background load, so the two sides differ only in overlap. Both run in one process, repetitions interleaved, median kept;
their reports must be identical but for the latency figures.

    python bench/verify_speed.py RUN_DIR [--data DIR] [--repeats 3]
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from runtime_overhead import cpu_name

from edgetl.verify import verify

PIPELINE = importlib.import_module("edgetl.runtime.pipeline")
VERIFY = importlib.import_module("edgetl.verify")  # the module: `edgetl.verify` is also the function

TARGET = 0.5
LATENCY_FIELDS = ("latency_ms_p50", "latency_ms_p95")


def one_worker() -> int:
    return 1


def at_once(fn: Callable[..., Any], *args: Any) -> Future:
    """`_in_background` made sequential: the call is done before the caller moves on."""
    future: Future = Future()
    future.set_result(fn(*args))
    return future


def timed_verify(run: Path, data: Path | None, *, sequential: bool) -> tuple[float, dict[str, Any]]:
    """Seconds and the report (latency figures dropped) of one verify, threaded or one step at a time."""
    workers, background = VERIFY.decode_workers, VERIFY._in_background
    if sequential:
        VERIFY.decode_workers = PIPELINE.decode_workers = one_worker
        VERIFY._in_background = at_once
    try:
        start = time.perf_counter()
        report = verify(run, data=data, write=False).to_dict()
        seconds = time.perf_counter() - start
    finally:
        VERIFY.decode_workers = PIPELINE.decode_workers = workers
        VERIFY._in_background = background
    for record in [report["reference"], *report["artefacts"]]:
        for name in LATENCY_FIELDS:
            record.pop(name)
    return seconds, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="A RUN_DIR with model.keras and export/.")
    parser.add_argument("--data", type=Path, help="Labelled test folder (default: the run's test split).")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    timed_verify(args.run, args.data, sequential=False)  # warm-up: imports, first model load
    times: dict[str, list[float]] = {"ours": [], "naive": []}
    reports = {}
    for i in range(args.repeats):
        for name in (("ours", "naive") if i % 2 == 0 else ("naive", "ours")):
            seconds, reports[name] = timed_verify(args.run, args.data, sequential=name == "naive")
            times[name].append(seconds)
    ours, naive = statistics.median(times["ours"]), statistics.median(times["naive"])
    print(json.dumps({
        "cpu": cpu_name(),
        "run": str(args.run),
        "images": reports["ours"]["images"],
        "artefacts": len(reports["ours"]["artefacts"]),
        "repeats": args.repeats,
        "ours_s": ours,
        "naive_s": naive,
        "ratio": ours / naive,
        "identical_results": reports["ours"] == reports["naive"],
        "target": TARGET,
        "meets_target": ours / naive <= TARGET and reports["ours"] == reports["naive"],
    }, indent=2))


if __name__ == "__main__":
    main()
