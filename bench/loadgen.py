"""One load-generator process: holds many WebSocket clients, sends on an open
loop schedule, and records every delivery's latency from its planned send
time. Against P, every client then catches up by seq (getMessages), so the
orchestrator can count acknowledged messages a client never got.
Usage: python -m bench.loadgen CONFIG.json RESULT.json

The orchestrator (bench.run) merges the results of several such processes."""

import asyncio
import gc
import json
import random
import sys
import time
import uuid
from typing import Any

import websockets.exceptions
from websockets.asyncio.client import connect

CHAT_VARIANTS = {"P", "PU", "B1", "L"}
# Variants with acks that carry a seq and a history to catch up from (B1,
# like the reference system, acknowledges with a message id only; L keeps no
# history). PU is P served by uvicorn.
CATCH_UP_VARIANTS = {"P", "PU"}
PAGE = 100
# How long a connect waits for the answer to its first ping.
PONG_TIMEOUT_SECONDS = 60
CATCH_UP_SECONDS = 300


def encode_send(variant: str, room: str, content: str, client_message_id: str) -> str:
    """P's sends carry a clientMessageId, as the browser client's do (each
    costs P two more storage calls, docs/performance.md); the baselines have
    no idempotent retries."""
    if variant in CHAT_VARIANTS:
        return json.dumps(
            {"action": "sendMessage", "chatRoomId": room, "content": content, "clientMessageId": client_message_id}
        )
    return json.dumps({"message": content})


def content_of(variant: str, frame: dict[str, Any]) -> str | None:
    if variant in CHAT_VARIANTS:
        return frame["data"]["content"] if frame.get("type") == "message" else None
    return frame.get("message")


class Client:
    def __init__(self, spec: dict[str, Any], variant: str, recorder: "Recorder"):
        self.url, self.room, self.index = spec["url"], spec["room"], spec["index"]
        self.variant, self.recorder = variant, recorder
        self.socket = None
        self.last_n: dict[str, int] = {}
        self.seqs: set[int] = set()  # of this room's messages this client holds
        self.pages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        # Sends go through a queue so that a server that stops reading
        # (TCP back-pressure) delays this client only, never the schedule.
        self.outbox: asyncio.Queue[str] = asyncio.Queue()

    async def write(self) -> None:
        while True:
            await self.socket.send(await self.outbox.get())

    async def open(self) -> float:
        """Connect (and, with auth, wait for a pong); returns handshake seconds."""
        started = time.monotonic()
        self.socket = await connect(self.url, max_queue=None, open_timeout=60, ping_interval=None, compression=None)
        if self.variant in CHAT_VARIANTS:
            await self.socket.send('{"action":"ping"}')
            # A server that never answers fails this attempt, not the run.
            async with asyncio.timeout(PONG_TIMEOUT_SECONDS):
                while json.loads(await self.socket.recv()).get("type") != "pong":
                    pass
        return time.monotonic() - started

    async def read(self) -> None:
        async for raw in self.socket:
            now = time.time_ns()
            frame = json.loads(raw)
            kind = frame.get("type")
            if kind == "ack":
                self.recorder.acks.append((frame["data"]["chatRoomId"], frame["data"]["seq"]))
                self.recorder.answers += 1
            elif kind == "error" and frame["data"].get("action") == "sendMessage":
                self.recorder.refused += 1
                self.recorder.answers += 1
            elif kind == "messages":
                self.pages.put_nowait(frame["data"])
            elif kind == "message" and frame["data"]["chatRoomId"] == self.room:
                self.seqs.add(frame["data"]["seq"])
            content = content_of(self.variant, frame)
            if content is None:
                continue
            planned, key = content.split(" ", 1)
            sender, n = key.rsplit(":", 1)
            if int(n) < self.last_n.get(sender, -1):
                self.recorder.out_of_order += 1
            self.last_n[sender] = int(n)
            self.recorder.delivered(self.index, key, (now - int(planned)) / 1e6)

    async def catch_up(self, start_seq: int) -> list[list[int]]:
        """Fetch every message of the room after the first gap in what
        arrived live; returns the seqs held, as [first, last] ranges."""
        after = start_seq
        while after + 1 in self.seqs:
            after += 1
        while True:
            await self.socket.send(
                json.dumps({"action": "getMessages", "chatRoomId": self.room, "afterSeq": after, "limit": PAGE})
            )
            page = await self.pages.get()
            self.seqs.update(message["seq"] for message in page["messages"])
            after = max([after] + [message["seq"] for message in page["messages"]])
            if not page["hasMore"]:
                break
        ranges: list[list[int]] = []
        for seq in sorted(s for s in self.seqs if s > start_seq):
            if ranges and ranges[-1][1] == seq - 1:
                ranges[-1][1] = seq
            else:
                ranges.append([seq, seq])
        return ranges


class Recorder:
    def __init__(self) -> None:
        self.seen: set[tuple[int, str]] = set()
        self.deliveries: list[tuple[str, float]] = []
        self.duplicates = 0
        self.out_of_order = 0
        self.acks: list[tuple[str, int]] = []
        self.answers = 0  # sends acknowledged or refused
        self.refused = 0

    def delivered(self, client: int, key: str, latency_ms: float) -> None:
        if (client, key) in self.seen:
            self.duplicates += 1
            return
        self.seen.add((client, key))
        self.deliveries.append((key, latency_ms))


async def open_all(clients: list[Client], concurrency: int) -> tuple[list[float], list[Client]]:
    """Open every client, 3 tries each; returns the handshake times and the
    clients that could not connect (an overloaded server refuses some)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(client: Client) -> float | None:
        for attempt in range(3):
            async with gate:
                try:
                    return await client.open()
                except (TimeoutError, OSError, EOFError, websockets.exceptions.WebSocketException):
                    client.socket = None
            await asyncio.sleep(0.5 * (attempt + 1))
        return None

    results = await asyncio.gather(*(one(client) for client in clients))
    failed = [client for client, result in zip(clients, results, strict=True) if result is None]
    return [result for result in results if result is not None], failed


async def traffic(config: dict[str, Any], clients: list[Client], recorder: Recorder) -> list[dict[str, Any]]:
    """Send each phase's messages at their planned times; returns what was sent."""
    rng = random.Random(config["seed"])
    # clientMessageIds are unique per run: a later workload on the same rooms
    # must not repeat (and so be answered as a duplicate of) an earlier send.
    nonce = uuid.uuid4().hex[:12]
    senders = clients if not config.get("senders") else clients[: config["senders"]]
    sent = []
    counter = 0
    start = time.time_ns() + 200_000_000
    for phase_index, phase in enumerate(config["phases"]):
        rate = phase["rate"]
        total = int(rate * phase["duration"])
        for k in range(total):
            planned = start + int(k * 1e9 / rate)
            delay = (planned - time.time_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            client = rng.choice(senders)
            counter += 1
            key = f"{config['proc']}.{client.index}:{counter}"
            measured = k >= rate * phase.get("warmup", 0)
            sent.append({"key": key, "phase": phase_index, "room": client.room, "measured": measured})
            client.outbox.put_nowait(encode_send(config["variant"], client.room, f"{planned} {key}", f"{nonce}.{key}"))
        start += int(phase["duration"] * 1e9)
    await asyncio.sleep(config["drain"])
    return sent


async def answered(recorder: Recorder, sent: int) -> None:
    """Wait (at most CATCH_UP_SECONDS) until every send has its ack or error:
    an overloaded server acknowledges long after the schedule ends."""
    deadline = time.monotonic() + CATCH_UP_SECONDS
    while recorder.answers < sent and time.monotonic() < deadline:  # noqa: ASYNC110 (the reader tasks count answers; polling keeps them free of this wait)
        await asyncio.sleep(0.1)


async def catch_up(config: dict[str, Any], clients: list[Client]) -> list[dict[str, Any]]:
    """Every client's holdings after catching up (held: None when it could
    not, within CATCH_UP_SECONDS)."""
    gate = asyncio.Semaphore(config.get("concurrency", 100))

    async def one(client: Client) -> dict[str, Any]:
        async with gate:
            held = await client.catch_up(config["start_seqs"][client.room])
        return {"room": client.room, "held": held}

    tasks = [asyncio.create_task(one(client)) for client in clients]
    await asyncio.wait(tasks, timeout=CATCH_UP_SECONDS)
    return [
        task.result() if task.done() and not task.exception() else {"room": client.room, "held": None}
        for client, task in zip(clients, tasks, strict=True)
    ]


async def main(config_path: str, result_path: str) -> None:
    config = json.loads(open(config_path).read())
    recorder = Recorder()
    clients = [Client(spec, config["variant"], recorder) for spec in config["clients"]]
    opened_at = time.monotonic()
    handshakes, failed = await open_all(clients, config.get("concurrency", 100))
    opened_for = time.monotonic() - opened_at
    clients = [client for client in clients if client not in failed]
    readers = [asyncio.create_task(client.read()) for client in clients]
    readers += [asyncio.create_task(client.write()) for client in clients]
    result: dict[str, Any] = {"handshakes": handshakes, "open_seconds": opened_for, "failed_connects": len(failed)}
    print("open", flush=True)  # the orchestrator measures the server, then says go
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    # A full collection over thousands of clients and their records pauses
    # this process for hundreds of milliseconds, which would show as server
    # latency: no collector while measuring (what the traffic makes is freed
    # by reference counting).
    gc.freeze()
    gc.disable()
    if config["mode"] == "traffic":
        result["sent"] = await traffic(config, clients, recorder)
    # Server usage is measured up to here: catching up and closing the
    # sockets are not traffic.
    print("done", flush=True)
    # Live deliveries are those seen by now (the drain after the last send);
    # what an overloaded server delivers while clients catch up is late.
    live = len(recorder.deliveries)
    if config["mode"] == "traffic" and config["variant"] in CATCH_UP_VARIANTS:
        # Clients catch up once every process's sends are answered (the
        # orchestrator says when): a message acknowledged after a client
        # caught up would otherwise count as lost.
        await answered(recorder, len(result["sent"]))
        result.update(unanswered=len(result["sent"]) - recorder.answers, refused=recorder.refused)
        print("answered", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        result["holdings"] = await catch_up(config, clients)
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*(client.socket.close() for client in clients), return_exceptions=True)
    result.update(
        deliveries=recorder.deliveries[:live],
        duplicates=recorder.duplicates,
        out_of_order=recorder.out_of_order,
        acks=recorder.acks,
    )
    open(result_path, "w").write(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
