"""The browser client's server side: the page (with its CSP), its
configuration, the dev issuer's local sign-in, /chat/me, and static files
served by the server itself, DEBUG or not."""

import json
import urllib.request

import jwt
import pytest

from chat import dev_issuer
from devtools.servers import free_port
from tests.helpers import start_daphne
from tests.openapi import conforms


@pytest.fixture
def dev_key(settings, tmp_path):
    settings.JWT_DEV_KEY_PATH = tmp_path / "dev-key.pem"


async def test_page_is_served_with_a_policy_that_allows_no_inline_script(async_client, settings):
    settings.OIDC_TOKEN_URL = "https://auth.example.com/oauth2/token"
    response = await async_client.get("/")
    assert response.status_code == 200
    assert b'<script type="module" src="/static/chat/js/app.js">' in response.content
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy
    assert "connect-src 'self' https://auth.example.com" in policy


async def test_config_says_which_sign_in_the_page_offers(async_client, settings):
    settings.JWT_DEV_ISSUER = False
    settings.OIDC_AUTHORIZE_URL = ""
    assert json.loads((await async_client.get("/client/config.json")).content) == {"devSignIn": False, "oidc": None}
    settings.JWT_DEV_ISSUER = True
    settings.OIDC_AUTHORIZE_URL = "https://auth.example.com/oauth2/authorize"
    settings.OIDC_TOKEN_URL = "https://auth.example.com/oauth2/token"
    settings.OIDC_CLIENT_ID = "client-1"
    settings.OIDC_REDIRECT_URI = ""
    assert json.loads((await async_client.get("/client/config.json")).content) == {
        "devSignIn": True,
        "oidc": {
            "authorizeUrl": "https://auth.example.com/oauth2/authorize",
            "tokenUrl": "https://auth.example.com/oauth2/token",
            "clientId": "client-1",
            "scope": "openid profile email",
            "redirectUri": None,
        },
    }


async def test_dev_sign_in_signs_a_token_for_the_typed_user(async_client, settings, dev_key):
    settings.JWT_DEV_ISSUER = True
    response = await async_client.post(
        "/dev-issuer/token", {"userId": "alice", "nickname": " Alice\u200b  A. "}, content_type="application/json"
    )
    body = conforms(response, "/dev-issuer/token", "post")
    public = dev_issuer.private_key().public_key()
    claims = jwt.decode(body["idToken"], public, algorithms=["RS256"], audience=settings.JWT_AUDIENCE)
    assert (claims["sub"], claims["nickname"], claims["iss"]) == ("alice", "Alice A.", settings.JWT_ISSUER)
    assert claims["exp"] - claims["iat"] == body["expiresIn"] == 3600


@pytest.mark.parametrize(
    "body", [{"userId": ""}, {"userId": "a#b"}, {"nickname": "x"}, {"userId": "a", "nickname": 3}, ["alice"], "{"]
)
async def test_dev_sign_in_refuses_bad_input(async_client, settings, dev_key, body):
    settings.JWT_DEV_ISSUER = True
    raw = body if isinstance(body, str) else json.dumps(body)
    response = await async_client.post("/dev-issuer/token", raw, content_type="application/json")
    assert conforms(response, "/dev-issuer/token", "post")["error"]["code"] in {"INVALID_REQUEST", "INVALID_JSON"}


async def test_dev_sign_in_does_not_exist_without_the_dev_issuer(async_client, settings, dev_key):
    settings.JWT_DEV_ISSUER = False
    response = await async_client.post("/dev-issuer/token", {"userId": "alice"}, content_type="application/json")
    assert conforms(response, "/dev-issuer/token", "post")["error"]["code"] == "NOT_FOUND"
    assert not settings.JWT_DEV_KEY_PATH.exists()


@pytest.mark.django_db(transaction=True)
async def test_me_tells_the_page_who_it_is_and_whether_it_may_send(call):
    pending = conforms(await call("get", "/chat/me", "newcomer", verified=False, nickname="New"), "/chat/me")
    assert pending == {"userId": "newcomer", "nickname": "New", "verificationStatus": "pending"}
    approved = conforms(await call("get", "/chat/me", "regular"), "/chat/me")
    assert approved["verificationStatus"] == "approved"
    assert (await call("get", "/chat/me", None)).status_code == 401


def test_static_files_are_served_by_the_server_without_debug(backend, tmp_path):
    """What `make run` and production start serves the client itself: no
    collectstatic, no proxy needed."""
    port = free_port()
    env = {
        "DJANGO_SECRET_KEY": "test-only-secret",
        "DJANGO_DEBUG": "0",
        "VAR_DIR": str(tmp_path),
        "DYNAMODB_ENDPOINT_URL": backend["endpoint"],
        "REDIS_URL": backend["redis_url"],
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "JWT_ISSUER": "https://issuer.example.com",
        "JWT_AUDIENCE": "client",
        "SECURE_SSL_REDIRECT": "0",  # plain HTTP here: no TLS in front
        "PATH": "/usr/bin:/bin",
    }
    process = start_daphne(env, port, tmp_path / "daphne.log")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/chat/js/app.js") as script:
            assert script.headers["Content-Type"].startswith("text/javascript")
            assert b"class ChatApp" in script.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as page:
            assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    finally:
        process.terminate()
        process.wait(10)


async def test_dev_sign_in_is_a_post(async_client, settings, dev_key):
    settings.JWT_DEV_ISSUER = True
    response = await async_client.get("/dev-issuer/token")
    assert conforms(response, "/dev-issuer/token", "post")["error"]["code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.django_db(transaction=True)
async def test_participants_are_named_for_members_only(call, connect, issuer):
    await connect(issuer.token("nina", nickname="Nina"))  # a connect records the token's nickname
    created = await call("post", "/chat/rooms", "nina", {"participantIds": ["omar"], "name": "Names"}, nickname="Nina")
    room_id = created.json()["room"]["chatRoomId"]
    response = await call("get", f"/chat/rooms/{room_id}/participants", "nina")
    body = conforms(response, "/chat/rooms/{roomId}/participants")
    # omar was never seen: his id stands in for a nickname
    assert sorted((p["userId"], p["nickname"]) for p in body["participants"]) == [("nina", "Nina"), ("omar", "omar")]
    outsider = await call("get", f"/chat/rooms/{room_id}/participants", "mallory")
    assert conforms(outsider, "/chat/rooms/{roomId}/participants")["error"]["code"] == "NOT_A_PARTICIPANT"
