"""Work gathered over one pass of an event loop and handed over together at the start of the next pass.

The gateway's requests each do a little synchronous work and then wait on something shared — a Redis round trip, an
audit commit. Gathering what the requests of one pass ask for turns N waits into one (the group-commit idea): the
audit writer commits the pass's entries together, the quota goes to Redis as one pipeline.
"""
from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

Batch = list[tuple[Any, "asyncio.Future[Any]"]]


class PerLoopPass:
    """`await add(item)` resolves to what `flush` sets on the item's future; `flush(batch)` receives every (item,
    future) added on one event loop during one pass, once, at the start of the next pass, and must settle each
    future that is not done (a request that went away has cancelled its own)."""

    def __init__(self, flush: Callable[[Batch], None]):
        self._flush = flush
        self._batches: dict[asyncio.AbstractEventLoop, Batch] = {}

    async def add(self, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        batch = self._batches.get(loop)
        if batch is None:
            batch = self._batches[loop] = []
            loop.call_soon(self._hand_over, loop)
        batch.append((item, waiter))
        return await waiter

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._batches.pop(loop, [])
        if batch:
            self._flush(batch)


def settle(batch: Batch, results: list[Any]) -> None:
    """Give each waiting future its result, or raise its exception (a result that is an exception); a future that
    is already done (its request went away) is left alone."""
    for (_item, waiter), result in zip(batch, results):
        if waiter.done():
            continue
        if isinstance(result, BaseException):
            waiter.set_exception(result)
        else:
            waiter.set_result(result)


class ThreadedPass:
    """A PerLoopPass whose work — `work(items) -> results`, blocking — runs on one background thread, so the event
    loop goes on serving while it waits (a Redis round trip: the loop used to sit in `recv` for it, bench/gateway.py).
    Passes handed over while the thread is busy go out together in its next call; a pass of one item is worked on
    the loop itself. Results reach each waiting future through `deliver(batch, results)` on the future's own loop
    (default: `settle`)."""

    def __init__(self, work: Callable[[list[Any]], list[Any]], name: str,
                 deliver: Callable[[Batch, list[Any]], None] = settle):
        self._work = work
        self._deliver = deliver
        self._name = name
        self._pass = PerLoopPass(self._hand_to_thread)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = -1
        self._queue: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, Batch]] = queue.SimpleQueue()

    async def add(self, item: Any) -> Any:
        return await self._pass.add(item)

    def _hand_to_thread(self, batch: Batch) -> None:
        if len(batch) == 1:
            # A pass with one call (a lone request) is served here: the two thread wake-ups cost it more than the
            # wait they spare the loop (~0.3 ms each way on this kind of VM, bench/gateway.py).
            self._deliver(batch, self._worked([batch[0][0]]))
            return
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._thread is None or self._pid != os.getpid():  # a forked child starts its own thread
                self._queue = queue.SimpleQueue()
                self._thread = threading.Thread(target=self._run, args=(self._queue,), name=self._name, daemon=True)
                self._pid = os.getpid()
                self._thread.start()
            self._queue.put((loop, batch))

    def _worked(self, items: list[Any]) -> list[Any]:
        try:
            return self._work(items)
        except BaseException as exc:  # noqa: BLE001 - every waiting request learns it
            return [exc] * len(items)

    def _run(self, q: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, Batch]]) -> None:
        while True:
            jobs = [q.get()]
            while True:
                try:
                    jobs.append(q.get_nowait())
                except queue.Empty:
                    break
            results = self._worked([item for _loop, batch in jobs for item, _waiter in batch])
            start = 0
            for loop, batch in jobs:
                part, start = results[start:start + len(batch)], start + len(batch)
                try:
                    loop.call_soon_threadsafe(self._deliver, batch, part)
                except RuntimeError:  # that loop is closed: nobody waits any more
                    pass
