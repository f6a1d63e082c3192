"""Close codes as a browser sees them, over TCP through daphne (autobahn
refuses codes other than 1000 and 3000-4999): a dependency that is down at
the handshake gives 4503, "try again later", not 1011 or an HTTP 500."""

import os

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from chat.consumers import CLOSE_TRY_AGAIN
from devtools.servers import free_port
from tests.helpers import Server, start_daphne


@pytest.fixture(params=["dynamodb", "redis"])
def crippled(request, backend, tmp_path):
    """One daphne process whose DynamoDB or Redis refuses connections."""
    port, dead = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "COGNITO_", "DJANGO_"))}
    env.update(
        DJANGO_DEBUG="1",
        PORT=str(port),
        JWT_DEV_ISSUER="1",
        JWT_DEV_KEY_PATH=str(tmp_path / "dev-key.pem"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        DYNAMODB_ENDPOINT_URL=f"http://127.0.0.1:{dead}" if request.param == "dynamodb" else backend["endpoint"],
        DYNAMODB_TABLE=backend["table"],
        DYNAMODB_RETRY_SECONDS="0.5",
        REDIS_URL=f"redis://127.0.0.1:{dead}" if request.param == "redis" else backend["redis_url"],
        CHANNEL_PREFIX=f"{backend['prefix']}-crippled",
    )
    server = Server(env, port)
    server.manage("migrate", "--noinput", "-v", "0")
    process = start_daphne(env, port, tmp_path / "daphne.log")
    yield server
    process.terminate()
    process.wait(10)


async def test_a_dependency_down_at_the_handshake_closes_with_4503(crippled):
    token = crippled.manage("issue_token", "--sub", "early-bird", "--name", "Early")
    async with ws_connect(crippled.ws_url(token)) as socket:
        with pytest.raises(ConnectionClosed) as closed:
            await socket.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_TRY_AGAIN
