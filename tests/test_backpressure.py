"""Slow readers: what a socket has queued is measured (chat/backpressure.py)
and capped (SOCKET_SEND_BUFFER_BYTES), on a real daphne process."""

import asyncio
import base64
import functools
import json
import logging
import os
import socket
import struct
from pathlib import Path

import pytest
from daphne.server import Server as DaphneServer
from twisted.internet import protocol, reactor
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure

from chat import backpressure
from chat.storage import control
from devtools.servers import free_port
from tests.helpers import Server, opened, receive, send, server_env, start_daphne

CAP = 64 * 1024
SILENT_SOCKETS = 8
MESSAGES = 600
CONTENT = "x" * 4000  # ~2.4 MB in all, per socket


# --- the gauge ---------------------------------------------------------------------


@pytest.fixture
def adopted():
    """A Twisted transport (the kind daphne's protocols write to) over a real
    socket pair, and the peer's end. The reactor is not run: bytes leave the
    transport only when the test calls doWrite, as the reactor would once
    the socket is writable."""
    ours, peer = socket.socketpair()
    peer.setblocking(False)
    factory = protocol.Factory.forProtocol(protocol.Protocol)
    transport = reactor.adoptStreamConnection(ours.fileno(), socket.AF_UNIX, factory)
    ours.close()  # adopted: Twisted has its own duplicate of the descriptor
    yield transport, peer
    transport.connectionLost(Failure(ConnectionError("test over")))
    peer.close()


def drain(peer: socket.socket) -> int:
    received = 0
    while True:
        try:
            received += len(peer.recv(1 << 20))
        except BlockingIOError:
            return received


def daphne_send(protocol_instance: protocol.Protocol) -> functools.partial:
    """The ASGI send daphne gives the application of a protocol (see
    Server.create_application)."""
    return functools.partial(DaphneServer(application=None, endpoints=["tcp:port=0"]).handle_reply, protocol_instance)


@pytest.mark.unit
def test_gauge_counts_what_the_transport_has_not_handed_to_the_kernel(adopted):
    transport, peer = adopted
    queued = backpressure.gauge(daphne_send(transport.protocol))
    assert queued() == 0
    transport.write(b"a" * 300_000)
    transport.write(b"b" * 100_000)
    assert queued() == 400_000
    transport.doWrite()  # the kernel takes part of it
    sent = drain(peer)
    assert 0 < sent < 400_000
    assert queued() == 400_000 - sent
    while queued():
        transport.doWrite()
        sent += drain(peer)
    assert sent == 400_000


@pytest.mark.unit
def test_gauge_looks_through_a_wrapping_protocol_like_tls(adopted):
    transport, _ = adopted
    wrapper = ProtocolWrapper(WrappingFactory(protocol.Factory.forProtocol(protocol.Protocol)), protocol.Protocol())
    wrapper.makeConnection(transport)
    queued = backpressure.gauge(daphne_send(wrapper.wrappedProtocol))
    wrapper.wrappedProtocol.transport.write(b"c" * 1000)
    assert queued() == 1000


@pytest.mark.unit
def test_other_servers_get_no_cap_and_one_info_log(caplog, monkeypatch):
    monkeypatch.setattr(backpressure, "_warned", False)

    async def send(message: dict) -> None:
        """An ASGI send that is not daphne's."""

    with caplog.at_level(logging.INFO, logger="chat.backpressure"):
        gauges = [backpressure.gauge(send), backpressure.gauge(send)]
    assert [queued() for queued in gauges] == [0, 0]
    assert len(caplog.records) == 1 and "not capped" in caplog.records[0].getMessage()


# --- end to end -------------------------------------------------------------------


@pytest.fixture
def capped_server(backend, tmp_path_factory):
    """One daphne process with a small cap, and rate limits a fast sender
    does not meet: (its Server, its pid)."""
    workdir = tmp_path_factory.mktemp("backpressure")
    port = free_port()
    env = server_env(backend, workdir, port, "redis-pubsub", "backpressure")
    env.update(SOCKET_SEND_BUFFER_BYTES=str(CAP))
    env.update({f"{limit}_{kind}": "1000" for limit in ("SOCKET", "USER_SEND") for kind in ("RATE", "BURST")})
    server = Server(env, port)
    server.manage("migrate", "--noinput", "-v", "0")
    server.manage("create_table")
    # No keepalive pings in the test's time: nothing but the cap can end a
    # silent socket.
    process = start_daphne(env, port, workdir / "daphne.log", "--ping-interval", "600", "--ping-timeout", "600")
    yield server, process.pid
    process.terminate()
    process.wait(10)
    control.client().delete_table(TableName=env["DYNAMODB_TABLE"])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


class SilentClient:
    """A WebSocket client on a raw socket that completes the handshake, waits
    for its pong (it is then registered and in its rooms) and from then on
    reads nothing until `drain`. Its small receive window and segments keep
    the kernels' buffers small (the server's send buffer grows with the
    segment size, to megabytes on loopback), so what waits for it waits in
    the server process."""

    def __init__(self, port: int, token: str):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET /ws/?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self.file = self.sock.makefile("rb")
        assert b" 101 " in self.file.readline()
        while self.file.readline() != b"\r\n":
            pass
        self.sock.sendall(masked(json.dumps({"action": "ping"}).encode()))
        while json.loads(self.read_frame())["type"] != "pong":
            pass

    def read_frame(self) -> bytes:
        head = self.file.read(2)
        length = head[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", self.file.read(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self.file.read(8))[0]
        return self.file.read(length)

    def drain(self) -> tuple[bool, int]:
        """Read until the server ends the connection, or until nothing came
        for 10 s: (whether it ended, bytes read). Then close."""
        received = 0
        try:
            while chunk := self.file.read1(1 << 16):
                received += len(chunk)
        except ConnectionResetError:
            pass
        except TimeoutError:
            return False, received
        finally:
            self.file.close()
            self.sock.close()
        return True, received


def masked(payload: bytes) -> bytes:
    """A client text frame (clients must mask), payload under 126 bytes."""
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def test_sockets_that_do_not_read_are_dropped_and_readers_get_everything(capped_server):
    server, pid = capped_server
    room_id = server.manage("create_room", "--participants", "pusher,reader,laggard")
    server.manage("set_verification", "pusher", "approved")
    tokens = {user: server.manage("issue_token", "--sub", user) for user in ("pusher", "reader", "laggard")}
    silent = [await asyncio.to_thread(SilentClient, server.port, tokens["laggard"]) for _ in range(SILENT_SOCKETS)]
    reader = await opened(server, "reader", tokens["reader"])
    pusher = await opened(server, "pusher", tokens["pusher"])
    before = rss_kib(pid)

    for n in range(MESSAGES):
        await send(pusher, {"action": "sendMessage", "chatRoomId": room_id, "content": f"{n}:{CONTENT}"})
    seqs = []
    while len(seqs) < MESSAGES:
        frame = await receive(reader)
        if frame["type"] == "message":
            seqs.append(frame["data"]["seq"])
    assert seqs == list(range(1, MESSAGES + 1))

    sent_to_each = MESSAGES * len(CONTENT)
    grown_kib = rss_kib(pid) - before
    # Without the cap the process holds nearly every byte for every silent
    # socket (here about 20 MB); with it, what is left is the ordinary cost
    # of handling the messages.
    assert grown_kib < SILENT_SOCKETS * sent_to_each / 1024 / 2
    for client in silent:
        ended, received = await asyncio.to_thread(client.drain)
        # Ended by the server (nothing else does: no keepalive pings), long
        # before they were sent everything.
        assert ended and received < sent_to_each / 2
    for socket_ in (reader, pusher):
        await socket_.close()
