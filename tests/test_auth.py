"""Who may open a socket: every refusal is an accepted socket closed with
4401 that stores nothing and sends no frame."""

import asyncio
import base64
import hashlib
import hmac
import json
import time
from datetime import datetime

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from chat import auth, storage
from chat.consumers import CLOSE_TRY_AGAIN, CLOSE_UNAUTHORIZED
from chat.handshake import origin_allowed
from chat.models import Profile
from tests.issuer import AUDIENCE

pytestmark = pytest.mark.django_db(transaction=True)


async def assert_refused(communicator, code=CLOSE_UNAUTHORIZED):
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": code}
    assert await communicator.receive_nothing()


async def connection_count(user_id: str) -> int:
    return len(await storage.user_connection_ids(user_id, now=int(time.time())))


async def test_valid_rsa_token_connects_and_answers_ping(connect, issuer):
    socket = await connect(issuer.token("alice-rsa"))
    await socket.send_json_to({"action": "ping"})
    assert await socket.receive_json_from(timeout=5) == {"type": "pong"}
    assert await connection_count("alice-rsa") == 1


async def test_valid_ec_token_connects(connect, issuer):
    socket = await connect(issuer.token("ec-user", key=issuer.ec_key, kid="ec-1", alg="ES256"))
    await socket.send_json_to({"action": "ping"})
    assert await socket.receive_json_from(timeout=5) == {"type": "pong"}


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda issuer: None, id="no-token"),
        pytest.param(lambda issuer: "", id="empty-token"),
        pytest.param(lambda issuer: "not.a.jwt", id="garbage"),
        pytest.param(lambda issuer: issuer.token("mallory", key=issuer.stranger_key), id="bad-signature"),
        pytest.param(lambda issuer: issuer.token("mallory", exp=int(time.time()) - 3600), id="expired"),
        pytest.param(lambda issuer: issuer.token("mallory", aud="another-client"), id="wrong-audience"),
        pytest.param(lambda issuer: issuer.token("mallory", iss="https://evil.example"), id="wrong-issuer"),
        pytest.param(
            lambda issuer: issuer.token("mallory", token_use="access", client_id=AUDIENCE, drop=("aud",)),
            id="access-token",
        ),
        pytest.param(lambda issuer: issuer.token("mallory", token_use="access"), id="token-use-access"),
        pytest.param(lambda issuer: issuer.token("mallory", drop=("exp",)), id="no-exp"),
        pytest.param(lambda issuer: issuer.token("mallory", drop=("iat",)), id="no-iat"),
        pytest.param(lambda issuer: issuer.token("mallory", drop=("sub",)), id="no-sub"),
        pytest.param(lambda issuer: issuer.token("mal#lory"), id="sub-with-hash"),
        pytest.param(lambda issuer: issuer.token("mallory", kid="unknown-kid"), id="unknown-kid"),
        pytest.param(lambda issuer: issuer.token("mallory", key=issuer.rsa_key, kid="ec-1"), id="alg-key-mismatch"),
        pytest.param(lambda issuer: _hmac_with_public_key(issuer), id="hmac-with-public-key"),
        pytest.param(lambda issuer: _unsigned(issuer), id="alg-none"),
    ],
)
async def test_bad_tokens_are_refused_with_4401_and_store_nothing(connect, issuer, make_token):
    socket = await connect(make_token(issuer), ready=False)
    await assert_refused(socket)
    assert await connection_count("mallory") == 0
    assert not await Profile.objects.aexists()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hmac_with_public_key(issuer) -> str:
    """The classic confusion attack: HS256 keyed with the RSA public key."""
    public_pem = issuer.rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = issuer.token("mallory")
    claims = jwt.decode(token, options={"verify_signature": False})
    header = {"kid": "rsa-1", "alg": "HS256", "typ": "JWT"}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _unsigned(issuer) -> str:
    claims = jwt.decode(issuer.token("mallory"), options={"verify_signature": False})
    return jwt.encode(claims, None, algorithm="none", headers={"kid": "rsa-1"})


async def test_token_refusal_happens_before_any_frame_is_processed(connect, issuer):
    socket = await connect(issuer.token("mallory", aud="another-client"), ready=False)
    await socket.send_json_to({"action": "ping"})
    await assert_refused(socket)


async def test_unreachable_jwks_closes_with_try_again(connect, issuer, settings, fresh_jwks):
    settings.JWT_JWKS_URL = "http://127.0.0.1:9/jwks.json"
    socket = await connect(issuer.token("alice"), ready=False)
    await assert_refused(socket, code=CLOSE_TRY_AGAIN)


async def test_keys_are_fetched_once_for_many_handshakes(connect, issuer, fresh_jwks):
    before = issuer.requests
    for n in range(5):
        await connect(issuer.token(f"user-{n}"))
    assert issuer.requests - before == 1


async def test_browser_origin_must_match_host(connect, issuer):
    same = await connect(
        issuer.token("alice"), headers=[(b"host", b"chat.example"), (b"origin", b"https://chat.example")]
    )
    await same.send_json_to({"action": "ping"})
    assert await same.receive_json_from(timeout=5) == {"type": "pong"}
    other = await connect(
        issuer.token("alice"), headers=[(b"host", b"chat.example"), (b"origin", b"https://evil.example")], ready=False
    )
    await assert_refused(other, code=4403)


async def test_allowed_origins_setting_lists_browser_origins(connect, issuer, settings):
    settings.ALLOWED_ORIGINS = ["https://app.example"]
    allowed = await connect(
        issuer.token("alice"), headers=[(b"host", b"api.example"), (b"origin", b"https://app.example")]
    )
    await allowed.send_json_to({"action": "ping"})
    assert await allowed.receive_json_from(timeout=5) == {"type": "pong"}
    refused = await connect(
        issuer.token("alice"), headers=[(b"host", b"api.example"), (b"origin", b"https://api.example")], ready=False
    )
    await assert_refused(refused, code=4403)


def scope(origin: str, host: str = "chat.example", scheme: str | None = None) -> dict:
    headers = [(b"host", host.encode()), (b"origin", origin.encode())]
    return {"type": "websocket", "headers": headers, **({"scheme": scheme} if scheme else {})}


@pytest.mark.parametrize(
    "origin,host,scheme",
    [
        ("https://chat.example", "chat.example", "wss"),
        ("https://chat.example", "chat.example:443", "wss"),
        ("http://chat.example:80", "chat.example", "ws"),
        ("http://CHAT.example:8000", "chat.example:8000", None),
        ("https://chat.example", "chat.example", None),
    ],
)
@pytest.mark.unit
def test_origin_matches_host_by_scheme_host_and_port(settings, origin, host, scheme):
    settings.ALLOWED_ORIGINS = []
    assert origin_allowed(scope(origin, host, scheme))


@pytest.mark.parametrize(
    "origin,host,scheme",
    [
        ("http://chat.example.evil.net", "chat.example", None),
        ("http://chat.example:8000@evil", "chat.example:8000", None),
        ("http://evil@chat.example", "chat.example", None),
        ("http://chat.example", "chat.example", "wss"),
        ("https://chat.example", "chat.example", "ws"),
        ("http://chat.example:8000", "chat.example", None),
        ("null", "chat.example", None),
        ("http://chat.example", "evil@chat.example", None),
    ],
)
@pytest.mark.unit
def test_look_alike_origins_do_not_match_host(settings, origin, host, scheme):
    settings.ALLOWED_ORIGINS = []
    assert not origin_allowed(scope(origin, host, scheme))


@pytest.mark.parametrize(
    "origin,allowed",
    [
        ("https://app.example", True),
        ("https://app.example:443", True),
        ("https://APP.example", True),
        ("http://localhost:3000", True),
        ("https://app.example.evil.net", False),
        ("https://app.example:8443", False),
        ("http://app.example", False),
        ("https://app.example:443@evil", False),
        ("null", False),
        ("http://localhost:3001", False),
    ],
)
@pytest.mark.unit
def test_allowed_origins_compare_by_scheme_host_and_port(settings, origin, allowed):
    settings.ALLOWED_ORIGINS = ["https://app.example", "http://localhost:3000/", "http://localhost:3000"]
    assert origin_allowed(scope(origin, host="api.example")) is allowed


async def test_look_alike_origin_is_closed_with_4403(connect, issuer):
    headers = [(b"host", b"chat.example"), (b"origin", b"https://chat.example.evil.net")]
    await assert_refused(await connect(issuer.token("alice"), headers=headers, ready=False), code=4403)


def test_a_nickname_carries_no_control_characters_and_at_most_40_characters(issuer):
    claimed = "\u202eADMIN\x00 NOTICE:\u200b\n\tverify your account at http://evil.example/login"
    identity = auth.verify_token(issuer.token("nick", nickname=claimed))
    assert identity.nickname == "ADMIN NOTICE: verify your account at htt"
    assert auth.verify_token(issuer.token("blank", nickname="\x00\u200b ")).nickname == "tester"  # the next claim


async def test_a_socket_is_closed_with_4401_when_its_token_expires(connect, issuer, settings):
    settings.JWT_LEEWAY_SECONDS = 0
    socket = await connect(issuer.token("short-lived", exp=int(time.time()) + 2))
    assert await connection_count("short-lived") == 1
    assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": CLOSE_UNAUTHORIZED}
    await socket.disconnect()
    assert await connection_count("short-lived") == 0


async def test_a_fresh_token_of_the_same_user_extends_the_session(connect, issuer, settings):
    settings.JWT_LEEWAY_SECONDS = 0
    first_exp = int(time.time()) + 2
    socket = await connect(issuer.token("renewer", exp=first_exp))
    fresh_exp = int(time.time()) + 600
    await socket.send_json_to({"action": "authenticate", "token": issuer.token("renewer", exp=fresh_exp)})
    answer = await socket.receive_json_from(timeout=5)
    assert answer["type"] == "authenticated" and answer["data"]["userId"] == "renewer"
    valid_until = datetime.fromisoformat(answer["data"]["validUntil"].replace("Z", "+00:00"))
    assert valid_until.timestamp() == fresh_exp
    # Not synchronisation: the first token's lifetime must run out, with
    # its timer, before the socket shows it is still open.
    await asyncio.sleep(first_exp + 1 - time.time())
    await socket.send_json_to({"action": "ping"})
    assert await socket.receive_json_from(timeout=5) == {"type": "pong"}


async def test_a_token_of_another_user_or_a_bad_one_does_not_change_the_session(connect, issuer, settings):
    settings.JWT_LEEWAY_SECONDS = 0
    socket = await connect(issuer.token("holder", exp=int(time.time()) + 3))
    for token in (issuer.token("someone-else"), issuer.token("holder", key=issuer.stranger_key), "", None):
        await socket.send_json_to({"action": "authenticate", "token": token})
        error = await socket.receive_json_from(timeout=5)
        assert error["type"] == "error" and error["data"]["code"] in ("UNAUTHORIZED", "INVALID_REQUEST"), error
    assert await socket.receive_output(timeout=6) == {"type": "websocket.close", "code": CLOSE_UNAUTHORIZED}
