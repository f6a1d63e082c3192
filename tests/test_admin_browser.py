"""Staff's tools in Debian's chromium, against a live daphne: staff log in,
approve a user from their profile page and the user's open socket unlocks
at once; staff remove a message on the room's page and it vanishes from
another user's socket, leaving a tombstone in history.

The profile page's screenshot goes to a temporary directory, or to
docs/screenshots/ with UPDATE_SCREENSHOTS=1 (as the README shows it)."""

import json
import os
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from playwright.async_api import Browser, Page, expect
from websockets.asyncio.client import connect as ws_connect

from devtools.servers import ROOT
from tests.helpers import LiveServer, live_server, receive, send

STAFF_PASSWORD = "staff-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def server(backend, issuer, tmp_path_factory) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("admin-browser")
    with live_server(backend, issuer, workdir, "admin-browser", DJANGO_SUPERUSER_PASSWORD=STAFF_PASSWORD) as live:
        live.manage("createsuperuser", "--noinput", "--username", "staff", "--email", "staff@example.com")
        yield live


async def socket_of(server: LiveServer, token: str):
    """A socket through the whole handshake (it answered a ping)."""
    socket = await ws_connect(f"{server.url.replace('http', 'ws', 1)}/ws/?token={token}", max_queue=None)
    await send(socket, {"action": "ping"})
    assert await receive(socket) == {"type": "pong"}
    return socket


async def logged_in(browser: Browser, server: LiveServer) -> Page:
    page = await (await browser.new_context(viewport={"width": 1000, "height": 900})).new_page()
    await page.goto(f"{server.url}/admin/login/?next=/admin/chat/profile/")
    await page.locator("#id_username").fill("staff")
    await page.locator("#id_password").fill(STAFF_PASSWORD)
    await page.locator("input[type=submit]").click()
    await expect(page.locator("#changelist")).to_be_visible()
    return page


def history(server: LiveServer, room_id: str, token: str) -> list[dict]:
    request = urllib.request.Request(
        f"{server.url}/chat/rooms/{room_id}/messages", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())["messages"]


async def test_staff_approve_from_the_profile_page_and_the_socket_unlocks(browser, server, issuer, tmp_path):
    server.manage("set_verification", "ui-alice", "approved")
    room_id = server.manage("create_room", "--participants", "ui-alice,ui-bob", "--name", "Tea party")
    bob = await socket_of(server, issuer.token("ui-bob", nickname="Bob"))
    await send(bob, {"action": "sendMessage", "chatRoomId": room_id, "content": "hello?"})
    assert (await receive(bob))["type"] == "VERIFICATION_REQUIRED"

    staff = await logged_in(browser, server)
    await staff.locator("#result_list a", has_text="ui-bob").click()
    await expect(staff.locator("#live")).to_contain_text("Tea party")
    await expect(staff.locator("#live")).to_contain_text("online")
    await staff.locator("#decide button[value=approve]").click()
    await expect(staff.locator(".messagelist")).to_contain_text("Approve: 1 profile(s).")

    assert await receive(bob) == {"type": "verification", "data": {"status": "approved"}}
    await send(bob, {"action": "sendMessage", "chatRoomId": room_id, "content": "hello, at last"})
    assert (await receive(bob))["data"]["content"] == "hello, at last"
    assert (await receive(bob))["type"] == "ack"
    history_rows = staff.locator("#decisions-group tbody tr")
    await expect(history_rows.first).to_contain_text("pending")
    await expect(history_rows.first).to_contain_text("approved")
    await expect(history_rows.first).to_contain_text("staff")
    shots = ROOT / "docs" / "screenshots" if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path
    await staff.screenshot(path=str(shots / "admin-profile.png"), full_page=True)
    await bob.close()


async def test_staff_remove_a_message_and_it_vanishes_from_another_socket(browser, server, issuer):
    server.manage("set_verification", "ui-carol", "approved")
    room_id = server.manage("create_room", "--participants", "ui-carol,ui-dan", "--name", "Heated")
    carol_token, dan_token = issuer.token("ui-carol", nickname="Carol"), issuer.token("ui-dan", nickname="Dan")
    carol, dan = await socket_of(server, carol_token), await socket_of(server, dan_token)
    await send(carol, {"action": "sendMessage", "chatRoomId": room_id, "content": "something rude"})
    sent = (await receive(dan))["data"]

    staff = await logged_in(browser, server)
    await staff.goto(f"{server.url}/admin/chat/profile/room/?room={room_id}")
    row = staff.locator(f"#seq-{sent['seq']}")
    await expect(row).to_contain_text("something rude")
    await row.locator("input[name=reason]").fill("Insult")
    await row.locator("button", has_text="Remove").click()
    await expect(staff.locator(".messagelist")).to_contain_text(f"Message {sent['seq']} removed.")
    await expect(row).to_contain_text("removed at")

    removed = {"chatRoomId": room_id, "messageId": sent["messageId"], "seq": sent["seq"]}
    assert await receive(dan) == {"type": "messageRemoved", "data": removed}
    [tombstone] = history(server, room_id, dan_token)
    assert (tombstone["messageId"], tombstone["content"], tombstone["removed"]) == (sent["messageId"], "", True)
    await carol.close()
    await dan.close()
