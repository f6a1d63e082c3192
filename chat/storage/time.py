"""The clock as storage writes it: milliseconds, and ISO-8601 as JavaScript's
toISOString() gives it."""

import time
from datetime import UTC, datetime


def iso_from_ms(timestamp_ms: int) -> str:
    """e.g. 2026-01-02T03:04:05.678Z."""
    moment = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_ms() -> int:
    return time.time_ns() // 1_000_000
