"""Stopping background tasks."""

import asyncio


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
