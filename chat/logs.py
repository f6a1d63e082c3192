"""Log lines: human text by default, one JSON object per line with
LOG_FORMAT=json, and never a token either way.

A socket's task binds its connection and user ids once (bind); every line
that task logs then carries them, and a frame's action while it is handled
(context). Lines that report an outcome pass it, and how long it
took, as `extra` (outcome, code, duration_ms).

settings.LOGGING names these classes: this module is loaded while Django
configures logging, so it imports nothing of the app."""

import asyncio
import contextlib
import json
import logging
import re
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

# The structured fields a line may carry, in the order they are written.
FIELDS = ("connection_id", "user_id", "action", "outcome", "code", "duration_ms", "status_code", "client", "path")
# A JWT (three base64url parts, the first a JSON header): whatever prints
# one (an exception's text, a library's debug line) has it replaced.
TOKEN = re.compile(r"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*")
REDACTED = "[redacted]"

# Fields per task, not in a context variable: tasks that serve every socket
# (the hub's receive loop, the heartbeat) are started from some socket's
# task and would inherit its ids.
_by_task: "weakref.WeakKeyDictionary[asyncio.Task[Any], dict[str, Any]]" = weakref.WeakKeyDictionary()


def _current_task() -> "asyncio.Task[Any] | None":
    try:
        return asyncio.current_task()
    except RuntimeError:  # no event loop in this thread
        return None


def bind(**fields: Any) -> None:
    """Add fields to every later line that the current task logs (a
    socket's: its connection and user ids). Tasks it starts do not get them."""
    task = _current_task()
    if task is not None:
        _by_task[task] = {**_by_task.get(task, {}), **fields}


@contextlib.contextmanager
def context(**fields: Any) -> Iterator[None]:
    """Add fields to the lines the current task logs inside the block."""
    task = _current_task()
    if task is None:
        yield
        return
    before = _by_task.get(task, {})
    _by_task[task] = {**before, **fields}
    try:
        yield
    finally:
        _by_task[task] = before


class ContextFilter(logging.Filter):
    """Give each record the fields bound by the task that logs it (a
    handler filter: it sees the records of every logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        task = _current_task()
        for name, value in (_by_task.get(task, {}) if task is not None else {}).items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


class ClientErrorsAtInfo(logging.Filter):
    """django.request logs every 4xx answer (a 401 for a missing token, a
    429) as a WARNING: they are the clients' doing, not the server's, so
    they are logged at INFO. 5xx answers stay errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and 400 <= getattr(record, "status_code", 0) < 500:
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {name: value for name in FIELDS if (value := getattr(record, name, None)) is not None}


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message key=value ...`, tokens redacted."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{name}={value}" for name, value in _fields(record).items())
        if fields:
            head, newline, rest = line.partition("\n")  # after the message, before a traceback
            line = f"{head} {fields}{newline}{rest}"
        return TOKEN.sub(REDACTED, line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger,
    message, the fields that apply, and a traceback as `exception`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return TOKEN.sub(REDACTED, json.dumps(entry, default=str))


# daphne's access log as log records (chatproject.serve, with LOG_FORMAT=json):
# its own writes NCSA-style lines straight to stdout.
access_log = logging.getLogger("chat.access")
WEBSOCKET_ACTIONS = {
    "connecting": "WSCONNECTING",
    "connected": "WSCONNECT",
    "rejected": "WSREJECT",
    "disconnected": "WSDISCONNECT",
}


def access(protocol: str, action: str, details: dict[str, Any]) -> None:
    """One access-log record (details' path already redacted)."""
    fields = {"client": details.get("client"), "path": details.get("path")}
    if protocol == "http" and action == "complete":
        fields["status_code"] = details.get("status")
        access_log.info("%s %s %s", details.get("method"), fields["path"], fields["status_code"], extra=fields)
    elif protocol == "websocket" and action in WEBSOCKET_ACTIONS:
        access_log.info("%s %s", WEBSOCKET_ACTIONS[action], fields["path"], extra=fields)
