"""`python -m chatproject.serve`: daphne's command line (every daphne flag
works), with an access log that never prints a token.

daphne's HTTP access log prints each request's URI with its query string,
and writes it straight to its stream, not through `logging`, so no logging
filter can reach it. Browsers must send the socket's token as `?token=`:
a plain-HTTP request to /ws/ (a proxy that dropped the upgrade) or a client
that puts the token on an API URL would leave it in the log."""

import asyncio
from typing import Any
from urllib.parse import unquote_plus

from daphne.cli import CommandLineInterface
from daphne.server import Server
from twisted.internet.defer import Deferred

SECRET_PARAMETERS = frozenset({"token"})
REDACTED = "[redacted]"


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
    """Stop what the process runs beside its sockets: the hub (it leaves
    its groups), the heartbeat and the reaper; then close its clients."""
    from chat import limits  # the app, and so Django, is set up by now
    from chat.hub import hub
    from chat.services.liveness import liveness
    from chat.storage import dynamo

    await hub().close()
    await liveness().close()
    await dynamo.close()
    await limits.close()


class RedactingServer(Server):
    def kill_all_applications(self) -> Any:
        """daphne's step before the reactor stops (it has no ASGI lifespan):
        once the sockets' applications are cancelled, stop_process()."""
        killed = super().kill_all_applications()
        killed.addCallback(lambda _: Deferred.fromFuture(asyncio.ensure_future(stop_process())))
        return killed

    def log_action(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        if isinstance(details.get("path"), str):
            details = {**details, "path": redact(details["path"])}
        super().log_action(protocol, action, details)


class RedactingCommandLine(CommandLineInterface):
    server_class = RedactingServer


if __name__ == "__main__":
    RedactingCommandLine.entrypoint()
