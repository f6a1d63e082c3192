"""chatproject.serve: the server as `make run` and production start it, a
real daphne process, whose output must never hold a token."""

import asyncio
import urllib.error
import urllib.request

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from chatproject.serve import redact
from tests.helpers import eventually, live_server


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
@pytest.mark.unit
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
        # The access log line of the socket is written after its close.
        asyncio.run(eventually(lambda: server.output.read_text().count("oken=[redacted]") == 3))
    output = server.output.read_text()
    assert output.count("oken=[redacted]") == 3, output  # the access log was written, redacted
    assert "refused connection: Malformed token" in output  # and our own log, with the reason only
    assert "SECRET" not in output, output
