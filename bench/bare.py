"""L, the limit: a bare asyncio WebSocket fan-out server (the `websockets`
library; no Django, no Channels, no storage, no auth) that speaks P's frames
for what the load generator uses: ping/pong, and sendMessage answered with
the message to every member of the room (the sender included) and an ack
to the sender. Rooms come from the path (/l/{room}/), seqs from a counter.
Usage: python -m bench.bare PORT"""

import asyncio
import json
import sys
import time
import uuid
from collections import defaultdict
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.http11 import Request, Response

from chat.domain import iso_from_ms

rooms: dict[str, set[ServerConnection]] = defaultdict(set)
seqs: dict[str, int] = defaultdict(int)


def health(connection: ServerConnection, request: Request) -> Response | None:
    if request.path == "/healthz":
        return connection.respond(HTTPStatus.OK, "ok\n")
    return None


def message_frame(room: str, frame: dict[str, Any]) -> str:
    seqs[room] += 1
    now = time.time_ns() // 1_000_000
    data = {
        "messageId": str(uuid.uuid4()),
        "chatRoomId": room,
        "senderId": "bare",
        "content": frame["content"],
        "messageType": "user",
        "createdAt": iso_from_ms(now),
        "timestamp": now,
        "seq": seqs[room],
        "clientMessageId": frame.get("clientMessageId"),
    }
    return json.dumps({"type": "message", "data": data}, separators=(",", ":"))


async def chat(connection: ServerConnection) -> None:
    room = connection.request.path.split("?")[0].strip("/").split("/")[-1]
    members = rooms[room]
    members.add(connection)
    try:
        async for raw in connection:
            frame = json.loads(raw)
            if frame.get("action") == "ping":
                await connection.send('{"type":"pong"}')
            elif frame.get("action") == "sendMessage":
                text = message_frame(room, frame)
                broadcast(members, text)
                ack = {"chatRoomId": room, "seq": seqs[room], "clientMessageId": frame.get("clientMessageId")}
                await connection.send(json.dumps({"type": "ack", "data": ack}, separators=(",", ":")))
    finally:
        members.discard(connection)


async def main(port: int) -> None:
    async with serve(chat, "127.0.0.1", port, process_request=health, compression=None, max_queue=None):
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
