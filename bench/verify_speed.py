"""`edgetl verify` against the same verify run one step at a time (issue 16 target: <= 0.5x).

The naive side is the order of work before issue 16: load the Keras model and run it on the
photos (the float scores export recorded in `reference.json` are ignored), decode the photos
one by one, then run each artefact after the other. It is the same code with one worker thread,
no background load and no recorded scores, so the two sides differ only in overlap and in the
float model's work. Two measurements, repetitions interleaved, medians kept:
  - from the command line (what a user waits for, and the target): `edgetl verify RUN --json`
    against the naive side as a fresh process too, start-up included on both sides;
  - in-process, imports warmed up first: only the work after start-up.
Both sides' reports must be identical but for the latency figures and where the float scores
came from.

    python bench/verify_speed.py RUN_DIR [--data DIR] [--repeats 3]
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from runtime_overhead import cpu_name

from edgetl.verify import verify

PIPELINE = importlib.import_module("edgetl.runtime.pipeline")
VERIFY = importlib.import_module("edgetl.verify")  # the module: `edgetl.verify` is also the function
RECORDED = importlib.import_module("edgetl.verify.float_reference")

TARGET = 0.5
LATENCY_FIELDS = ("latency_ms_p50", "latency_ms_p95")


def one_worker() -> int:
    return 1


def not_recorded(*_: Any) -> None:
    """`float_reference.lookup` that finds nothing: the float model runs."""
    return None


def at_once(fn: Callable[..., Any], *args: Any) -> Future:
    """`_in_background` made sequential: the call is done before the caller moves on."""
    future: Future = Future()
    future.set_result(fn(*args))
    return future


@contextmanager
def one_step_at_a_time() -> Iterator[None]:
    """verify with one worker thread, no background load and no recorded float scores."""
    saved = VERIFY.decode_workers, PIPELINE.decode_workers, VERIFY._in_background, RECORDED.lookup
    VERIFY.decode_workers = PIPELINE.decode_workers = one_worker
    VERIFY._in_background, RECORDED.lookup = at_once, not_recorded
    try:
        yield
    finally:
        VERIFY.decode_workers, PIPELINE.decode_workers, VERIFY._in_background, RECORDED.lookup = saved


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """The report without its latency figures and the float scores' origin."""
    report["reference"].pop("scores_from")
    for record in [report["reference"], *report["artefacts"]]:
        for name in LATENCY_FIELDS:
            record.pop(name)
    return report


def timed_verify(run: Path, data: Path | None, *, sequential: bool) -> tuple[float, dict[str, Any]]:
    """Seconds and the comparable report of one verify in this process, threaded or one step at a time."""
    with one_step_at_a_time() if sequential else nullcontext():
        start = time.perf_counter()
        report = verify(run, data=data, write=False).to_dict()
        seconds = time.perf_counter() - start
    return seconds, comparable(report)


def timed_cli(command: list[str]) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):  # 1: an artefact failed parity, still a report
        raise SystemExit(f"{command[:4]} exited {done.returncode}")
    return seconds, comparable(json.loads(done.stdout))


def side_by_side(ours: Callable[[], tuple[float, dict]], naive: Callable[[], tuple[float, dict]],
                 repeats: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {"ours": [], "naive": []}
    reports = {}
    sides = {"ours": ours, "naive": naive}
    for i in range(repeats):
        for name in (("ours", "naive") if i % 2 == 0 else ("naive", "ours")):
            seconds, reports[name] = sides[name]()
            times[name].append(seconds)
    ours_s, naive_s = statistics.median(times["ours"]), statistics.median(times["naive"])
    return {"ours_s": ours_s, "naive_s": naive_s, "ratio": ours_s / naive_s,
            "identical_results": reports["ours"] == reports["naive"], "images": reports["ours"]["images"],
            "artefacts": len(reports["ours"]["artefacts"])}


def main() -> None:
    if sys.argv[1:2] == ["--naive-cli"]:  # the naive side from the command line
        from edgetl.cli import main as cli

        sys.argv = ["edgetl", "verify", *sys.argv[2:]]
        with one_step_at_a_time():
            cli()
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="A RUN_DIR with model.keras and export/.")
    parser.add_argument("--data", type=Path, help="Labelled test folder (default: the run's held-out photos).")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    options = [str(args.run), "--json", *(["--data", str(args.data)] if args.data else [])]
    from_cli = side_by_side(
        lambda: timed_cli([sys.executable, "-c", "from edgetl.cli import main; main()", "verify", *options]),
        lambda: timed_cli([sys.executable, __file__, "--naive-cli", *options]),
        args.repeats,
    )
    for sequential in (False, True):  # warm-up: imports, first model load
        timed_verify(args.run, args.data, sequential=sequential)
    in_process = side_by_side(lambda: timed_verify(args.run, args.data, sequential=False),
                              lambda: timed_verify(args.run, args.data, sequential=True), args.repeats)
    print(json.dumps({
        "cpu": cpu_name(),
        "run": str(args.run),
        "repeats": args.repeats,
        "cli": from_cli,
        "in_process": in_process,
        "target": TARGET,
        "meets_target": from_cli["ratio"] <= TARGET and from_cli["identical_results"]
        and in_process["identical_results"],
    }, indent=2))


if __name__ == "__main__":
    main()
