"""The HTTP API under /chat/ and /activities/: JSON in and out, a Bearer ID
token checked exactly like the socket's, errors as {"error": {code, message}}
with the codes the socket uses."""

import functools
import json
import logging
import math
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import FileResponse, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from chat import auth, events, metrics, services, validation, verification
from chat.domain import Identity
from chat.errors import (
    AuthenticationFailed,
    ChatError,
    Forbidden,
    InvalidJson,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    VerificationRequired,
)
from chat.ratelimit import KeyedBuckets
from chat.services import people

log = logging.getLogger(__name__)
OPENAPI = Path(settings.BASE_DIR) / "docs" / "openapi.json"
View = Callable[..., Coroutine[Any, Any, JsonResponse]]
_budgets: KeyedBuckets | None = None


def _wait_ms(user_id: str) -> int:
    """0 if the user may make a request in this process now, else how long
    until they may."""
    global _budgets
    if _budgets is None:
        _budgets = KeyedBuckets(settings.API_RATE, settings.API_BURST)
    return _budgets.take(user_id)


class MethodNotAllowed(ChatError):
    code = "METHOD_NOT_ALLOWED"
    status = 405
    default_message = "Method not allowed"


def _bearer(request: HttpRequest) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _error(error: ChatError) -> JsonResponse:
    metrics.ERRORS.labels(error.code, "http").inc()
    response = JsonResponse(events.error_body(error), status=error.status)
    if isinstance(error, AuthenticationFailed):
        response["WWW-Authenticate"] = 'Bearer realm="chat"'
    if isinstance(error, RateLimited):
        response["Retry-After"] = str(math.ceil(error.retry_after_ms / 1000))
    return response


def endpoint(*methods: str) -> Callable[[View], View]:
    """Authenticate, refuse suspended users (USER_SUSPENDED, 403), dispatch
    on method, and turn ChatErrors into JSON errors."""

    def wrap(view: View) -> View:
        @csrf_exempt
        @functools.wraps(view)
        async def handle(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
            try:
                if request.method not in methods:
                    raise MethodNotAllowed()
                identity = await auth.authenticate(_bearer(request))
                if wait_ms := _wait_ms(identity.user_id):
                    metrics.RATE_LIMITED.labels("api_requests").inc()
                    raise RateLimited(retry_after_ms=wait_ms)
                await services.ensure_not_suspended(identity.user_id)  # the PROFILE item: no ORM
                return await view(request, identity, *args, **kwargs)
            except ChatError as error:
                return _error(error)
            except Exception:
                log.exception("unexpected error in %s", request.path)
                return _error(ChatError())

        return handle

    return wrap


async def _ensure_verified(identity: Identity) -> None:
    """Unverified users read their rooms and nothing more: what they do
    must not reach other people (a room's name, a "joined" message)."""
    if await services.current_status(identity.user_id) != verification.APPROVED:
        raise VerificationRequired()


def json_body(request: HttpRequest) -> dict[str, Any]:
    """A request's JSON object body, or the client error that says why not."""
    try:
        raw = request.body
    except RequestDataTooBig as exc:  # over DATA_UPLOAD_MAX_MEMORY_SIZE
        raise PayloadTooLarge() from exc
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, RecursionError) as exc:
        raise InvalidJson("Body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise InvalidJson("Body must be a JSON object")
    return body


def _int_params(request: HttpRequest, *names: str) -> dict[str, int | None]:
    return {name: validation.query_int(request.GET.get(name), name) for name in names}


def _listing(listing: services.RoomListing) -> dict[str, Any]:
    summary = listing.summary
    return {
        **events.room_data(summary.room),
        "lastMessage": summary.last_message,
        "lastMessageAt": summary.last_message_at,
        "lastSeq": summary.room.last_seq,
        "unreadCount": listing.unread_count,
        "onlineParticipantIds": listing.online_participant_ids,
    }


@endpoint("GET", "POST")
async def rooms(request: HttpRequest, identity: Identity) -> JsonResponse:
    if request.method == "GET":
        listings = await services.list_rooms(identity.user_id)
        return JsonResponse({"rooms": [_listing(listing) for listing in listings]})
    fields = validation.create_room(json_body(request))
    # Activities bind to a room on their first join; a caller naming one
    # here could squat it for everybody who joins later. Staff may.
    if fields.activity_id is not None and services.ADMIN_GROUP not in identity.groups:
        raise Forbidden("activityId is set by joining the activity")
    await _ensure_verified(identity)
    room = await services.create_room(
        participant_ids=fields.participant_ids,
        name=fields.name,
        activity_id=fields.activity_id,
        creator_id=identity.user_id,
    )
    return JsonResponse({"room": events.room_data(room)}, status=201)


@endpoint("GET")
async def me(request: HttpRequest, identity: Identity) -> JsonResponse:
    """Who the token is for and whether they may send: the browser client
    locks its input from the start for an unverified user."""
    status = await services.current_status(identity.user_id)
    return JsonResponse({"userId": identity.user_id, "nickname": identity.nickname, "verificationStatus": status})


@endpoint("GET")
async def room_detail(request: HttpRequest, identity: Identity, room_id: str) -> JsonResponse:
    page = await services.history(identity, validation.room_id(room_id))
    return JsonResponse({"room": events.room_data(page.room), "messages": page.messages, "hasMore": page.has_more})


@endpoint("GET")
async def room_participants(request: HttpRequest, identity: Identity, room_id: str) -> JsonResponse:
    participants = await people.room_participants(identity, validation.room_id(room_id))
    return JsonResponse(
        {"chatRoomId": room_id, "participants": [{"userId": p.user_id, "nickname": p.nickname} for p in participants]}
    )


@endpoint("GET")
async def room_messages(request: HttpRequest, identity: Identity, room_id: str) -> JsonResponse:
    fields = {"chatRoomId": room_id, **_int_params(request, "afterSeq", "beforeSeq", "limit")}
    query = validation.get_messages(fields)
    page = await services.history(
        identity, query.room_id, after_seq=query.after_seq, before_seq=query.before_seq, limit=query.limit
    )
    return JsonResponse({"chatRoomId": query.room_id, "messages": page.messages, "hasMore": page.has_more})


@endpoint("POST")
async def leave(request: HttpRequest, identity: Identity, room_id: str) -> JsonResponse:
    verified = await services.current_status(identity.user_id) == verification.APPROVED
    await services.leave_room(identity, validation.room_id(room_id), named=verified)
    return JsonResponse({"left": True, "chatRoomId": room_id})


@endpoint("POST")
async def join_activity(request: HttpRequest, identity: Identity, activity_id: str) -> JsonResponse:
    activity_id = validation.activity_id(activity_id)
    await _ensure_verified(identity)
    room, added = await services.join_activity(identity, activity_id)
    return JsonResponse({"room": events.room_data(room), "joined": added}, status=201 if added else 200)


def openapi(request: HttpRequest) -> FileResponse:
    """The API's OpenAPI document (public)."""
    return FileResponse(OPENAPI.open("rb"), content_type="application/json")


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """Unknown routes answer in JSON too."""
    return _error(NotFound())
