"""What a server process keeps per event loop: its long-lived objects, and
the background tasks they stop."""

import asyncio
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    """One T per running event loop, made on first use: one per server
    process, and one per test (each test has a loop of its own)."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        if loop not in self._by_loop:
            self._by_loop[loop] = self._factory()
        return self._by_loop[loop]

    def forget(self) -> None:
        """Drop the running loop's T (it was closed): the next get() makes anew."""
        self._by_loop.pop(asyncio.get_running_loop(), None)


async def stop(*tasks: "asyncio.Task[None]") -> None:
    """Cancel tasks and return once each is over, so that nothing it was
    doing (a write under way) happens after the caller moves on. A task that
    failed is over too; its exception is left to it."""
    for task in tasks:
        # A cancellation can be swallowed inside the Redis client (its read
        # timeout races it), so insist until the task is over.
        while not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=0.5)
