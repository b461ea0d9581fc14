"""The event-loop batching the gateway relies on (sharing/batching.py): work handed to a background thread leaves the
loop free, passes handed over while the thread is busy go out together, and every waiter gets its own result or the
error."""
from __future__ import annotations

import asyncio
import threading

import pytest

from sharing.batching import ThreadedPass


def test_threaded_pass_leaves_the_loop_free_and_sends_waiting_passes_together():
    calls: list[list[int]] = []
    release = threading.Event()

    def work(items: list[int]) -> list[int]:
        calls.append(list(items))
        if len(calls) == 1:
            assert release.wait(5)
        return [i * 10 for i in items]

    threaded = ThreadedPass(work, "test-work")

    async def main() -> list[int]:
        first = [asyncio.ensure_future(threaded.add(i)) for i in (1, 2, 3)]
        await asyncio.sleep(0.05)  # the loop keeps running while the thread waits in `work`
        assert calls == [[1, 2, 3]] and not any(f.done() for f in first)
        second = [asyncio.ensure_future(threaded.add(i)) for i in (4, 5)]
        await asyncio.sleep(0.01)  # another pass
        third = [asyncio.ensure_future(threaded.add(i)) for i in (6, 7)]
        await asyncio.sleep(0.01)
        release.set()
        return await asyncio.gather(*first, *second, *third)

    assert asyncio.run(main()) == [10, 20, 30, 40, 50, 60, 70]
    assert calls == [[1, 2, 3], [4, 5, 6, 7]]  # the two passes queued behind the first went out in one call


def test_threaded_pass_works_a_lone_item_on_the_loop_itself():
    where: list[int] = []

    def work(items: list[int]) -> list[int]:
        where.append(threading.get_ident())
        return [i + 1 for i in items]

    threaded = ThreadedPass(work, "test-work")

    async def main() -> list[int]:
        alone = await threaded.add(1)
        together = await asyncio.gather(threaded.add(2), threaded.add(3))
        return [alone, *together]

    assert asyncio.run(main()) == [2, 3, 4]
    assert where[0] == threading.get_ident() and where[1] != threading.get_ident()


def test_threaded_pass_error_reaches_every_waiter_and_the_thread_goes_on():
    outcomes = iter([RuntimeError("redis down"), None])

    def work(items: list[str]) -> list[str]:
        failure = next(outcomes)
        if failure:
            raise failure
        return [s.upper() for s in items]

    threaded = ThreadedPass(work, "test-work")

    async def main() -> None:
        results = await asyncio.gather(threaded.add("a"), threaded.add("b"), return_exceptions=True)
        assert [str(r) for r in results] == ["redis down", "redis down"]
        assert await asyncio.gather(threaded.add("c"), threaded.add("d")) == ["C", "D"]

    asyncio.run(main())


def test_threaded_pass_delivers_on_each_callers_own_loop():
    seen: list[int] = []

    def deliver(batch, results):  # noqa: ANN001, ANN202
        seen.append(threading.get_ident())
        for (_item, waiter), result in zip(batch, results):
            waiter.set_result(result)

    threaded = ThreadedPass(lambda items: list(items), "test-work", deliver)  # two loops' passes may share a call

    def in_new_loop() -> int:
        async def call() -> list[int]:
            return await asyncio.gather(*(threaded.add(threading.get_ident()) for _ in range(2)))
        mine = asyncio.run(call())
        assert mine == [threading.get_ident()] * 2  # its own results, whatever else went out in the same call
        return mine[0]

    idents: list[int] = []
    threads = [threading.Thread(target=lambda: idents.append(in_new_loop())) for _ in range(2)]
    for t in threads:  # both alive at once, so their idents differ
        t.start()
    for t in threads:
        t.join(5)
    assert sorted(seen) == sorted(idents) and len(set(idents)) == 2


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
