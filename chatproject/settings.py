"""Settings for the chat server.

Every value comes from an environment variable with a documented default; the
README has the full table. Nothing here is secret by default: production must
set DJANGO_SECRET_KEY (the server refuses to start without it unless
DJANGO_DEBUG is on).
"""

import ipaddress
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))

T = TypeVar("T")


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    value = env_str(name)
    if not value:
        return default
    if value.lower() not in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
        raise ImproperlyConfigured(f"{name} must be 1/true/yes/on or 0/false/no/off, not {value!r}")
    return value.lower() in {"1", "true", "yes", "on"}


def _env_number(name: str, default: T, kind: Callable[[str], T], what: str) -> T:
    value = env_str(name)
    try:
        return kind(value) if value else default
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be {what}, not {value!r}") from exc


def env_int(name: str, default: int) -> int:
    return _env_number(name, default, int, "an integer")


def env_float(name: str, default: float) -> float:
    return _env_number(name, default, float, "a number")


def env_list(name: str) -> list[str]:
    return [item.strip() for item in env_str(name).split(",") if item.strip()]


def shown_url(value: str) -> str:
    """value for an error message, its password (if any) masked."""
    try:
        password = urlsplit(value).password
    except ValueError:
        password = None
    return value.replace(f":{password}@", ":***@") if password else value


def env_url(name: str, default: str, schemes: set[str]) -> str:
    """A URL setting whose scheme is one of schemes and, unless it is a Unix
    socket, has a host and a valid port."""
    value = env_str(name, default)
    return check_url(name, value, schemes) if value else value


def env_urls(name: str, default: str, schemes: set[str]) -> list[str]:
    """A comma-separated list of URLs, each checked as env_url checks one."""
    return [check_url(name, value, schemes) for value in env_list(name) or [default]]


def check_url(name: str, value: str, schemes: set[str]) -> str:
    """value, the setting name's, if it is a URL as env_url wants one."""
    try:
        parts = urlsplit(value)
        valid = parts.scheme in schemes and (parts.scheme == "unix" or bool(parts.hostname))
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number in range)
    except ValueError:
        valid = False
    if not valid:
        kinds = ", ".join(f"{scheme}://" for scheme in sorted(schemes))
        raise ImproperlyConfigured(
            f"{name} must be a URL ({kinds}) with a host and a valid port, not {shown_url(value)!r}"
        )
    return value


DEBUG = env_bool("DJANGO_DEBUG")
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"  # noqa: S105 (DEBUG only, refused above otherwise)

PORT = env_int("PORT", 8000)
if not 0 < PORT < 65536:
    raise ImproperlyConfigured(f"PORT must be a TCP port number (1-65535), not {PORT}")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS") or (["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "DJANGO_ALLOWED_HOSTS must be set when DJANGO_DEBUG is off: the host names clients use, e.g. chat.example.com"
    )
# Browser origins allowed to open the WebSocket. Empty means "same origin as
# the Host header"; "*" allows any. Clients that send no Origin are allowed.
ALLOWED_ORIGINS = env_list("ALLOWED_ORIGINS")
CSRF_TRUSTED_ORIGINS = [origin for origin in ALLOWED_ORIGINS if origin != "*"]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chatproject.urls"
ASGI_APPLICATION = "chatproject.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

try:
    DATABASES = {
        "default": dj_database_url.config(
            env="DATABASE_URL",
            default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
            conn_max_age=60,
        )
    }
except ValueError as exc:
    raise ImproperlyConfigured(
        f"DATABASE_URL must be a database URL (postgres://user:password@host/db, sqlite:///path): {exc}"
    ) from exc
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Pool threads write concurrently: wait for the lock instead of failing,
    # and take it at BEGIN so that read-then-write transactions cannot deadlock.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- Channel layer -----------------------------------------------------------
# redis-pubsub (the default): a group message is one PUBLISH, and each
# process's hub (chat/hub.py) subscribes once per group it needs; no queues
# in Redis, so nothing to size and no ghost members when a process dies (its
# subscriptions end with its connection). A frame published while a process
# is disconnected from Redis is lost to it; clients catch up by seq.
# redis: channels-redis's core layer (queues in Redis). capacity is per
# channel and per process: a connection that falls this far behind loses
# frames (dropped with only an INFO log). group_expiry matches the
# connection lifetime; live hubs re-join their groups long before it.
# REDIS_URL may name several Redis servers, comma-separated: the channel
# layer shards its groups and channels over them by name (channels-redis,
# a crc32 of the name; every process must list the same servers in the same
# order). The per-user limits (chat/limits.py) use the first.
REDIS_URLS = env_urls("REDIS_URL", "redis://127.0.0.1:6379", {"redis", "rediss", "unix"})
REDIS_URL = REDIS_URLS[0]
CHANNEL_LAYER = env_str("CHANNEL_LAYER", "redis-pubsub")
CHANNEL_CAPACITY = env_int("CHANNEL_CAPACITY", 1000)
CHANNEL_GROUP_EXPIRY = env_int("CHANNEL_GROUP_EXPIRY", 86400)
# redis-py's async pool raises "Too many connections" past 100 by default,
# which a burst of handshakes reaches at once.
REDIS_MAX_CONNECTIONS = env_int("REDIS_MAX_CONNECTIONS", 1000)
# Redis connections of the layer. The core layer's blocking receive waits 5 s
# in Redis; a read timeout at or below that kills every consumer.
CHANNEL_REDIS_HOSTS = [
    {
        "address": url,
        "socket_timeout": 30,
        "socket_connect_timeout": 5,
        "max_connections": REDIS_MAX_CONNECTIONS,
    }
    for url in REDIS_URLS
]
if CHANNEL_LAYER == "memory":
    CHANNEL_LAYERS: dict[str, dict[str, Any]] = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
elif CHANNEL_LAYER == "redis-pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": CHANNEL_REDIS_HOSTS, "prefix": env_str("CHANNEL_PREFIX", "chat")},
        }
    }
elif CHANNEL_LAYER == "redis":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": CHANNEL_REDIS_HOSTS,
                "prefix": env_str("CHANNEL_PREFIX", "chat"),
                "capacity": CHANNEL_CAPACITY,
                "expiry": 60,
                "group_expiry": CHANNEL_GROUP_EXPIRY,
            },
        }
    }
else:
    raise ImproperlyConfigured("CHANNEL_LAYER must be 'redis-pubsub', 'redis' or 'memory'")

# --- DynamoDB ----------------------------------------------------------------
DYNAMODB_ENDPOINT_URL = env_url("DYNAMODB_ENDPOINT_URL", "", {"http", "https"}) or None
DYNAMODB_TABLE = env_str("DYNAMODB_TABLE", "chat")
AWS_REGION = env_str("AWS_REGION", "us-east-1")
# The data plane (every storage call of a request) runs on the event loop:
# a connect that takes longer than DYNAMODB_CONNECT_TIMEOUT_SECONDS, or a read
# that waits longer than DYNAMODB_READ_TIMEOUT_SECONDS, is retried with
# jittered backoff (as are throttling and 5xx answers) until
# DYNAMODB_RETRY_SECONDS have passed; then the caller gets STORAGE_UNAVAILABLE.
DYNAMODB_CONNECT_TIMEOUT_SECONDS = env_float("DYNAMODB_CONNECT_TIMEOUT_SECONDS", 1.0)
DYNAMODB_READ_TIMEOUT_SECONDS = env_float("DYNAMODB_READ_TIMEOUT_SECONDS", 3.0)
DYNAMODB_RETRY_SECONDS = env_float("DYNAMODB_RETRY_SECONDS", 4.0)
DYNAMODB_MAX_CONNECTIONS = env_int("DYNAMODB_MAX_CONNECTIONS", 100)
# However slow DynamoDB is, a send is answered (ack or STORAGE_UNAVAILABLE)
# within SEND_DEADLINE_SECONDS, and a connect is registered or closed with
# 4503 within CONNECT_DEADLINE_SECONDS: the retries above stop there.
SEND_DEADLINE_SECONDS = env_float("SEND_DEADLINE_SECONDS", 5.0)
CONNECT_DEADLINE_SECONDS = env_float("CONNECT_DEADLINE_SECONDS", 5.0)
# Threads that run blocking calls (the JWKS fetch, the ORM, the control
# plane's boto3: the reaper's scan) off the event loop.
BLOCKING_THREADS = env_int("BLOCKING_THREADS", 32)
# The server's garbage-collector thresholds (gc.set_threshold), applied by
# chatproject/asgi.py. Python's default (700, 10, 10) collects the young
# generation on every small swing of in-flight objects, and so promotes them
# and runs a full collection every few seconds under load: a pause of 200-300
# ms with 2,000 sockets open (docs/performance.md). With 50,000 steady traffic
# triggers none; every fourth young collection may still be a full one, so
# the cycles of closed connections are still freed.
try:
    GC_THRESHOLDS = tuple(int(n) for n in env_list("GC_THRESHOLDS")) or (50_000, 1, 1)
except ValueError:
    GC_THRESHOLDS = ()
if len(GC_THRESHOLDS) != 3 or GC_THRESHOLDS[0] < 1 or min(GC_THRESHOLDS) < 0:
    raise ImproperlyConfigured("GC_THRESHOLDS must be three integers, the first positive, e.g. 50000,1,1")
CONNECTION_TTL_SECONDS = env_int("CONNECTION_TTL_SECONDS", 86400)
# Presence changes are gathered this long, then sent as one event per room.
PRESENCE_WINDOW_MS = env_int("PRESENCE_WINDOW_MS", 250)
# LASTMESSAGE items are written at most once per room per window.
LASTMESSAGE_WINDOW_MS = env_int("LASTMESSAGE_WINDOW_MS", 1000)
CONNECTION_REFRESH_SECONDS = env_int("CONNECTION_REFRESH_SECONDS", 3600)
# Each server process writes a heartbeat every SERVER_HEARTBEAT_SECONDS; one
# not renewed for SERVER_DEAD_AFTER_SECONDS is dead, and some other process,
# looking every SERVER_REAP_SECONDS (+-20%), reaps its connections: with the
# defaults, within about 80 s of a crash (chat/services/liveness.py).
SERVER_HEARTBEAT_SECONDS = env_int("SERVER_HEARTBEAT_SECONDS", 15)
SERVER_DEAD_AFTER_SECONDS = env_int("SERVER_DEAD_AFTER_SECONDS", 45)
SERVER_REAP_SECONDS = env_int("SERVER_REAP_SECONDS", 15)
if min(SERVER_HEARTBEAT_SECONDS, SERVER_REAP_SECONDS) < 1 or SERVER_DEAD_AFTER_SECONDS < 2 * SERVER_HEARTBEAT_SECONDS:
    # A heartbeat that is late by one slow write must not look like a death.
    raise ImproperlyConfigured(
        "SERVER_HEARTBEAT_SECONDS and SERVER_REAP_SECONDS must be at least 1,"
        " and SERVER_DEAD_AFTER_SECONDS at least twice SERVER_HEARTBEAT_SECONDS"
    )
# An approved status cached by a socket is re-read after this long, in case
# the event announcing a later rejection was lost.
VERIFICATION_RECHECK_SECONDS = env_int("VERIFICATION_RECHECK_SECONDS", 60)

# Per server process: frames per second (and burst) one socket may send, and
# HTTP API requests per second (and burst) of one user.
SOCKET_RATE = env_int("SOCKET_RATE", 20)
SOCKET_BURST = env_int("SOCKET_BURST", 40)
API_RATE = env_int("API_RATE", 10)
API_BURST = env_int("API_BURST", 30)
# Per user, over all sockets and processes (chat/limits.py, in the channel
# layer's Redis). Sends: a person writes well under one message a second;
# the burst lets a client flush a short offline outbox or a pasted list.
# Sockets: one per tab or device, with room for sockets whose close the
# server has not noticed yet; a slot lapses USER_SOCKET_SLOT_SECONDS after
# its last refresh (every third of that), so a dead process's sockets free
# theirs within minutes. Rooms: far above what people create by hand, far
# below what a script would. A limits check waits this long for Redis, then
# passes (fail open: see chat/limits.py).
USER_SEND_RATE = env_float("USER_SEND_RATE", 2.0)
USER_SEND_BURST = env_int("USER_SEND_BURST", 20)
USER_MAX_SOCKETS = env_int("USER_MAX_SOCKETS", 20)
USER_SOCKET_SLOT_SECONDS = env_int("USER_SOCKET_SLOT_SECONDS", 120)
USER_ROOMS_PER_HOUR = env_int("USER_ROOMS_PER_HOUR", 30)
LIMITS_REDIS_TIMEOUT_SECONDS = env_float("LIMITS_REDIS_TIMEOUT_SECONDS", 0.25)
for _limit in (
    "USER_SEND_RATE",
    "USER_SEND_BURST",
    "USER_MAX_SOCKETS",
    "USER_SOCKET_SLOT_SECONDS",
    "USER_ROOMS_PER_HOUR",
):
    if globals()[_limit] <= 0:
        raise ImproperlyConfigured(f"{_limit} must be positive")
# Bytes a socket may have waiting in this process for a peer that does not
# read (daphne only: chat/backpressure.py); past it the socket is closed
# with 4413 and the client catches up by seq. 0: no cap.
SOCKET_SEND_BUFFER_BYTES = env_int("SOCKET_SEND_BUFFER_BYTES", 1024 * 1024)

# --- JWT -----------------------------------------------------------------------
COGNITO_REGION = env_str("COGNITO_REGION") or AWS_REGION
COGNITO_USER_POOL_ID = env_str("COGNITO_USER_POOL_ID")
COGNITO_CLIENT_ID = env_str("COGNITO_CLIENT_ID")
JWT_DEV_ISSUER = env_bool("JWT_DEV_ISSUER")
JWT_DEV_KEY_PATH = Path(env_str("JWT_DEV_KEY_PATH") or VAR_DIR / "dev-jwt-key.pem")

if COGNITO_USER_POOL_ID:
    _default_issuer = f"https://cognito-idp.{COGNITO_REGION}.amazonaws.com/{COGNITO_USER_POOL_ID}"
elif JWT_DEV_ISSUER:
    _default_issuer = f"http://127.0.0.1:{PORT}/dev-issuer"
else:
    _default_issuer = ""
JWT_ISSUER = env_str("JWT_ISSUER") or _default_issuer
JWT_AUDIENCE = env_str("JWT_AUDIENCE") or COGNITO_CLIENT_ID or ("chat-dev" if JWT_DEV_ISSUER else "")
JWT_JWKS_URL = env_str("JWT_JWKS_URL") or (f"{JWT_ISSUER}/.well-known/jwks.json" if JWT_ISSUER else "")
JWT_LEEWAY_SECONDS = env_int("JWT_LEEWAY_SECONDS", 30)
JWT_JWKS_TIMEOUT_SECONDS = env_int("JWT_JWKS_TIMEOUT_SECONDS", 3)
JWT_JWKS_CACHE_SECONDS = env_int("JWT_JWKS_CACHE_SECONDS", 3600)
if not DEBUG and not (JWT_ISSUER and JWT_AUDIENCE):
    raise ImproperlyConfigured(
        "COGNITO_USER_POOL_ID and COGNITO_CLIENT_ID (or JWT_ISSUER and JWT_AUDIENCE) must be set"
        " when DJANGO_DEBUG is off: without them no token is accepted"
    )
env_url("JWT_JWKS_URL", JWT_JWKS_URL, {"http", "https"})

# --- HTTPS (production) --------------------------------------------------------
# Off DEBUG, HTTP requests are redirected to HTTPS (except the load balancer's
# probes), HSTS is sent and cookies are secure: `manage.py check --deploy`
# is then clean once SECURE_HSTS_PRELOAD is on as well (README "Deployment").
# Behind a proxy that ends TLS, SECURE_PROXY_SSL_HEADER names the header it
# sets (X-Forwarded-Proto: https), else every request looks like plain HTTP
# and is redirected for ever. The proxy must overwrite that header.
_proxy_ssl_header = env_str("SECURE_PROXY_SSL_HEADER")
if _proxy_ssl_header:
    SECURE_PROXY_SSL_HEADER = (f"HTTP_{_proxy_ssl_header.upper().replace('-', '_')}", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)

# --- Graceful restart (chatproject/serve.py) -----------------------------------
# On SIGTERM a server process stops accepting, closes its sockets with 4012
# (clients reconnect to another process at once), lets their teardown
# (registry items, presence) finish, and exits within this many seconds;
# what is not torn down by then is left to the other processes' reaper.
SHUTDOWN_TIMEOUT_SECONDS = env_float("SHUTDOWN_TIMEOUT_SECONDS", 10.0)
if SHUTDOWN_TIMEOUT_SECONDS < 1:
    raise ImproperlyConfigured("SHUTDOWN_TIMEOUT_SECONDS must be at least 1")

# --- Browser client (chat/web.py) ---------------------------------------------
# With a real issuer the page signs in through the issuer's hosted sign-in:
# OIDC authorization code with PKCE (Cognito's Hosted UI: the user pool
# domain's /oauth2/authorize and /oauth2/token). All three of the authorize
# URL, the token URL and a client id turn it on; the app client must be a
# public one (no secret) with the page's URL as a callback URL.
OIDC_AUTHORIZE_URL = env_str("OIDC_AUTHORIZE_URL")
OIDC_TOKEN_URL = env_str("OIDC_TOKEN_URL")
OIDC_CLIENT_ID = env_str("OIDC_CLIENT_ID") or COGNITO_CLIENT_ID
OIDC_SCOPES = env_str("OIDC_SCOPES", "openid profile email")
# Empty: the page's own address (origin + "/").
OIDC_REDIRECT_URI = env_str("OIDC_REDIRECT_URI")

# --- Operations: readiness, metrics, logs (README "Operations") ----------------
# /readyz gives Redis and DynamoDB this long (both at once) to answer.
READY_TIMEOUT_SECONDS = env_float("READY_TIMEOUT_SECONDS", 1.0)
if READY_TIMEOUT_SECONDS <= 0:
    raise ImproperlyConfigured("READY_TIMEOUT_SECONDS must be positive")
# /metrics answers clients in METRICS_ALLOWED_NETWORKS ("none": no network)
# and any client that sends `Authorization: Bearer <METRICS_TOKEN>`. A proxy
# on the same host makes every client loopback: do not route /metrics
# through it, or set METRICS_ALLOWED_NETWORKS=none and a token.
METRICS_TOKEN = env_str("METRICS_TOKEN")
_metrics_networks = env_list("METRICS_ALLOWED_NETWORKS") or ["127.0.0.0/8", "::1/128"]
try:
    METRICS_ALLOWED_NETWORKS = [
        ipaddress.ip_network(network, strict=False) for network in _metrics_networks if network.lower() != "none"
    ]
except ValueError as exc:
    raise ImproperlyConfigured(
        f"METRICS_ALLOWED_NETWORKS must be addresses or networks (10.0.0.0/8), or none: {exc}"
    ) from exc
# text: `time LEVEL logger: message key=value...`; json: one object a line.
LOG_FORMAT = env_str("LOG_FORMAT", "text").lower()
if LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, not {LOG_FORMAT!r}")
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {LOG_LEVEL!r}")
# One INFO line per client frame (action, outcome, duration) from chat.frames.
LOG_FRAMES = env_bool("LOG_FRAMES")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "chat.logs.ContextFilter"},
        "client_errors_at_info": {"()": "chat.logs.ClientErrorsAtInfo"},
    },
    "formatters": {"text": {"()": "chat.logs.TextFormatter"}, "json": {"()": "chat.logs.JsonFormatter"}},
    # The handler holds lines to LOG_LEVEL too: client errors come down to
    # INFO after their logger's level check.
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
            "level": LOG_LEVEL,
        }
    },
    "loggers": {
        # Django's own console handler would print its lines a second time.
        "django": {"handlers": []},
        # "Found credentials in environment variables." on every command.
        "botocore.credentials": {"level": "WARNING"},
        "django.request": {"filters": ["client_errors_at_info"]},
        "chat.frames": {"level": "INFO" if LOG_FRAMES else "WARNING"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}
