"""The chat WebSocket: authenticate on connect, then decode each frame,
validate it, authorise it and hand it to one service call. No storage here."""

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from asgiref.typing import ASGIReceiveCallable as Receive
from asgiref.typing import ASGISendCallable as Send
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.utils import await_many_dispatch
from django.conf import settings

from chat import auth, backpressure, delivery, events, limits, services, validation, verification
from chat.domain import Identity
from chat.errors import (
    AuthenticationFailed,
    AuthUnavailable,
    ChatError,
    DeliveryUnavailable,
    InvalidJson,
    InvalidRequest,
    NotAParticipant,
    RateLimited,
    StorageUnavailable,
    UnknownAction,
    VerificationRequired,
)
from chat.hub import hub
from chat.ratelimit import Throttle
from chat.session import Session

log = logging.getLogger(__name__)

# Close codes: autobahn (daphne) refuses any but 1000 and 3000-4999.
CLOSE_TRY_AGAIN = 4503
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_EXPIRED = 4408
CLOSE_TOO_MANY_SOCKETS = 4429
CLOSE_TOO_SLOW = 4413
# One typing event per user and room every 2 s, in this process.
typing_throttle = Throttle(2.0)


def origin_allowed(scope: dict[str, Any]) -> bool:
    """Browsers send Origin: it must be one of ALLOWED_ORIGINS ("*": any) or,
    when that is empty, the origin of the Host header. Origins compare by
    scheme, host and port, so look-alikes (`http://example.com.evil.net`,
    `http://example.com:8000@evil`, `null`) fail. daphne puts no scheme in
    a socket's scope (and TLS may end at a proxy): without one, the Host is
    read in the Origin's scheme. Clients without Origin pass."""
    headers = dict(scope.get("headers", []))
    raw = headers.get(b"origin", b"").decode("latin-1")
    if not raw or "*" in settings.ALLOWED_ORIGINS:
        return True
    origin = validation.origin(raw)
    if origin is None:
        return False
    if settings.ALLOWED_ORIGINS:
        return origin in {validation.origin(entry) for entry in settings.ALLOWED_ORIGINS}
    host = headers.get(b"host", b"").decode("latin-1")
    return origin == validation.origin(host, scheme=scope.get("scheme", origin.scheme))


def query_token(scope: dict[str, Any]) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


def decode_frame(text_data: str | None, bytes_data: bytes | None) -> dict[str, Any]:
    if text_data is None:
        raise InvalidJson("Binary frames are not accepted; send JSON text")
    try:
        frame = json.loads(text_data)
    except (ValueError, RecursionError) as exc:
        raise InvalidJson("Frame is not valid JSON") from exc
    if not isinstance(frame, dict):
        raise InvalidJson("Frame must be a JSON object")
    return frame


class ChatConsumer(AsyncWebsocketConsumer):
    too_slow = False  # closed for not reading: frames are no longer written
    session: Session | None = None  # once registered, until disconnect or reaping

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
        self.queued_bytes = backpressure.gauge(self.base_send)
        if not origin_allowed(self.scope):
            await self.close(code=CLOSE_FORBIDDEN_ORIGIN)
            return
        try:
            identity = await auth.authenticate(query_token(self.scope))
        except AuthenticationFailed as error:
            log.info("refused connection: %s", error.message)
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        except AuthUnavailable:
            await self.close(code=CLOSE_TRY_AGAIN)
            return
        await self._register(identity)

    async def _register(self, identity: Identity) -> None:
        connection_id, opened = uuid.uuid4().hex, None
        try:
            # Join the user's group before reading the verification status, so a
            # decision made in between still reaches this connection. The
            # socket's slot is claimed meanwhile; a refused socket writes nothing.
            _, admitted = await asyncio.gather(
                self._join(delivery.user_group(identity.user_id)),
                limits.claim_socket(user_id=identity.user_id, socket_id=connection_id),
            )
            if admitted:
                opened = await services.open_connection(identity=identity, connection_id=connection_id)
        except (StorageUnavailable, DeliveryUnavailable) as error:
            log.warning("connection of %s refused for now: %s", identity.user_id, error.message)
            await limits.release_socket(user_id=identity.user_id, socket_id=connection_id)
            await self._leave_all()
            await self.close(code=CLOSE_TRY_AGAIN)
            return
        if opened is None:
            log.info("connection of %s refused: USER_MAX_SOCKETS are open", identity.user_id)
            await self._leave_all()
            await self.close(code=CLOSE_TOO_MANY_SOCKETS)
            return
        session = Session(identity=identity, connection=opened.connection, verification=opened.verification)
        self.session = session
        session.start(self._close_at_expiry(session))
        try:
            await asyncio.gather(*(self._join_room(session, room_id) for room_id in opened.room_ids))
        except DeliveryUnavailable:
            await self.close(code=CLOSE_TRY_AGAIN)  # disconnect() unregisters it

    async def disconnect(self, code: int) -> None:
        await self._end(reaped=False)

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
        # A loop, not an Event: authenticate moves the time on while we sleep.
        while (left := session.identity.expires_at + settings.JWT_LEEWAY_SECONDS - time.time()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(left)
        log.info("connection of %s closed: its token expired", session.identity.user_id)
        await self.close(code=CLOSE_UNAUTHORIZED)

    # --- client frames -------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        session = self.session
        if session is None:
            return  # refused or closing: frames that raced the close are ignored
        if time.time() >= session.identity.expires_at + settings.JWT_LEEWAY_SECONDS:  # the timer may not have fired yet
            if session.expiry is not None and not session.expiry.done():
                session.expiry.cancel()
                await self.close(code=CLOSE_UNAUTHORIZED)
            return
        action = None
        try:
            if wait_ms := session.budget.take():
                raise RateLimited(retry_after_ms=wait_ms)
            frame = decode_frame(text_data, bytes_data)
            action = frame.get("action")
            await self._handler(action)(session, frame)
        except ChatError as error:
            await self.send_frame(events.error_frame(error, validation.echoed_action(action)))
        except Exception:
            log.exception("unexpected error handling %r", action)
            await self.send_frame(events.error_frame(ChatError(), validation.echoed_action(action)))

    def _handler(self, action: Any) -> Callable[[Session, dict[str, Any]], Awaitable[None]]:
        if not isinstance(action, str):
            raise InvalidRequest("action must be a string")
        handlers = {
            "sendMessage": self.on_send_message,
            "getMessages": self.on_get_messages,
            "markRead": self.on_mark_read,
            "typing": self.on_typing,
            "ping": self.on_ping,
            "authenticate": self.on_authenticate,
        }
        if action not in handlers:
            shown = validation.echoed_action(action)
            raise UnknownAction(f"Unknown action: {shown}" if shown else None)
        return handlers[action]

    async def on_ping(self, session: Session, frame: dict[str, Any]) -> None:
        await self.send_frame(events.pong_frame())

    async def on_authenticate(self, session: Session, frame: dict[str, Any]) -> None:
        """Extend the session with a fresh token of the same user. A token
        that fails, or names another user, is refused and changes nothing."""
        token = frame.get("token")
        if not isinstance(token, str) or not token:
            raise InvalidRequest("token must be a non-empty string")
        identity = await auth.authenticate(token)
        if identity.user_id != session.identity.user_id:
            raise AuthenticationFailed("The token is for another user")
        session.identity = identity
        valid_until = identity.expires_at + settings.JWT_LEEWAY_SECONDS
        await self.send_frame(events.authenticated_frame(identity.user_id, valid_until))

    async def on_send_message(self, session: Session, frame: dict[str, Any]) -> None:
        request = validation.send_message(frame)
        await self._ensure_verified(session)
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
        await self._ensure_verified(session)  # read receipts reach the room
        user_id = session.identity.user_id
        watermark, moved = await services.mark_read(user_id=user_id, room_id=room_id, seq=seq)
        if not moved:  # nobody else is told; this connection still learns where it stands
            await self.send_frame(events.read_frame(room_id, user_id, watermark))

    async def on_typing(self, session: Session, frame: dict[str, Any]) -> None:
        room_id = validation.room_id(frame.get("chatRoomId"))
        if room_id not in session.rooms:
            raise NotAParticipant()
        await self._ensure_verified(session)
        if not typing_throttle.ready((session.identity.user_id, room_id)):
            return  # dropped quietly: clients send one per keystroke
        await services.typing(user_id=session.identity.user_id, room_id=room_id)

    async def _ensure_verified(self, session: Session) -> None:
        """The cached status is kept current by verification events. In case
        such an event was lost, a negative status is re-read at every send
        and a positive one once it is VERIFICATION_RECHECK_SECONDS old."""
        stale = time.monotonic() - session.verified_at > settings.VERIFICATION_RECHECK_SECONDS
        if session.verification != verification.APPROVED or stale:
            session.verification = await services.current_status(session.identity.user_id)
            session.verified_at = time.monotonic()
        if session.verification != verification.APPROVED:
            raise VerificationRequired()

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
            log.info("closing a socket that does not read: %d bytes unsent", self.queued_bytes())
            await self.close(code=CLOSE_TOO_SLOW)

    # --- channel-layer events ----------------------------------------------------------

    async def deliver_frame(self, event: events.EncodedFrame) -> None:
        """Called by the hub with an encoded frame for this socket's groups."""
        if event.get("skip") == self.channel_name:
            return
        if self.session is not None and event.get("skip_user") == self.session.identity.user_id:
            return
        await self._write(event["text"])

    async def chat_verification(self, event: events.VerificationEvent) -> None:
        if self.session is not None:
            self.session.verification, self.session.verified_at = event["status"], time.monotonic()
            await self.send_frame(events.verification_frame(event["status"]))

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
