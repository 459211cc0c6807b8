"""`Idle`: one timer for a whole body or download, and only its own cancel is a timeout."""

from __future__ import annotations

import asyncio

import pytest

from app.http.streaming import Idle


def test_one_wait_longer_than_the_idle_time_times_out():
    async def main():
        with Idle(0.05) as idle, pytest.raises(TimeoutError):
            await idle.guard(asyncio.sleep(5))
        return asyncio.current_task().cancelling()

    assert asyncio.run(main()) == 0  # nothing left pending on the task


def test_short_waits_adding_up_past_the_idle_time_do_not():
    async def main():
        with Idle(0.05) as idle:
            for _ in range(20):  # 0.2 s in all, never 0.05 s at once
                await idle.guard(asyncio.sleep(0.01))
            await asyncio.sleep(0.1)  # not waiting on the guard: not idle either
            return await idle.guard(asyncio.sleep(0, "done"))

    assert asyncio.run(main()) == "done"


def test_a_cancel_from_outside_stays_a_cancel():
    async def guarded():
        with Idle(5) as idle:
            await idle.guard(asyncio.sleep(5))

    async def main():
        task = asyncio.create_task(guarded())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_a_cancel_from_outside_at_the_deadline_is_not_taken_for_a_timeout():
    async def guarded(started: asyncio.Event):
        with Idle(0.05) as idle:
            started.set()
            await idle.guard(asyncio.sleep(5))

    async def main():
        started = asyncio.Event()
        task = asyncio.create_task(guarded(started))
        await started.wait()
        await asyncio.sleep(0.049)
        task.cancel()  # whichever comes first, the outside cancel must win
        await asyncio.sleep(0.01)
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_a_wait_that_swallows_the_cancel_leaves_the_task_clean():
    async def stubborn():
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return "swallowed"

    async def main():
        with Idle(0.05) as idle:
            got = await idle.guard(stubborn())
            later = await idle.guard(asyncio.sleep(0.01, "later"))  # no stray cancel arrives
        return got, later, asyncio.current_task().cancelling()

    assert asyncio.run(main()) == ("swallowed", "later", 0)
