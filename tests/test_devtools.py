"""`make run` and `make manage` in two terminals: the second talks to the
server the first started, even on another PORT, DynamoDB port and channel
prefix; a token from the wrong issuer is refused with 4401 and the server
log says why."""

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from chat.consumers import CLOSE_UNAUTHORIZED
from devtools.servers import ROOT, free_port, wait_until_healthy
from tests.helpers import eventually


def base_environment(var_dir: Path) -> dict[str, str]:
    """A fresh terminal's environment: none of this run's settings, and
    local state in var_dir."""
    prefixes = ("DJANGO_", "JWT_", "COGNITO_", "DYNAMODB_", "CHANNEL_", "DATABASE_", "REDIS_", "PORT")
    kept = {name: value for name, value in os.environ.items() if not name.startswith(prefixes)}
    return {**kept, "VAR_DIR": str(var_dir), "PYTHONUNBUFFERED": "1"}


def make_manage(var_dir: Path, *args: str) -> str:
    """What `make manage ARGS=...` runs, in a second terminal."""
    result = subprocess.run(
        [sys.executable, "-m", "devtools.manage", *args],
        cwd=ROOT,
        env=base_environment(var_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def default_port_token(var_dir: Path) -> str:
    """What `make manage` issued before run.env: a token of the dev issuer
    of PORT 8000, signed with the key of make_run's server."""
    result = subprocess.run(
        [sys.executable, "manage.py", "issue_token", "--sub", "devrun-c"],
        cwd=ROOT,
        env={**base_environment(var_dir), "DJANGO_DEBUG": "1", "JWT_DEV_ISSUER": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def make_run(backend, tmp_path_factory):
    """`make run` with a PORT, a dynalite port and a channel prefix of its
    own, up once its server answers."""
    tmp_path = tmp_path_factory.mktemp("make-run")
    var_dir, port = tmp_path / "var", free_port()
    env = {
        **base_environment(var_dir),
        "PORT": str(port),
        "DYNAMODB_LOCAL_PORT": str(free_port()),
        "REDIS_URL": backend["redis_url"],
        "CHANNEL_PREFIX": f"{backend['prefix']}-devrun",
    }
    output = tmp_path / "make-run.log"
    with output.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devtools.run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    assert wait_until_healthy(port, process, timeout=60), output.read_text()
    yield var_dir, port, output
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(30) == 0
    assert not (var_dir / "run.env").exists()


async def test_make_manage_reaches_the_server_of_make_run_on_other_ports(make_run):
    var_dir, port, _ = make_run
    assert f"PORT={port}\n" in (var_dir / "run.env").read_text()
    token = make_manage(var_dir, "issue_token", "--sub", "devrun-a", "--name", "Dev")
    room_id = make_manage(var_dir, "create_room", "--participants", "devrun-a,devrun-b")
    async with ws_connect(f"ws://127.0.0.1:{port}/ws/?token={token}") as socket:
        await socket.send(json.dumps({"action": "ping"}))
        assert json.loads(await asyncio.wait_for(socket.recv(), 10)) == {"type": "pong"}
        # The same database, DynamoDB and Redis (channel prefix included).
        make_manage(var_dir, "set_verification", "devrun-a", "approved")
        frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert frame["type"] == "verification" and frame["data"]["status"] == "approved"
        await socket.send(json.dumps({"action": "sendMessage", "chatRoomId": room_id, "content": "hi"}))
        assert json.loads(await asyncio.wait_for(socket.recv(), 10))["type"] == "message"


async def test_a_token_of_another_issuer_is_refused_and_the_log_says_why(make_run):
    var_dir, port, output = make_run
    async with ws_connect(f"ws://127.0.0.1:{port}/ws/?token={default_port_token(var_dir)}") as socket:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_UNAUTHORIZED
    expected = (
        "refused connection: Invalid token: issuer 'http://127.0.0.1:8000/dev-issuer'"
        f" is not this server's JWT_ISSUER 'http://127.0.0.1:{port}/dev-issuer'"
    )
    [line] = await eventually(lambda: [line for line in output.read_text().splitlines() if expected in line])
    assert "INFO" in line
