"""The chat WebSocket: authenticate on connect, then decode each frame,
validate it, authorise it and hand it to one service call. No storage here,
and no policy of its own: the handshake's is chat.handshake's, the rules on
a registered socket's state (expiry, verification) chat.session's, input's
chat.validation's, and the rest the services'."""

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.typing import ASGIReceiveCallable as Receive
from asgiref.typing import ASGISendCallable as Send
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.utils import await_many_dispatch
from django.conf import settings

from chat import auth, backpressure, delivery, events, logs, metrics, services, validation
from chat.domain import Identity
from chat.errors import (
    AuthenticationFailed,
    AuthUnavailable,
    ChatError,
    DeliveryUnavailable,
    NotAParticipant,
    RateLimited,
    StorageUnavailable,
    UserSuspended,
)
from chat.handshake import origin_allowed, query_token
from chat.hub import hub
from chat.session import Session

log = logging.getLogger(__name__)

# Close codes: autobahn (daphne) refuses any but 1000 and 3000-4999.
CLOSE_TRY_AGAIN = 4503
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_EXPIRED = 4408
CLOSE_TOO_MANY_SOCKETS = 4429
CLOSE_TOO_SLOW = 4413
CLOSE_RESTARTING = 4012  # the server process is stopping (chatproject/serve.py); mirrors 1012
CLOSE_SUSPENDED = 4430


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


class ChatConsumer(AsyncWebsocketConsumer):
    too_slow = False  # closed for not reading: frames are no longer written
    session: Session | None = None  # once registered, until disconnect or reaping
    registered_at: float | None = None  # monotonic; set once the socket is registered, never cleared

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        """As channels' consumer, except that this socket's own channel is a
        queue in this process rather than a subscription in Redis: only the
        hub of this process writes to it (events for this socket, in order
        with its frames). A handshake so costs Redis nothing per socket and
        still completes, to be closed with a code, while Redis is down."""
        self.scope = scope
        self.channel_layer = None
        self.channel_name = f"local.{uuid.uuid4().hex}"
        self._inbox: asyncio.Queue[events.ConsumerEvent] = asyncio.Queue()
        self.base_send = send
        self.joined: set[str] = set()  # the hub's groups, the user's one joined before registration
        try:
            await await_many_dispatch([receive, self._inbox.get], self.dispatch)
        except StopConsumer:
            pass

    def post(self, event: events.ConsumerEvent) -> None:
        """Queue a channel-layer event for this socket (called by the hub)."""
        self._inbox.put_nowait(event)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch first closes stale ORM connections through plain
        sync_to_async, for every frame and event: a hop to the process's one
        sync thread (about 0.5 ms of CPU, and a queue shared by every
        socket). This consumer never uses the ORM on that thread (run_orm
        closes connections on its pool threads), so the handler runs directly."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        # Accept first: a close before accept becomes an HTTP 403 and the
        # client never learns the code.
        await self.accept()
        metrics.CONNECTS.inc()
        self.accepted_at = time.monotonic()
        self.queued_bytes = backpressure.gauge(self.base_send)
        if not origin_allowed(self.scope):
            log.info("refused connection: its Origin is not in ALLOWED_ORIGINS")
            await self.close(code=CLOSE_FORBIDDEN_ORIGIN)
            return
        try:
            identity = await auth.authenticate(query_token(self.scope))
        except AuthenticationFailed as error:
            log.info("refused connection: %s", error.message)
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        except AuthUnavailable:
            log.info("refused connection for now: the issuer's keys could not be fetched")
            await self.close(code=CLOSE_TRY_AGAIN)
            return
        await self._register(identity)

    async def _register(self, identity: Identity) -> None:
        connection_id = uuid.uuid4().hex
        logs.bind(connection_id=connection_id, user_id=identity.user_id)
        user_group = delivery.user_group(identity.user_id)
        try:
            opened = await services.admit_connection(
                identity=identity, connection_id=connection_id, joining=self._join(user_group)
            )
        except (StorageUnavailable, DeliveryUnavailable) as error:
            log.warning("connection of %s refused for now: %s", identity.user_id, error.message)
            await self._refuse(CLOSE_TRY_AGAIN)
            return
        except UserSuspended:
            log.info("connection of %s refused: the user is suspended", identity.user_id)
            await self._refuse(CLOSE_SUSPENDED)
            return
        if opened is None:
            log.info("connection of %s refused: USER_MAX_SOCKETS are open", identity.user_id)
            await self._refuse(CLOSE_TOO_MANY_SOCKETS)
            return
        session = Session(identity=identity, connection=opened.connection, verification=opened.verification)
        self.session, self.registered_at = session, time.monotonic()
        metrics.OPEN_SOCKETS.inc()
        log.info("socket opened", extra={"outcome": "opened", "duration_ms": _ms_since(self.accepted_at)})
        session.start(self._close_at_expiry(session))
        try:
            await asyncio.gather(*(self._join_room(session, room_id) for room_id in opened.room_ids))
        except DeliveryUnavailable:
            await self.close(code=CLOSE_TRY_AGAIN)  # disconnect() unregisters it

    async def _refuse(self, code: int) -> None:
        """Close a socket that is not registered, leaving what it joined."""
        await self._leave_all()
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        await self._end(reaped=False)
        if self.registered_at is not None:
            metrics.OPEN_SOCKETS.dec()
            lifetime_ms = _ms_since(self.registered_at)
            log.info("socket closed", extra={"outcome": "closed", "code": code, "duration_ms": lifetime_ms})

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        """Every close the server makes: counted by code, as a refusal if
        the socket was never registered."""
        metrics.server_closed(code if isinstance(code, int) else None, registered=self.registered_at is not None)
        await super().close(code=code, reason=reason)

    async def _end(self, *, reaped: bool) -> None:
        """The one teardown, whether the socket closed or its connection was
        reaped: leave the groups, then end the session if there is one."""
        await self._leave_all()
        session, self.session = self.session, None
        if session is not None:
            await session.end(reaped=reaped)

    async def _join(self, group: str) -> None:
        await hub().subscribe(self, group)
        self.joined.add(group)

    async def _join_room(self, session: Session, room_id: str) -> None:
        await self._join(delivery.room_group(room_id))
        session.rooms.add(room_id)

    async def _leave_room(self, session: Session, room_id: str) -> None:
        group = delivery.room_group(room_id)
        await hub().unsubscribe(self, group)
        self.joined.discard(group)
        session.rooms.discard(room_id)

    async def _leave_all(self) -> None:
        # Taken first: an event handled while we wait may leave a group too.
        joined, self.joined = self.joined, set()
        for group in joined:
            await hub().unsubscribe(self, group)

    async def _close_at_expiry(self, session: Session) -> None:
        """Close the socket with 4401 when its token expires (plus the
        leeway), unless an authenticate frame has moved that time on."""
        await session.until_expired()
        log.info("connection of %s closed: its token expired", session.identity.user_id)
        await self.close(code=CLOSE_UNAUTHORIZED)

    # --- client frames -------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        session = self.session
        if session is None:
            return  # refused or closing: frames that raced the close are ignored
        if session.expired():  # the timer may not have fired yet
            if session.expiry is not None and not session.expiry.done():
                session.expiry.cancel()
                await self.close(code=CLOSE_UNAUTHORIZED)
            return
        action, outcome, started = None, "ok", time.monotonic()
        try:
            if wait_ms := session.budget.take():
                metrics.RATE_LIMITED.labels("socket_frames").inc()
                raise RateLimited(retry_after_ms=wait_ms)
            frame = validation.client_frame(text_data)
            action = frame.get("action")
            with logs.context(action=metrics.action_label(action)):
                await self._handler(action)(session, frame)
        except UserSuspended as error:  # found on re-reading the profile: the suspension's event was lost
            outcome = error.code
            await self._close_suspended()
        except ChatError as error:
            outcome = error.code
            await self.send_frame(events.error_frame(error, validation.echoed_action(action)))
        except Exception:
            outcome = ChatError.code
            log.exception("unexpected error handling %r", action)
            await self.send_frame(events.error_frame(ChatError(), validation.echoed_action(action)))
        metrics.frame_handled(action, outcome, started)

    # The client frames' actions (docs/protocol.md) and their handlers.
    handlers = {
        "sendMessage": "on_send_message",
        "getMessages": "on_get_messages",
        "markRead": "on_mark_read",
        "typing": "on_typing",
        "ping": "on_ping",
        "authenticate": "on_authenticate",
    }

    def _handler(self, action: Any) -> Callable[[Session, dict[str, Any]], Awaitable[None]]:
        handler: Callable[[Session, dict[str, Any]], Awaitable[None]] = getattr(
            self, self.handlers[validation.action(action, self.handlers)]
        )
        return handler

    async def on_ping(self, session: Session, frame: dict[str, Any]) -> None:
        await self.send_frame(events.pong_frame())

    async def on_authenticate(self, session: Session, frame: dict[str, Any]) -> None:
        """Extend the session with a fresh token of the same user. A token
        that fails, or names another user, is refused and changes nothing."""
        session.renew(await auth.authenticate(validation.token(frame.get("token"))))
        await self.send_frame(events.authenticated_frame(session.identity.user_id, session.valid_until))

    async def on_send_message(self, session: Session, frame: dict[str, Any]) -> None:
        request = validation.send_message(frame)
        await session.ensure_verified()
        result = await services.send_message(
            sender_id=session.identity.user_id, request=request, origin_channel=self.channel_name
        )
        if result.message is not None:
            await self.send_frame(events.message_frame(result.message))
        await self.send_frame(events.ack_frame(result.ack))

    async def on_get_messages(self, session: Session, frame: dict[str, Any]) -> None:
        request = validation.get_messages(frame)
        page = await services.history(
            session.identity,
            request.room_id,
            after_seq=request.after_seq,
            before_seq=request.before_seq,
            limit=request.limit,
        )
        await self.send_frame(events.messages_frame(request.room_id, page.messages, has_more=page.has_more))

    async def on_mark_read(self, session: Session, frame: dict[str, Any]) -> None:
        room_id = validation.room_id(frame.get("chatRoomId"))
        seq = validation.seq(frame.get("seq"), "seq")
        await session.ensure_verified()  # read receipts reach the room
        user_id = session.identity.user_id
        watermark, moved = await services.mark_read(user_id=user_id, room_id=room_id, seq=seq)
        if not moved:  # nobody else is told; this connection still learns where it stands
            await self.send_frame(events.read_frame(room_id, user_id, watermark))

    async def on_typing(self, session: Session, frame: dict[str, Any]) -> None:
        room_id = validation.room_id(frame.get("chatRoomId"))
        if room_id not in session.rooms:
            raise NotAParticipant()
        await session.ensure_verified()
        await services.typing(user_id=session.identity.user_id, room_id=room_id)

    async def send_frame(self, frame: events.ServerFrame) -> None:
        await self._write(events.encode(frame))

    async def _write(self, text: str) -> None:
        """Every frame to the client goes through here. Frames for a client
        that does not read wait in this process's memory; past
        SOCKET_SEND_BUFFER_BYTES the socket is closed with 4413 and gets
        nothing more. The close frame queues behind that backlog, so daphne
        drops the connection (and the backlog) when the peer has not answered
        it within autobahn's close handshake timeout (1 s)."""
        if self.too_slow:
            return
        await self.send(text_data=text)
        if 0 < settings.SOCKET_SEND_BUFFER_BYTES < self.queued_bytes():
            self.too_slow = True
            metrics.SLOW_SOCKETS_DROPPED.inc()
            log.info("closing a socket that does not read: %d bytes unsent", self.queued_bytes())
            await self.close(code=CLOSE_TOO_SLOW)

    # --- channel-layer events ----------------------------------------------------------

    async def deliver_frame(self, event: events.EncodedFrame) -> None:
        """Called by the hub with an encoded frame for this socket's groups."""
        if event.get("skip") == self.channel_name:
            return
        if self.session is not None and event.get("skip_user") == self.session.identity.user_id:
            return
        metrics.DELIVERIES.inc()
        await self._write(event["text"])

    async def chat_verification(self, event: events.VerificationEvent) -> None:
        if self.session is not None:
            self.session.note_verification(event["status"])
            await self.send_frame(events.verification_frame(event["status"], event.get("reason")))

    async def chat_suspended(self, event: events.SuspendedEvent) -> None:
        if self.session is not None:
            await self._close_suspended()

    async def _close_suspended(self) -> None:
        """End the session first, so that frames racing the close are
        ignored, then close with 4430."""
        if self.session is not None:
            log.info("connection of %s closed: the user is suspended", self.session.identity.user_id)
        await self._end(reaped=False)
        await self.close(code=CLOSE_SUSPENDED)

    async def chat_room_joined(self, event: events.RoomJoinedEvent) -> None:
        if self.session is not None:
            await self._join_room(self.session, event["room"]["chatRoomId"])
            await self.send_frame(events.room_frame(event["room"]))

    async def chat_room_left(self, event: events.RoomLeftEvent) -> None:
        if self.session is not None:
            await self._leave_room(self.session, event["room_id"])
            await self.send_frame(events.room_left_frame(event["room_id"]))

    async def chat_reaped(self, event: events.ReapedEvent) -> None:
        if self.session is not None and event["connection_id"] == self.session.connection.connection_id:
            await self._end(reaped=True)
            await self.close(code=CLOSE_EXPIRED)
