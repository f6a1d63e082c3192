"""`python -m chatproject.serve`: daphne's command line (every daphne flag
works), with an access log that never prints a token.

daphne's HTTP access log prints each request's URI with its query string,
and writes it straight to its stream, not through `logging`, so no logging
filter can reach it. Browsers must send the socket's token as `?token=`:
a plain-HTTP request to /ws/ (a proxy that dropped the upgrade) or a client
that puts the token on an API URL would leave it in the log."""

from typing import Any
from urllib.parse import unquote_plus

from daphne.cli import CommandLineInterface
from daphne.server import Server

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


class RedactingServer(Server):
    def log_action(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        if isinstance(details.get("path"), str):
            details = {**details, "path": redact(details["path"])}
        super().log_action(protocol, action, details)


class RedactingCommandLine(CommandLineInterface):
    server_class = RedactingServer


if __name__ == "__main__":
    RedactingCommandLine.entrypoint()
