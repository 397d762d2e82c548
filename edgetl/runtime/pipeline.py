"""Decode photos on worker threads while the interpreter runs, results in input order.

Decoding and resizing a JPEG takes about as long as one MobileNetV2 invoke on a small CPU, and
both release the GIL (Pillow while it decodes and resamples, the interpreters while they
invoke), so a few decode threads feeding one interpreter keep every core busy. The pixels are
those of `load_pixels` called one by one: only the order of the work changes.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_WORKERS = 4
"""More decode threads than this only queue up behind the interpreter on an edge CPU."""


def decode_workers() -> int:
    """Decode threads for this machine: one per core, at most `MAX_WORKERS`."""
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def decode_ahead(load: Callable[[Item], Result], items: Iterable[Item], workers: int | None = None) -> Iterator[Result]:
    """Yield `load(item)` for each item, in order, with up to 2 x `workers` items decoded ahead.

    An exception raised by `load` comes out when its item's turn comes, exactly as in a plain
    loop; the items not yet started are then cancelled. Leaving the loop early cancels them too.

    Args:
        load: The decode function (e.g. `Classifier.load_pixels`); it must be thread-safe.
        items: What to decode.
        workers: Decode threads. Defaults to `None` (`decode_workers()`).
    """
    workers = workers or decode_workers()
    items = list(items)
    if len(items) < 2:
        yield from map(load, items)
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="edgetl-decode")
    pending: deque[Future[Result]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(load, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
