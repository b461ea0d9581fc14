"""Work gathered over one pass of an event loop and handed over together at the start of the next pass.

The gateway's requests each do a little synchronous work and then wait on something shared — a Redis round trip, an
audit commit. Gathering what the requests of one pass ask for turns N waits into one (the group-commit idea): the
audit writer commits the pass's entries together, the quota goes to Redis as one pipeline.
"""
from __future__ import annotations

import asyncio
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
