"""chatproject.serve: the server as `make run` and production start it, a
real daphne process, whose output must never hold a token."""

import asyncio
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from chat.storage import control
from chatproject.serve import redact
from devtools.servers import ROOT, free_port
from tests import issuer as issuers
from tests.issuer import AUDIENCE, ISSUER
from tests.test_e2e import start_daphne


@dataclass(frozen=True)
class LiveServer:
    url: str
    env: dict[str, str]
    output: Path

    def manage(self, *args: str) -> None:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr


@contextmanager
def live_server(
    backend: dict[str, str], issuer: issuers.TestIssuer, workdir: Path, name: str, **settings: str
) -> Iterator[LiveServer]:
    """`python -m chatproject.serve` on a free port, on this run's Redis and
    DynamoDB with a table and channel prefix of its own, trusting the test
    issuer; everything it prints (access log included) goes to one file."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "COGNITO_", "DJANGO_"))}
    env.update(
        DJANGO_DEBUG="1",
        PORT=str(port),
        JWT_ISSUER=ISSUER,
        JWT_AUDIENCE=AUDIENCE,
        JWT_JWKS_URL=issuer.jwks_url,
        DATABASE_URL=f"sqlite:///{workdir / 'db.sqlite3'}",
        DYNAMODB_ENDPOINT_URL=backend["endpoint"],
        DYNAMODB_TABLE=f"{backend['table']}-{name}",
        REDIS_URL=backend["redis_url"],
        CHANNEL_PREFIX=f"{backend['prefix']}-{name}",
        **settings,
    )
    server = LiveServer(f"http://127.0.0.1:{port}", env, workdir / "daphne.out")
    server.manage("migrate", "--noinput", "-v", "0")
    server.manage("create_table")
    process = start_daphne(env, port, server.output)
    try:
        yield server
    finally:
        process.terminate()
        process.wait(10)
        control.client().delete_table(TableName=env["DYNAMODB_TABLE"])


def get(url: str) -> int:
    try:
        return urllib.request.urlopen(url, timeout=5).status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.parametrize(
    "uri,expected",
    [
        ("/ws/", "/ws/"),
        ("/ws/?token=abc.def", "/ws/?token=[redacted]"),
        ("/chat/rooms?limit=5&token=abc&x=1", "/chat/rooms?limit=5&token=[redacted]&x=1"),
        ("/chat/rooms?%74oken=abc&token=def", "/chat/rooms?%74oken=[redacted]&token=[redacted]"),
        ("/chat/rooms?tokens=abc", "/chat/rooms?tokens=abc"),
    ],
)
def test_redact_replaces_every_token_parameter(uri, expected):
    assert redact(uri) == expected


def test_no_token_reaches_the_servers_output(backend, issuer, tmp_path):
    secret = "SECRET-" + "x" * 24
    with live_server(backend, issuer, tmp_path, "serve") as server:
        assert get(f"{server.url}/chat/rooms?token={secret}") == 401
        assert get(f"{server.url}/ws/?token={secret}") == 404  # a proxy that dropped the upgrade
        assert get(f"{server.url}/chat/rooms?%74oken={secret}&limit=1") == 401

        async def socket() -> None:
            async with ws_connect(f"ws://{server.url.removeprefix('http://')}/ws/?token={secret}") as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 5)
                assert closed.value.rcvd.code == 4401

        asyncio.run(socket())
        time.sleep(0.5)  # the access log line is written after the response
    output = server.output.read_text()
    assert output.count("oken=[redacted]") == 3, output  # the access log was written, redacted
    assert "refused connection: Malformed token" in output  # and our own log, with the reason only
    assert "SECRET" not in output, output
