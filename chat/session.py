"""A registered socket's state: created once its registration succeeds,
ended in one place whether the socket closed or its connection was reaped.

The registry items are written only under the session's lock, and ending
takes that lock and awaits the keep-alive, so nothing a refresh writes can
outlive the session."""

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from chat import limits, services, verification
from chat.domain import Connection, Identity
from chat.errors import AuthenticationFailed, StorageUnavailable, VerificationRequired
from chat.ratelimit import TokenBucket
from chat.tasks import stop

log = logging.getLogger(__name__)


def _frame_budget() -> TokenBucket:
    return TokenBucket(settings.SOCKET_RATE, settings.SOCKET_BURST)


@dataclass(eq=False)
class Session:
    identity: Identity  # replaced by a fresher token of the same user
    connection: Connection  # the registry record, its ttl pushed on by the keep-alive
    verification: str  # the cached status (chat.verification) ...
    verified_at: float = field(default_factory=time.monotonic)  # ... and when it was read
    rooms: set[str] = field(default_factory=set)
    budget: TokenBucket = field(default_factory=_frame_budget)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    tasks: "list[asyncio.Task[None]]" = field(default_factory=list, repr=False)
    expiry: "asyncio.Task[None] | None" = field(default=None, repr=False)

    @property
    def valid_until(self) -> float:
        """When the token expires, leeway included (Unix seconds)."""
        return self.identity.expires_at + settings.JWT_LEEWAY_SECONDS

    def expired(self) -> bool:
        return time.time() >= self.valid_until

    async def until_expired(self) -> None:
        """Return once the token has expired, however often renew() moved
        that time on meanwhile."""
        while (left := self.valid_until - time.time()) > 0:  # noqa: ASYNC110 -- renew() moves the time on while we sleep
            await asyncio.sleep(left)

    def renew(self, identity: Identity) -> None:
        """Go on with a fresher token of the same user; another user's token
        is refused and changes nothing."""
        if identity.user_id != self.identity.user_id:
            raise AuthenticationFailed("The token is for another user")
        self.identity = identity

    def note_verification(self, status: str) -> None:
        """A decision on the user, as its event told it."""
        self.verification, self.verified_at = status, time.monotonic()

    async def ensure_verified(self) -> None:
        """Raise VerificationRequired unless the user is approved. The cached
        status is kept current by verification events. In case such an
        event was lost, a negative status is re-read at every check and a
        positive one once it is VERIFICATION_RECHECK_SECONDS old."""
        stale = time.monotonic() - self.verified_at > settings.VERIFICATION_RECHECK_SECONDS
        if self.verification != verification.APPROVED or stale:
            self.verification = await services.current_status(self.identity.user_id)
            self.verified_at = time.monotonic()
        if self.verification != verification.APPROVED:
            raise VerificationRequired()

    def start(self, close_at_expiry: Coroutine[Any, Any, None]) -> None:
        """Keep the registry items and the socket's slot alive, and run
        close_at_expiry (the token's timer), until end()."""
        self.expiry = asyncio.create_task(close_at_expiry)
        self.tasks = [asyncio.create_task(self._keep_registry()), asyncio.create_task(self._keep_slot()), self.expiry]

    async def end(self, *, reaped: bool) -> None:
        """Stop the session's tasks and forget its connection; call it once,
        and not from one of those tasks (it awaits them). A reaped
        connection's items were deleted and its user's rooms told by the
        reaper, but a refresh under way at that moment may have written them
        back: they are deleted again, quietly."""
        async with self.lock:  # a refresh under way finishes first
            await stop(*self.tasks)
            try:
                if reaped:
                    await services.forget_connection(self.connection)
                else:
                    await services.close_connection(self.connection, room_ids=sorted(self.rooms))
            except StorageUnavailable:
                log.warning("connection %s left for the reaper", self.connection.connection_id)
        await limits.release_socket(user_id=self.identity.user_id, socket_id=self.connection.connection_id)

    async def _keep_registry(self) -> None:
        """Keep the registry items from expiring while the socket lives (the
        hub renews group memberships)."""
        while True:
            await asyncio.sleep(settings.CONNECTION_REFRESH_SECONDS)
            async with self.lock:
                try:
                    self.connection = await services.refresh_connection(self.connection)
                except Exception:
                    log.exception("could not refresh connection %s", self.connection.connection_id)

    async def _keep_slot(self) -> None:
        """Keep the socket's slot among the user's sockets, which lapses
        within minutes so that a dead process's sockets soon stop counting."""
        while True:
            await asyncio.sleep(settings.USER_SOCKET_SLOT_SECONDS / 3)
            await limits.refresh_socket(user_id=self.identity.user_id, socket_id=self.connection.connection_id)
