"""Every Prometheus metric of the server, defined once (chat.views serves
them at /metrics), and the frame log that goes with them.

Each server process counts its own and serves them at /metrics on its own
port (README "Operations"): Prometheus scrapes every process, not the load
balancer. Names start with `chat_`; labels take a bounded set of values
(actions, error and close codes, storage operations), never ids.

Code elsewhere makes one-line calls here (`metrics.CONNECTS.inc()`), so the
names and their help live in this module alone. It imports nothing of the
app: any module may count."""

import logging
import time

from prometheus_client import Counter, Gauge, Histogram

OPEN_SOCKETS = Gauge("chat_open_sockets", "Sockets registered in this process (authenticated and open)")
CONNECTS = Counter("chat_connects", "WebSocket handshakes accepted (before authentication)")
CONNECT_REFUSALS = Counter(
    "chat_connect_refusals", "Sockets closed during their connect, by close code and reason", ["code", "reason"]
)
SOCKET_CLOSES = Counter(
    "chat_socket_closes", "Registered sockets the server closed, by close code and reason", ["code", "reason"]
)
FRAMES = Counter("chat_frames_received", "Client frames handled, by action (unknown: any other)", ["action"])
MESSAGES_STORED = Counter("chat_messages_stored", "Messages stored, by type (user, system)", ["type"])
DELIVERIES = Counter("chat_deliveries", "Frames written to this process's sockets from the channel layer")
ERRORS = Counter("chat_errors", "Errors answered, by code and transport (socket, http)", ["code", "transport"])
RATE_LIMITED = Counter(
    "chat_rate_limited",
    "Refusals by a rate limit: socket_frames, api_requests (per process), user_sends, user_rooms (per user)",
    ["limit"],
)
STORAGE_SECONDS = Histogram(
    "chat_storage_call_seconds",
    "DynamoDB calls of the data plane, retries included, by operation",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
STORAGE_ERRORS = Counter(
    "chat_storage_errors", "DynamoDB calls that failed (not a failed condition), by operation", ["operation"]
)
PUBLISH_FAILURES = Counter("chat_channel_publish_failures", "group_send calls the channel layer failed")
SLOW_SOCKETS_DROPPED = Counter("chat_slow_sockets_dropped", "Sockets closed with 4413 for not reading their frames")

KNOWN_ACTIONS = frozenset({"sendMessage", "getMessages", "markRead", "typing", "ping", "authenticate"})
# The server's close codes (docs/protocol.md); any other is `other`.
CLOSE_REASONS = {
    1000: "normal",
    4012: "restarting",
    4401: "unauthorized",
    4403: "forbidden_origin",
    4408: "expired",
    4413: "too_slow",
    4429: "too_many_sockets",
    4430: "suspended",
    4503: "try_again",
}
frames_log = logging.getLogger("chat.frames")


def action_label(action: object) -> str:
    """action as a label: one of the protocol's, or `unknown` (bounded)."""
    return action if isinstance(action, str) and action in KNOWN_ACTIONS else "unknown"


def frame_handled(action: object, outcome: str, started: float) -> None:
    """Count a client frame, and its error (outcome: an error code, or
    `ok`), and log it on chat.frames (at INFO with LOG_FRAMES)."""
    label = action_label(action)
    FRAMES.labels(label).inc()
    if outcome != "ok":
        ERRORS.labels(outcome, "socket").inc()
    if frames_log.isEnabledFor(logging.INFO):
        duration_ms = round((time.monotonic() - started) * 1000, 1)
        fields = {"action": label, "outcome": outcome, "duration_ms": duration_ms}
        frames_log.info("frame %s: %s", label, outcome, extra=fields)


def server_closed(code: int | None, *, registered: bool) -> None:
    """Count a close the server made: a refusal if the socket was never
    registered, else a close of a registered socket."""
    code = code or 1000
    counter = SOCKET_CLOSES if registered else CONNECT_REFUSALS
    counter.labels(str(code), CLOSE_REASONS.get(code, "other")).inc()
