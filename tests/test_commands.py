"""Management commands, as an operator runs them."""

import io
import json
import time

import jwt
import pytest
from django.core.management import CommandError, call_command

from chat import delivery, dev_issuer, domain, services, storage
from chat.errors import StorageUnavailable
from chat.models import Profile
from tests.helpers import GroupListener

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip()


@pytest.fixture
def dev_settings(settings, tmp_path):
    settings.JWT_DEV_ISSUER = True
    settings.JWT_DEV_KEY_PATH = tmp_path / "dev-key.pem"
    return settings


def test_issue_token_prints_a_cognito_shaped_id_token(dev_settings):
    token = run("issue_token", "--sub", "alice", "--name", "Alice", "--ttl", "120")
    [jwk] = dev_issuer.jwks_document()["keys"]
    claims = jwt.decode(
        token,
        jwt.PyJWK(jwk).key,
        algorithms=["RS256"],
        audience=dev_settings.JWT_AUDIENCE,
        issuer=dev_settings.JWT_ISSUER,
    )
    assert (claims["sub"], claims["nickname"], claims["token_use"]) == ("alice", "Alice", "id")
    assert claims["exp"] - claims["iat"] == 120
    assert jwt.get_unverified_header(token)["kid"] == jwk["kid"]


def test_issue_token_refuses_when_dev_issuer_is_off(settings):
    settings.JWT_DEV_ISSUER = False
    with pytest.raises(CommandError, match="dev issuer is off"):
        run("issue_token", "--sub", "alice")


def test_dev_jwks_is_served_only_when_enabled(client, dev_settings):
    assert client.get("/dev-issuer/.well-known/jwks.json").json() == dev_issuer.jwks_document()
    dev_settings.JWT_DEV_ISSUER = False
    assert client.get("/dev-issuer/.well-known/jwks.json").status_code == 404


def test_create_room_prints_the_new_room_id():
    room_id = run("create_room", "--participants", "cmd-a,cmd-b,cmd-c", "--name", "Trio")
    room = storage.run_sync(storage.get_room, room_id)
    assert (room.participant_ids, room.name, room.type) == (("cmd-a", "cmd-b", "cmd-c"), "Trio", "group")


def test_create_room_rejects_bad_participants():
    with pytest.raises(CommandError, match="INVALID_REQUEST"):
        run("create_room", "--participants", "bad#id")


def test_set_verification_records_and_announces_the_decision():
    with GroupListener(delivery.user_group("cmd-user")) as listener:
        assert run("set_verification", "cmd-user", "approved") == "cmd-user is approved"
    assert Profile.objects.get(user_id="cmd-user").status == "approved"
    assert listener.message == {
        "type": "chat.verification",
        "status": "approved",
        "group": delivery.user_group("cmd-user"),
    }


def test_send_system_message_stores_it():
    room_id = run("create_room", "--participants", "sys-x")
    out = run("send_system_message", room_id, "Maintenance at noon")
    [message] = storage.run_sync(storage.messages_page, room_id, limit=100)[0]
    assert out == f"{message.message_id} seq=1"
    assert (message.content, message.sender_id) == ("Maintenance at noon", "system")


def test_send_system_message_to_missing_room_fails_clearly():
    with pytest.raises(CommandError, match="ROOM_NOT_FOUND"):
        run("send_system_message", "nope", "hello")


def test_reaping_announces_the_last_connection_going_offline():
    room = services.create_room_sync(participant_ids=["reaped-user", "room-mate"])
    gone = domain.Connection("gone-conn", "reaped-user", "2026-01-01T00:00:00.000Z", int(time.time()) - 1)

    async def left_behind() -> None:
        await storage.put_connection(gone)
        await storage.set_online(gone, now=int(time.time()) - 10)

    storage.run_sync(left_behind)
    with GroupListener(delivery.room_group(room.room_id)) as listener:
        assert run("reap_connections") == "reaped 1 connection(s)"
    [frame] = listener.message["frames"]
    assert json.loads(frame["text"]) == {"type": "presence", "data": {"userId": "reaped-user", "online": False}}


def test_a_decision_storage_cannot_record_is_undone_everywhere(monkeypatch):
    run("set_verification", "undo-a", "pending")
    record = storage.set_verification_status

    async def failing_for_b(user_id: str, status: str) -> None:
        if user_id == "undo-b" and status == "approved":
            raise StorageUnavailable()
        await record(user_id, status)

    monkeypatch.setattr(storage, "set_verification_status", failing_for_b)
    with pytest.raises(StorageUnavailable):
        services.set_verification(user_ids=["undo-a", "undo-b"], status="approved")
    assert Profile.objects.get(user_id="undo-a").status == "pending"
    assert not Profile.objects.filter(user_id="undo-b").exists()
    assert storage.run_sync(services.current_status, "undo-a") == "pending"
    assert storage.run_sync(services.current_status, "undo-b") == "pending"


def test_create_table_and_reap_connections_report_what_they_did(settings):
    assert run("create_table") == f"table {settings.DYNAMODB_TABLE} already exists"
    services.reap_expired_connections_sync()  # whatever earlier tests left to expire
    expired = domain.Connection("cmd-conn", "cmd-user", "2026-01-01T00:00:00.000Z", int(time.time()) - 5)
    storage.run_sync(storage.put_connection, expired)
    assert run("reap_connections") == "reaped 1 connection(s)"
