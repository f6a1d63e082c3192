"""Staff decide verification in the Django admin."""

import pytest
from django.contrib.auth.models import User

from chat import delivery
from chat.models import Profile
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


@pytest.mark.parametrize("action,status", [("approve", "approved"), ("reject", "rejected")])
def test_bulk_action_records_decision_and_tells_open_connections(staff_client, action, status):
    client, staff = staff_client
    profiles = [Profile.objects.create(user_id=f"bulk-{n}", nickname=f"B{n}") for n in range(2)]
    with GroupListener(delivery.user_group("bulk-1")) as listener:
        response = client.post(
            "/admin/chat/profile/", {"action": action, "_selected_action": [p.pk for p in profiles]}, follow=True
        )
    assert response.status_code == 200
    for profile in profiles:
        profile.refresh_from_db()
        assert (profile.status, profile.decided_by, profile.decided_at is not None) == (status, staff, True)
    assert listener.message == {"type": "chat.verification", "status": status, "group": delivery.user_group("bulk-1")}


def test_status_cannot_be_edited_around_the_actions(staff_client):
    client, _ = staff_client
    profile = Profile.objects.create(user_id="u-edit", nickname="Ed")
    client.post(
        f"/admin/chat/profile/{profile.pk}/change/", {"user_id": "u-edit", "nickname": "Ed", "status": "approved"}
    )
    profile.refresh_from_db()
    assert profile.status == "pending"


def test_a_decision_cannot_be_moved_to_another_user(staff_client):
    client, _ = staff_client
    approved = Profile.objects.create(user_id="u-approved", nickname="Abe", status="approved")
    client.post(f"/admin/chat/profile/{approved.pk}/change/", {"user_id": "u-victim", "nickname": "Abe"})
    approved.refresh_from_db()
    assert approved.user_id == "u-approved"
    assert not Profile.objects.filter(user_id="u-victim").exists()


def test_profiles_cannot_be_deleted_around_the_decision_actions(staff_client):
    client, _ = staff_client
    profile = Profile.objects.create(user_id="u-keep", nickname="Kay", status="rejected")
    assert client.post(f"/admin/chat/profile/{profile.pk}/delete/", {"post": "yes"}).status_code == 403
    client.post("/admin/chat/profile/", {"action": "delete_selected", "_selected_action": [profile.pk], "post": "yes"})
    assert Profile.objects.filter(user_id="u-keep", status="rejected").exists()
