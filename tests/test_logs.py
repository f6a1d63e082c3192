"""What a server process writes, as an operator reads it: with
LOG_FORMAT=json one JSON object a line, with the socket's ids, the frame's
action, outcome and duration, never a token; and none of the noise a new
operator used to trip over."""

import asyncio
import json
import logging
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from chat.logs import JsonFormatter, TextFormatter
from devtools.servers import ROOT, free_port
from tests.helpers import Server, eventually, opened, receive, send, server_env, start_daphne

SECRET = "SECRET-" + "x" * 24


def lines(text: str) -> list[dict]:
    """Every line of text, each of which must be one JSON object."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def get(url: str) -> int:
    try:
        return urllib.request.urlopen(url, timeout=5).status
    except urllib.error.HTTPError as error:
        return error.code


def test_a_json_server_writes_one_object_a_line_with_the_sockets_fields(backend, tmp_path):
    port = free_port()
    # The dev issuer of this very server: it fetches its own keys before it listens.
    env = {**server_env(backend, tmp_path, port, "redis-pubsub", "logs"), "LOG_FORMAT": "json", "LOG_FRAMES": "1"}
    server = Server(env, port)
    server.manage("migrate", "--noinput", "-v", "0")
    created = subprocess.run(
        [sys.executable, "manage.py", "create_table"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert created.returncode == 0, created.stderr
    assert "Found credentials" not in created.stderr
    output = tmp_path / "daphne.out"
    process = start_daphne(env, port, output)
    token = server.manage("issue_token", "--sub", "logger", "--name", "Logger")

    async def talk() -> None:
        socket = await opened(server, "logger", token)
        await send(socket, {"action": "shout"})
        assert (await receive(socket))["data"]["code"] == "UNKNOWN_ACTION"
        await socket.close()
        await eventually(lambda: all(line in output.read_text() for line in ('"socket closed"', "[redacted] 401")))

    try:
        assert get(f"http://127.0.0.1:{port}/chat/rooms?token={SECRET}") == 401
        asyncio.run(talk())
    finally:
        process.terminate()
        process.wait(10)
    text = output.read_text()
    entries = lines(text)
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)
    assert SECRET not in text and token not in text and token.split(".")[1] not in text

    opened_line = next(entry for entry in entries if entry["message"] == "socket opened")
    assert opened_line["user_id"] == "logger" and opened_line["outcome"] == "opened"
    connection_id = opened_line["connection_id"]
    frames = [entry for entry in entries if entry["logger"] == "chat.frames"]
    assert [(entry["action"], entry["outcome"]) for entry in frames] == [("ping", "ok"), ("unknown", "UNKNOWN_ACTION")]
    assert all(entry["connection_id"] == connection_id and entry["user_id"] == "logger" for entry in frames)
    assert all(isinstance(entry["duration_ms"], float | int) for entry in frames)
    closed = next(entry for entry in entries if entry["message"] == "socket closed")
    assert closed["connection_id"] == connection_id and closed["code"] == 1000 and closed["duration_ms"] >= 0

    # The noise: a 401 is the client's doing (INFO), the server's own keys
    # are fetched quietly while it starts.
    unauthorized = next(entry for entry in entries if entry["logger"] == "django.request")
    assert unauthorized["level"] == "INFO" and unauthorized["status_code"] == 401
    assert not [entry for entry in entries if "JWKS" in entry["message"] or "Found credentials" in entry["message"]]
    assert not [entry for entry in entries if entry["level"] in {"WARNING", "ERROR", "CRITICAL"}], text


@pytest.mark.unit
def test_text_lines_carry_the_fields_and_no_token():
    """The default format is text; a token that reaches a message (say, in
    an exception's text) is replaced there too."""
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
    record = logging.LogRecord("chat.consumers", logging.INFO, __file__, 1, "bad %s", (token,), None)
    record.user_id, record.outcome = "alice", "refused"
    text = TextFormatter().format(record)
    assert text.endswith("INFO chat.consumers: bad [redacted] user_id=alice outcome=refused")
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "bad [redacted]" and entry["user_id"] == "alice"
