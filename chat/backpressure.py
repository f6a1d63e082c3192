"""How many bytes a WebSocket has queued for its peer in this process.

A peer that stops reading does not stop the server from writing to it: every
frame sent to it waits in the process's memory until the peer reads, or
until the connection dies. The consumer reads this gauge after each frame it
writes and closes the socket once it passes SOCKET_SEND_BUFFER_BYTES.

Under daphne, the ASGI `send` a consumer keeps as `base_send` is
`functools.partial(Server.handle_reply, protocol)`, and a `websocket.send`
goes synchronously down to `protocol.transport.write()`, which only appends
to the transport's buffer; the reactor moves it to the kernel as the socket
becomes writable. That buffer is Twisted's `FileDescriptor`: the unsent tail
of `dataBuffer` (from `offset`) plus `_tempDataLen` bytes not yet joined to
it. Those attributes are private, so they are only read here, and checked
once per socket: a server or Twisted without them gets the fallback, no cap
(logged once at INFO). The kernel's own send buffer is not counted: its size
is bounded by SO_SNDBUF and it is not the process's memory.

With TLS the protocol's transport is a wrapper (TLSMemoryBIOProtocol) that
encrypts and passes the bytes on to the TCP transport at once, so the
wrappers are looked through.

Closing such a socket frees the buffer without help: autobahn queues the
close frame behind the backlog and, when the peer has not answered it
within closeHandshakeTimeout (daphne keeps autobahn's server default, 1 s),
aborts the transport, which drops what it held."""

import functools
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Gauge = Callable[[], int]

# A plain TCP transport is reached directly; TLS adds one wrapper.
_MAX_WRAPPERS = 3
_warned = False


def gauge(send: Callable[..., Any]) -> Gauge:
    """A function returning the bytes queued, not yet handed to the kernel,
    on the socket that `send` (an ASGI send callable) writes to. Reading it
    is O(1) and makes no system call. Where that cannot be known, the
    function always returns 0."""
    transport = _buffering_transport(send)
    if transport is None:
        _log_unavailable(send)
        return _unmeasured
    return functools.partial(_queued, transport)


def _buffering_transport(send: Callable[..., Any]) -> Any | None:
    protocol = send.args[0] if isinstance(send, functools.partial) and send.args else None
    transport = getattr(protocol, "transport", None)
    for _ in range(_MAX_WRAPPERS):
        if _is_file_descriptor(transport):
            return transport
        transport = getattr(transport, "transport", None)
    return None


def _is_file_descriptor(transport: Any) -> bool:
    return (
        isinstance(getattr(transport, "dataBuffer", None), bytes)
        and isinstance(getattr(transport, "offset", None), int)
        and isinstance(getattr(transport, "_tempDataLen", None), int)
    )


def _queued(transport: Any) -> int:
    return int(len(transport.dataBuffer) - transport.offset + transport._tempDataLen)


def _unmeasured() -> int:
    return 0


def _log_unavailable(send: Callable[..., Any]) -> None:
    global _warned
    if not _warned:
        _warned = True
        log.info("send buffers cannot be measured under this ASGI server (%r): slow readers are not capped", send)
