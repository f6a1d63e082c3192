"""Run blocking work (a cold JWKS fetch, the ORM, the control plane's boto3
scan) off the event loop; request-path storage calls are async and never
come here.

asgiref's default sync_to_async runs everything of a process on one thread;
here blocking calls share a pool sized by BLOCKING_THREADS instead, so one
slow call never stalls the others. The hop is a plain run_in_executor with
the caller's context: asgiref's wrapper costs about half a millisecond of CPU
a call."""

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from django.conf import settings
from django.db import close_old_connections

P = ParamSpec("P")
R = TypeVar("R")


@functools.cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=settings.BLOCKING_THREADS, thread_name_prefix="chat-io")


def run_blocking(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R]:
    """Await fn(*args, **kwargs) on the blocking-call pool."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return asyncio.get_running_loop().run_in_executor(_executor(), call)


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
