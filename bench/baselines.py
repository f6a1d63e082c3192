"""The two baselines the benchmark compares this project with.

B0, the Channels tutorial consumer: join a group per room, group_send every
message, no auth, no persistence; the ceiling of the framework.
B1, the reference system's algorithm, faithfully: the same auth and the same
persistence as the product, then per message one query per participant for
their connections, one after another, and one send per connection."""

import json
import os
import time
import uuid

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
django_http = get_asgi_application()

from channels.exceptions import ChannelFull  # noqa: E402 (after Django setup)
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from chat import auth, events, storage, validation  # noqa: E402
from chat.consumers import query_token  # noqa: E402
from chat.domain import Connection, Message, iso_from_ms  # noqa: E402
from chat.errors import ChatError  # noqa: E402


class TutorialConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.group = f"b0.{self.scope['url_route']['kwargs']['room']}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        message = json.loads(text_data)["message"]
        await self.channel_layer.group_send(self.group, {"type": "chat.message", "message": message})

    async def chat_message(self, event: dict) -> None:
        await self.send(text_data=json.dumps({"message": event["message"]}))


class ReferenceConsumer(AsyncWebsocketConsumer):
    """API Gateway's connection id is this consumer's channel name."""

    async def connect(self) -> None:
        await self.accept()
        try:
            self.identity = await auth.authenticate(query_token(self.scope))
        except ChatError:
            await self.close(code=4401)
            return
        now = int(time.time())
        self.connection = Connection(self.channel_name, self.identity.user_id, iso_from_ms(now * 1000), now + 86400)
        await storage.put_connection(self.connection)

    async def disconnect(self, code: int) -> None:
        if getattr(self, "connection", None):
            await storage.delete_connection(self.connection.user_id, self.connection.connection_id)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frame = json.loads(text_data)
        if frame.get("action") == "ping":
            await self.send(text_data=events.encode(events.pong_frame()))
            return
        request = validation.send_message(frame)
        room = await storage.get_room(request.room_id)
        message_id = str(uuid.uuid4())
        place = await storage.allocate(
            request.room_id, sender_id=self.identity.user_id, message_id=message_id, content=request.content
        )
        message = Message(
            message_id, request.room_id, self.identity.user_id, request.content, "user", place.timestamp, place.seq
        )
        await storage.put_message(message)
        now = int(time.time())
        targets = []
        for user_id in room.participant_ids:  # the original's N+1: a query per participant
            targets += [(user_id, channel) for channel in await storage.user_connection_ids(user_id, now=now)]
        for user_id, channel in targets:
            try:
                await self.channel_layer.send(channel, {"type": "chat.frame", "frame": events.message_frame(message)})
            except ChannelFull:  # the original's 410 Gone: a zombie connection, deleted
                await storage.delete_connection(user_id, channel)
        await self.send(text_data=events.encode({"messageId": message.message_id}))

    async def chat_frame(self, event: dict) -> None:
        await self.send(text_data=events.encode(event["frame"]))


application = ProtocolTypeRouter(
    {
        "http": django_http,
        "websocket": URLRouter(
            [
                path("b0/<str:room>/", TutorialConsumer.as_asgi()),
                path("b1/", ReferenceConsumer.as_asgi()),
            ]
        ),
    }
)
auth.start_warming()
