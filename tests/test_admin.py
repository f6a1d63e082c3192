"""Staff's tools in the Django admin: decisions (buttons, bulk actions,
reasons) kept as history and in the admin log, filters, a profile's live
state, and a room's messages that staff may remove."""

import json
import time
from datetime import timedelta
from io import StringIO
from urllib.parse import urlencode

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone

from chat import delivery, services, storage
from chat.domain import Connection, iso_from_ms
from chat.models import Decision, Profile
from tests.helpers import GroupListener

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_client(client):
    staff = User.objects.create_superuser("staff", "staff@example.com", "pw")
    client.force_login(staff)
    return client, staff


def test_changelist_filters_and_searches(staff_client):
    client, _ = staff_client
    Profile.objects.create(user_id="u-pending", nickname="Penny")
    Profile.objects.create(user_id="u-approved", nickname="Abe", status="approved")
    page = client.get("/admin/chat/profile/?status__exact=pending").content.decode()
    assert "u-pending" in page and "u-approved" not in page
    page = client.get("/admin/chat/profile/?q=Abe").content.decode()
    assert "u-approved" in page and "u-pending" not in page


@pytest.mark.parametrize(
    "action,status,reason", [("approve", "approved", ""), ("reject", "rejected", "The photo is blurred")]
)
def test_bulk_action_records_decision_and_tells_open_connections(staff_client, action, status, reason):
    client, staff = staff_client
    profiles = [Profile.objects.create(user_id=f"bulk-{n}", nickname=f"B{n}") for n in range(2)]
    form = {"action": action, "_selected_action": [p.pk for p in profiles], "reason": reason}
    with GroupListener(delivery.user_group("bulk-1")) as listener:
        response = client.post("/admin/chat/profile/", form, follow=True)
    assert response.status_code == 200
    for profile in profiles:
        profile.refresh_from_db()
        assert (profile.status, profile.decided_by, profile.decided_at is not None) == (status, staff, True)
        [row] = profile.decisions.all()
        assert (row.from_status, row.to_status, row.decided_by, row.reason) == ("pending", status, staff, reason)
    expected = {"type": "chat.verification", "status": status, "group": delivery.user_group("bulk-1")}
    assert listener.message == ({**expected, "reason": reason} if reason else expected)


# The decision history inline's management form, which a change form must
# carry to be taken at all.
NO_INLINES = {"decisions-TOTAL_FORMS": "0", "decisions-INITIAL_FORMS": "0"}


def test_status_cannot_be_edited_around_the_actions(staff_client):
    client, _ = staff_client
    profile = Profile.objects.create(user_id="u-edit", nickname="Ed")
    saved = client.post(
        f"/admin/chat/profile/{profile.pk}/change/",
        {"user_id": "u-edit", "nickname": "Ed", "status": "approved", **NO_INLINES},
    )
    assert saved.status_code == 302  # the form was taken, without the status
    profile.refresh_from_db()
    assert profile.status == "pending"


def test_a_decision_cannot_be_moved_to_another_user(staff_client):
    client, _ = staff_client
    approved = Profile.objects.create(user_id="u-approved", nickname="Abe", status="approved")
    saved = client.post(
        f"/admin/chat/profile/{approved.pk}/change/", {"user_id": "u-victim", "nickname": "Abe", **NO_INLINES}
    )
    assert saved.status_code == 302  # the form was taken, without the user id
    approved.refresh_from_db()
    assert approved.user_id == "u-approved"
    assert not Profile.objects.filter(user_id="u-victim").exists()


def test_profiles_cannot_be_deleted_around_the_decision_actions(staff_client):
    client, _ = staff_client
    profile = Profile.objects.create(user_id="u-keep", nickname="Kay", status="rejected")
    assert client.post(f"/admin/chat/profile/{profile.pk}/delete/", {"post": "yes"}).status_code == 403
    bulk = {"action": "delete_selected", "_selected_action": [profile.pk], "post": "yes"}
    assert "No action selected" in client.post("/admin/chat/profile/", bulk, follow=True).content.decode()
    assert Profile.objects.filter(user_id="u-keep", status="rejected").exists()


def decide(client, profile: Profile, decision: str, reason: str = ""):
    return client.post(
        f"/admin/chat/profile/{profile.pk}/decide/", {"decision": decision, "reason": reason}, follow=True
    )


def test_rejecting_in_bulk_asks_for_a_reason_first(staff_client):
    client, _ = staff_client
    profile = Profile.objects.create(user_id="u-ask", nickname="Ask")
    form = {"action": "reject", "_selected_action": [profile.pk]}
    page = client.post("/admin/chat/profile/", form)
    assert page.status_code == 200 and 'name="reason"' in page.content.decode()
    profile.refresh_from_db()
    assert (profile.status, profile.decisions.count()) == ("pending", 0)
    again = client.post("/admin/chat/profile/", {**form, "reason": "  "})
    assert "A reason is required" in again.content.decode()
    assert client.post("/admin/chat/profile/", {**form, "reason": "Document expired"}).status_code == 302
    profile.refresh_from_db()
    assert (profile.status, profile.decisions.get().reason) == ("rejected", "Document expired")


def test_profile_page_buttons_decide_keep_history_and_write_the_admin_log(staff_client):
    client, staff = staff_client
    profile = Profile.objects.create(user_id="u-page", nickname="Paige")
    page = client.get(f"/admin/chat/profile/{profile.pk}/change/").content.decode()
    assert all(f'value="{name}"' in page for name in ("approve", "reject", "reset", "suspend"))

    decide(client, profile, "approve")
    asked = decide(client, profile, "reject")  # with the page's reason box left empty
    assert "A reason is required" in asked.content.decode() and 'name="reason"' in asked.content.decode()
    decide(client, profile, "reject", "Name does not match")
    decide(client, profile, "reset")

    profile.refresh_from_db()
    assert profile.status == "pending"
    history = [(r.from_status, r.to_status, r.reason, r.decided_by) for r in profile.decisions.all()]
    assert history == [
        ("rejected", "pending", "", staff),
        ("approved", "rejected", "Name does not match", staff),
        ("pending", "approved", "", staff),
    ]
    log = LogEntry.objects.filter(object_id=str(profile.pk)).order_by("action_time")
    assert [entry.get_change_message() for entry in log] == [
        "Verification pending → approved",
        "Verification approved → rejected: Name does not match",
        "Verification rejected → pending",
    ]
    assert {entry.user for entry in log} == {staff}
    page = client.get(f"/admin/chat/profile/{profile.pk}/change/").content.decode()
    assert "Name does not match" in page and "History" in page


def test_suspending_and_lifting_from_a_profile_page(staff_client, backend):
    client, _ = staff_client
    profile = Profile.objects.create(user_id="u-sus", nickname="Sue")
    assert "A reason is required" in decide(client, profile, "suspend").content.decode()
    profile.refresh_from_db()
    assert not profile.suspended
    decide(client, profile, "suspend", "Spam")
    profile.refresh_from_db()
    assert profile.suspended and storage.run_sync(storage.get_profile, "u-sus").suspended
    assert 'value="lift"' in client.get(f"/admin/chat/profile/{profile.pk}/change/").content.decode()
    decide(client, profile, "lift")
    profile.refresh_from_db()
    assert not profile.suspended and not storage.run_sync(storage.get_profile, "u-sus").suspended
    assert [(r.kind, r.reason) for r in profile.decisions.all()] == [("suspension_lifted", ""), ("suspension", "Spam")]
    assert client.get("/admin/chat/profile/?suspended__exact=1").content.decode().count("u-sus") == 0


def test_filters_by_decider_and_decision_date(staff_client):
    client, staff = staff_client
    by_staff = Profile.objects.create(user_id="u-by-staff", nickname="S")
    Profile.objects.create(user_id="u-undecided", nickname="U")
    decide(client, by_staff, "approve")
    call_command("set_verification", "u-by-command", "rejected", "--reason", "Fake", stdout=StringIO())

    def listed(query: str) -> set[str]:
        page = client.get(f"/admin/chat/profile/?{query}").content.decode()
        return {user for user in ("u-by-staff", "u-by-command", "u-undecided") if user in page}

    assert listed(f"decided_by__id__exact={staff.pk}") == {"u-by-staff"}
    assert listed("decided_by__isnull=True") == {"u-by-command", "u-undecided"}
    assert listed("decided_at__isnull=False") == {"u-by-staff", "u-by-command"}
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    tomorrow = today + timedelta(days=1)
    assert listed(urlencode({"decided_at__gte": today, "decided_at__lt": tomorrow})) == {"u-by-staff", "u-by-command"}
    assert listed(urlencode({"decided_at__gte": tomorrow})) == set()
    changelist = client.get("/admin/chat/profile/").content.decode()
    assert "By decider" in changelist and "command" in changelist


def test_a_commands_decision_shows_command_as_decider(staff_client):
    client, _ = staff_client
    call_command("set_verification", "u-cmd", "rejected", "--reason", "Under 18", stdout=StringIO())
    [row] = Decision.objects.filter(profile__user_id="u-cmd")
    assert (row.decided_by, row.decider, row.reason, row.to_status) == (None, "command", "Under 18", "rejected")
    page = client.get(f"/admin/chat/profile/{row.profile.pk}/change/").content.decode()
    assert "Under 18" in page and ">command<" in page


def test_profile_page_shows_rooms_open_connections_and_presence(staff_client, backend):
    client, _ = staff_client
    profile = Profile.objects.create(user_id="u-live", nickname="Liv")
    room = services.create_room_sync(participant_ids=["u-live", "u-mate"], name="Book club")
    services.send_system_message_sync(room_id=room.room_id, content="Welcome to the club")
    now = int(time.time())
    connection = Connection("conn-live-1", "u-live", iso_from_ms(now * 1000), now + 600, owner="proc-1")
    storage.run_sync(storage.put_connection, connection)
    storage.run_sync(storage.set_online, connection, now=now)

    page = client.get(f"/admin/chat/profile/{profile.pk}/change/").content.decode()
    assert "Presence: <strong>online</strong>" in page
    assert "conn-live-1" in page and "proc-1" in page
    assert "Book club" in page and "Welcome to the club" in page and f"?room={room.room_id}" in page

    storage.run_sync(storage.delete_connection, "u-live", "conn-live-1")
    storage.run_sync(storage.set_offline, connection, now=now)
    page = client.get(f"/admin/chat/profile/{profile.pk}/change/").content.decode()
    assert "Presence: <strong>offline</strong>" in page and "conn-live-1" not in page


def test_room_page_lists_messages_and_removes_one(staff_client, backend):
    client, staff = staff_client
    room = services.create_room_sync(participant_ids=["u-r1", "u-r2"], name="Noisy")
    for text in ("first notice", "second notice"):
        services.send_system_message_sync(room_id=room.room_id, content=text)
    url = f"/admin/chat/profile/room/?room={room.room_id}"
    page = client.get(url).content.decode()
    assert "first notice" in page and "second notice" in page

    with GroupListener(delivery.room_group(room.room_id)) as listener:
        done = client.post(
            "/admin/chat/profile/room/", {"room": room.room_id, "seq": "1", "reason": "Wrong"}, follow=True
        )
    page = done.content.decode()
    assert "Message 1 removed." in page and "first notice" not in page and "removed at" in page
    frame = json.loads(listener.message["text"])
    assert frame["type"] == "messageRemoved" and frame["data"]["seq"] == 1
    [row] = Decision.objects.filter(kind="message_removed")
    assert (row.profile, row.decided_by, row.room_id, row.seq, row.reason) == (None, staff, room.room_id, 1, "Wrong")

    again = client.post("/admin/chat/profile/room/", {"room": room.room_id, "seq": "1"}, follow=True).content.decode()
    assert "Not removed: The message is removed already" in again
    missing = client.post("/admin/chat/profile/room/", {"room": room.room_id, "seq": "9"}, follow=True)
    assert "Not removed: No such message" in missing.content.decode()
    assert "Chat room not found" in client.get("/admin/chat/profile/room/?room=nope").content.decode()
