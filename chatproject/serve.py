"""`python -m chatproject.serve`: daphne's command line (every daphne flag
works), with an access log that never prints a token.

daphne's HTTP access log prints each request's URI with its query string,
and writes it straight to its stream, not through `logging`, so no logging
filter can reach it. Browsers must send the socket's token as `?token=`:
a plain-HTTP request to /ws/ (a proxy that dropped the upgrade) or a client
that puts the token on an API URL would leave it in the log.

SIGTERM (or SIGINT) stops the process gracefully: it stops accepting, closes
every socket with 4012 (clients reconnect to another process at once), lets
the sockets' teardown delete their connection items and announce their users
offline, and exits within SHUTDOWN_TIMEOUT_SECONDS.

Settings are loaded first: a bad one stops the process with one line
(chatproject/config.py)."""

import asyncio
import logging
from typing import Any
from urllib.parse import unquote_plus

from daphne.cli import CommandLineInterface
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from django.conf import settings
from twisted.internet.defer import Deferred

from chat import logs
from chatproject.config import load_settings_or_exit

log = logging.getLogger("chatproject.serve")  # not __name__: this module runs as __main__

SECRET_PARAMETERS = frozenset({"token"})
REDACTED = "[redacted]"
# The part of SHUTDOWN_TIMEOUT_SECONDS kept for stop_process() after the
# sockets' teardown (a quarter of it at most).
TEARDOWN_RESERVE_SECONDS = 1.0


def redact(uri: str) -> str:
    """uri with the value of every secret query parameter replaced. Names are
    compared decoded, as Django and the consumer read them (`%74oken` is
    `token`)."""
    path, mark, query = uri.partition("?")
    if not mark:
        return uri
    parts = [
        f"{part.partition('=')[0]}={REDACTED}" if unquote_plus(part.partition("=")[0]) in SECRET_PARAMETERS else part
        for part in query.split("&")
    ]
    return f"{path}?{'&'.join(parts)}"


async def stop_process() -> None:
    """Stop what the process runs beside its sockets: send the presence
    changes it gathered, stop the hub (it leaves its groups), the heartbeat
    and the reaper; then close its clients."""
    from chat import delivery, limits  # the app, and so Django, is set up by now
    from chat.hub import hub
    from chat.services.liveness import liveness
    from chat.storage import dynamo

    await delivery.flush_presence()
    await hub().close()
    await liveness().close()
    await dynamo.close()
    await limits.close()


def close_restarting(protocol: Any) -> None:
    """Close protocol with 4012 if it is an open WebSocket."""
    from chat.consumers import CLOSE_RESTARTING

    if isinstance(protocol, WebSocketProtocol) and protocol.state == WebSocketProtocol.STATE_OPEN:
        protocol.sendClose(code=CLOSE_RESTARTING, reason="server restarting")


class RedactingServer(Server):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ports: list[Any] = []
        self.stopping = False

    def listen_success(self, port: Any) -> None:
        super().listen_success(port)
        self.ports.append(port)

    async def handle_reply(self, protocol: Any, message: dict[str, Any]) -> None:
        await super().handle_reply(protocol, message)
        if self.stopping and message["type"] == "websocket.accept":
            close_restarting(protocol)  # its handshake was under way at SIGTERM

    def running_applications(self) -> "list[asyncio.Future[None]]":
        applications = (details.get("application_instance") for details in self.connections.values())
        return [application for application in applications if application is not None and not application.done()]

    def kill_all_applications(self) -> Any:
        """daphne's step before the reactor stops (it has no ASGI lifespan),
        on SIGTERM and SIGINT: the graceful stop."""
        return Deferred.fromFuture(asyncio.ensure_future(self.stop_gracefully()))

    async def stop_gracefully(self) -> None:
        """Stop accepting, close every socket with 4012 and wait for the
        sockets' teardown, then cancel what is left and stop_process(), all
        within SHUTDOWN_TIMEOUT_SECONDS. A connection whose teardown did not
        finish is left to the other processes' reaper."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.SHUTDOWN_TIMEOUT_SECONDS
        reserve = min(TEARDOWN_RESERVE_SECONDS, settings.SHUTDOWN_TIMEOUT_SECONDS / 4)
        self.stopping = True
        for port in self.ports:
            port.stopListening()
        for protocol in list(self.connections):
            close_restarting(protocol)
        running = self.running_applications()
        log.info("stopping: closing %d connection(s) with 4012", len(running))
        if running:
            await asyncio.wait(running, timeout=max(deadline - reserve - loop.time(), 0))
        if left := self.running_applications():
            log.warning("stopping: %d connection(s) not torn down in time, left to the reaper", len(left))
            for application in left:
                application.cancel()
            await asyncio.wait(left, timeout=max(deadline - loop.time(), 0.1))
        try:
            async with asyncio.timeout_at(max(deadline, loop.time() + 0.1)):
                await stop_process()
        except TimeoutError:
            log.warning("stopping: SHUTDOWN_TIMEOUT_SECONDS passed before the process's clients were closed")

    def log_action(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        if isinstance(details.get("path"), str):
            details = {**details, "path": redact(details["path"])}
        if self.action_logger is not None and settings.LOG_FORMAT == "json":
            logs.access(protocol, action, details)  # one JSON object a line, like every other line
            return
        super().log_action(protocol, action, details)


class RedactingCommandLine(CommandLineInterface):
    server_class = RedactingServer


if __name__ == "__main__":
    load_settings_or_exit()
    RedactingCommandLine.entrypoint()
