"""Run blocking work (boto3, JWKS fetches, the ORM) off the event loop.

asgiref's default sync_to_async runs everything of a process on one thread;
here blocking calls share a pool sized by BLOCKING_THREADS instead, so one slow
DynamoDB call never stalls the others.
"""
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

P = ParamSpec("P")
R = TypeVar("R")


@functools.cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=settings.BLOCKING_THREADS, thread_name_prefix="chat-io")


def run_blocking(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R]:
    """Await fn(*args, **kwargs) on the blocking-call pool."""
    return sync_to_async(fn, thread_sensitive=False, executor=_executor())(*args, **kwargs)


def run_orm(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R]:
    """Like run_blocking, for ORM work: stale database connections of the
    pool thread are closed before and after, as Django does per request."""

    def call() -> R:
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return run_blocking(call)
