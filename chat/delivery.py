"""Group names and sends over the channel layer.

Every connection subscribes (through its process's hub) to its user's group
(verification changes, new rooms, reaping) and to one group per room it
participates in. A room message is one group_send whatever the room size;
events carry their group so each process's hub knows whose they are."""
import hashlib
import logging
from typing import Any

from channels.layers import get_channel_layer

log = logging.getLogger(__name__)


def _group(kind: str, ident: str) -> str:
    # Group names allow only [A-Za-z0-9._-] and fewer than 100 characters;
    # user ids (any OIDC subject) and long room ids do not always fit.
    return f"{kind}.{hashlib.sha256(ident.encode()).hexdigest()[:40]}"


def room_group(room_id: str) -> str:
    return _group("room", room_id)


def user_group(user_id: str) -> str:
    return _group("user", user_id)


async def _send(group: str, event: dict[str, Any]) -> None:
    await get_channel_layer().group_send(group, {**event, "group": group})


async def to_room(room_id: str, event: dict[str, Any]) -> None:
    await _send(room_group(room_id), event)


async def to_user(user_id: str, event: dict[str, Any]) -> None:
    await _send(user_group(user_id), event)


async def to_users_quietly(user_ids: list[str], event: dict[str, Any]) -> None:
    """Best-effort notification: the state it announces is already stored,
    so a channel-layer failure is logged, not raised."""
    for user_id in user_ids:
        try:
            await to_user(user_id, event)
        except Exception:
            log.exception("could not notify user %s of %s", user_id, event["type"])
