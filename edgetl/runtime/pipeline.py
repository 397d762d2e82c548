"""Work on photos on worker threads, results in input order.

Decoding and resizing a JPEG takes about as long as one MobileNetV2 invoke on a small CPU, and
both release the GIL (Pillow while it decodes and resamples, the interpreters while they
invoke). Two ways keep every core busy:
- `decode_ahead`: a few decode threads feed one interpreter (one that spreads a run over the
  cores itself, or one device);
- `map_ahead` with one interpreter per lane: each thread decodes a photo and runs it on its own
  interpreter, so single-threaded TFLite invokes run side by side.
Either way the pixels are those of `load_pixels` called one by one: only the order of the work
changes.
"""

from __future__ import annotations

import os
import queue
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Lane = TypeVar("Lane")
Result = TypeVar("Result")

MAX_WORKERS = 4
"""More threads than this only queue up behind each other on an edge CPU."""


def decode_workers() -> int:
    """Worker threads for this machine: one per core, at most `MAX_WORKERS`."""
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def interpreter_lanes(threads: int | None) -> int:
    """How many interpreters of `threads` threads each (`None`: one) fill this machine's cores."""
    return max(1, min(MAX_WORKERS, (os.cpu_count() or 1) // (threads or 1)))


def decode_ahead(load: Callable[[Item], Result], items: Iterable[Item], workers: int | None = None) -> Iterator[Result]:
    """Yield `load(item)` for each item, in order, with up to 2 x `workers` items decoded ahead.

    An exception raised by `load` comes out when its item's turn comes, exactly as in a plain
    loop; the items not yet started are then cancelled. Leaving the loop early cancels them too.

    Args:
        load: The decode function (e.g. `Classifier.load_pixels`); it must be thread-safe.
        items: What to decode.
        workers: Decode threads. Defaults to `None` (`decode_workers()`).
    """
    lanes = [None] * (workers or decode_workers())
    return map_ahead(lambda _, item: load(item), items, lanes)


def map_ahead(work: Callable[[Lane, Item], Result], items: Iterable[Item], lanes: Sequence[Lane]) -> Iterator[Result]:
    """Yield `work(lane, item)` for each item, in order, on one thread per lane (at least one).

    A lane is what a thread must not share (an interpreter): no two calls hold the same lane at
    once. Up to 2 x len(lanes) items are started ahead; errors and early exits behave as in
    `decode_ahead`.
    """
    items = list(items)
    if len(items) < 2 or len(lanes) == 1:
        yield from (work(lanes[0], item) for item in items)
        return
    free: queue.SimpleQueue[Lane] = queue.SimpleQueue()
    for lane in lanes:
        free.put(lane)

    def in_a_free_lane(item: Item) -> Result:
        lane = free.get()  # never waits long: there are as many lanes as threads
        try:
            return work(lane, item)
        finally:
            free.put(lane)

    pool = ThreadPoolExecutor(max_workers=len(lanes), thread_name_prefix="edgetl-worker")
    pending: deque[Future[Result]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(in_a_free_lane, item))
            if len(pending) >= 2 * len(lanes):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
