"""Domain errors. Each carries the public code that clients see, in error
frames on the socket and in HTTP error bodies, and the HTTP status it maps to.
"""


class ChatError(Exception):
    """Base of every error a client may be told about."""

    code = "INTERNAL_ERROR"
    status = 500
    default_message = "Internal error"

    def __init__(self, message: str | None = None):
        self.message = message or self.default_message
        super().__init__(self.message)


class InvalidJson(ChatError):
    """The frame was binary, not JSON, or not a JSON object."""

    code = "INVALID_JSON"
    status = 400
    default_message = "Frames must be JSON objects sent as text"


class UnknownAction(ChatError):
    """The frame's action names no handler."""

    code = "UNKNOWN_ACTION"
    status = 400
    default_message = "Unknown action"


class InvalidRequest(ChatError):
    """A field is missing, of the wrong type, or out of range."""

    code = "INVALID_REQUEST"
    status = 400
    default_message = "Invalid request"


class PayloadTooLarge(ChatError):
    """The HTTP body is over DATA_UPLOAD_MAX_MEMORY_SIZE; it was not read."""

    code = "PAYLOAD_TOO_LARGE"
    status = 413
    default_message = "Request body is too large"


class MessageTooLong(ChatError):
    """The content is longer than the limit, counted in UTF-16 code units."""

    code = "MESSAGE_TOO_LONG"
    status = 400
    default_message = "Message is too long"


class VerificationRequired(ChatError):
    """The sender's identity verification is not approved."""

    code = "VERIFICATION_REQUIRED"
    status = 403
    default_message = "Identity verification is required before sending messages"


class NotAParticipant(ChatError):
    """The room does not exist or the user is not one of its participants;
    the two are indistinguishable on purpose."""

    code = "NOT_A_PARTICIPANT"
    status = 403
    default_message = "Not a participant of this chat room"


class RoomNotFound(ChatError):
    """The room does not exist (for trusted callers such as commands)."""

    code = "ROOM_NOT_FOUND"
    status = 404
    default_message = "Chat room not found"


class StorageUnavailable(ChatError):
    """DynamoDB did not answer or refused; nothing was acknowledged."""

    code = "STORAGE_UNAVAILABLE"
    status = 503
    default_message = "Storage is unavailable, try again"


class AuthenticationFailed(ChatError):
    """The token is missing or fails verification."""

    code = "UNAUTHORIZED"
    status = 401
    default_message = "Authentication failed"


class DeliveryUnavailable(ChatError):
    """The channel layer (Redis) could not be reached; nothing was delivered."""

    code = "DELIVERY_UNAVAILABLE"
    status = 503
    default_message = "Live delivery is unavailable, try again"


class Forbidden(ChatError):
    """The caller is authenticated but may not do this (a staff-only field)."""

    code = "FORBIDDEN"
    status = 403
    default_message = "Not allowed"


class AuthUnavailable(ChatError):
    """The issuer's keys could not be fetched; not the client's fault."""

    code = "AUTH_UNAVAILABLE"
    status = 503
    default_message = "Token verification is unavailable, try again"


class RoomFull(ChatError):
    """The room already has the maximum number of participants."""

    code = "ROOM_FULL"
    status = 409
    default_message = "The chat room is full"


class RateLimited(ChatError):
    """Too many requests; slow down. retry_after_ms is how long until the
    next attempt can succeed (clients see it as retryAfterMs)."""

    code = "RATE_LIMITED"
    status = 429
    default_message = "Too many requests, slow down"

    def __init__(self, message: str | None = None, *, retry_after_ms: int):
        super().__init__(message)
        self.retry_after_ms = max(1, retry_after_ms)


class NotFound(ChatError):
    """No such HTTP route."""

    code = "NOT_FOUND"
    status = 404
    default_message = "Not found"


class ActivityTaken(ChatError):
    """The activity already has its room (join it instead)."""

    code = "ACTIVITY_TAKEN"
    status = 409
    default_message = "This activity already has a chat room; join it"


class UserSuspended(ChatError):
    """Staff suspended the user: sockets are closed (4430), HTTP calls
    refused, until the suspension is lifted."""

    code = "USER_SUSPENDED"
    status = 403
    default_message = "This account is suspended"


class MessageNotFound(ChatError):
    """The room has no message with that seq (for staff's tools)."""

    code = "MESSAGE_NOT_FOUND"
    status = 404
    default_message = "No such message in this chat room"
