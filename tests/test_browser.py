"""The browser client (chat/static/chat/) in Debian's chromium, against live
daphne processes started as `make run` starts them: two people chat both
ways, read marks and unread badges follow, an unverified user is unlocked
live by staff in the real admin, a restarted server loses nothing, and the
OIDC sign-in goes through a stand-in for Cognito's Hosted UI.

Screenshots of the main screens go to a temporary directory, or to
docs/screenshots/ with UPDATE_SCREENSHOTS=1 (as the README shows them)."""

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from playwright.async_api import Browser, Page, expect

from chat import dev_issuer
from chat.storage import control
from devtools.servers import ROOT, free_port
from tests.helpers import server_env, start_daphne

STAFF_PASSWORD = "staff-" + uuid.uuid4().hex
VIEWPORT = {"width": 880, "height": 560}
# The tests' users, rooms and staff user, made in one process (each
# manage.py costs a Django start-up).
SEED = f"""
from django.contrib.auth import get_user_model
from chat import services
services.set_verification(user_ids=["alice", "bob", "dave", "erin", "frank"], status="approved")
services.create_room_sync(participant_ids=["carol", "alice"], name="Welcome")
services.create_room_sync(participant_ids=["dave", "erin"], name="Restart")
history = services.create_room_sync(participant_ids=["frank", "gina", "hal"], name="History")
for n in range(1, 61):
    services.send_system_message_sync(room_id=history.room_id, content=f"history {{n}}")
get_user_model().objects.create_superuser("staff", "staff@example.com", "{STAFF_PASSWORD}")
"""


@dataclass
class Site:
    """Two daphne processes on one Redis, table and database (two hosts
    behind a load balancer); the first is the dev issuer."""

    env: dict[str, str]
    workdir: Path
    ports: list[int]
    processes: dict[int, subprocess.Popen] = field(default_factory=dict)

    def url(self, n: int = 0) -> str:
        return f"http://127.0.0.1:{self.ports[n]}"

    def manage(self, *args: str, **env: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def start(self, n: int) -> None:
        port = self.ports[n]
        self.processes[port] = start_daphne(self.env, port, self.workdir / f"daphne-{port}-{len(self.processes)}.log")

    def stop(self, n: int) -> None:
        process = self.processes.pop(self.ports[n])
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def hosted_ui() -> Iterator["FakeHostedUi"]:
    hosted = FakeHostedUi()
    yield hosted
    hosted.close()


@pytest.fixture(scope="module")
def site(backend, hosted_ui, tmp_path_factory) -> Iterator[Site]:
    """Both sign-ins: the dev issuer's form, and the OIDC one through the
    stand-in Hosted UI (which hands out the dev issuer's tokens). The
    tests' users, rooms and staff user are made up front, all at once."""
    workdir = tmp_path_factory.mktemp("browser")
    ports = [free_port(), free_port()]
    env = server_env(backend, workdir, ports[0], "redis-pubsub", "browser")
    env.update(
        OIDC_AUTHORIZE_URL=f"{hosted_ui.url}/oauth2/authorize",
        OIDC_TOKEN_URL=f"{hosted_ui.url}/oauth2/token",
        OIDC_CLIENT_ID="chat-dev",
    )
    site = Site(env, workdir, ports)
    hosted_ui.site = site
    site.manage("migrate", "--noinput", "-v", "0")
    site.manage("create_table")
    site.start(0)
    site.start(1)
    site.manage("shell", "-c", SEED)
    yield site
    for port in list(site.processes):
        site.processes.pop(port).terminate()
    control.client().delete_table(TableName=env["DYNAMODB_TABLE"])


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    if os.environ.get("UPDATE_SCREENSHOTS"):
        return ROOT / "docs" / "screenshots"
    return tmp_path_factory.mktemp("screenshots")


async def new_page(browser: Browser, **options: Any) -> Page:
    context = await browser.new_context(**{"viewport": VIEWPORT, **options})
    return await context.new_page()


async def signed_in(browser: Browser, url: str, user: str, nickname: str, **options: Any) -> Page:
    page = await new_page(browser, **options)
    await page.goto(url)
    await page.locator("#dev-form [name=userId]").fill(user)
    await page.locator("#dev-form [name=nickname]").fill(nickname)
    await page.locator("#dev-form button[type=submit]").click()
    await expect(page.locator("#me")).to_have_text(f"{nickname} ({user})")
    await expect(page.locator("#status")).to_have_attribute("data-state", "open")
    return page


def room_item(page: Page, name: str):
    return page.locator("#room-list .room-item").filter(has_text=name)


def messages(page: Page):
    return page.locator("#messages .message")


async def send(page: Page, text: str) -> None:
    await page.locator("#input").fill(text)
    await page.locator("#input").press("Enter")


async def test_two_people_chat_with_read_marks_and_unread_badges(browser, site, screenshots):
    alice = await signed_in(browser, site.url(), "alice", "Alice")
    bob = await signed_in(browser, site.url(1), "bob", "Bob")

    await alice.get_by_role("button", name="New room").click()
    await alice.locator("#new-room-form [name=participants]").fill("bob")
    await alice.locator("#new-room-form [name=roomName]").fill("Pair")
    await alice.locator("#new-room-form button[type=submit]").click()
    await expect(alice.locator("#room-title")).to_have_text("Pair")
    await expect(room_item(bob, "Pair")).to_be_visible()  # the room frame, live
    await expect(room_item(alice, "Pair").locator(".dot")).to_be_visible()  # bob is online
    await expect(alice.locator("#room-meta")).to_have_text("online")

    await send(alice, "hello bob")
    own = messages(alice).filter(has_text="hello bob")
    await expect(own).to_have_class("message own")
    await expect(own.locator(".mark")).to_have_text("sent")
    await expect(room_item(bob, "Pair").locator(".badge")).to_have_text("1")
    await expect(room_item(bob, "Pair").locator(".preview")).to_have_text("hello bob")
    await bob.screenshot(path=screenshots / "room-list.png")

    await room_item(bob, "Pair").click()
    received = messages(bob).filter(has_text="hello bob")
    await expect(received).to_have_class("message other")
    await expect(received.locator(".sender")).to_have_text("Alice")
    await expect(received.locator(".avatar")).to_have_text("A")
    await expect(room_item(bob, "Pair").locator(".badge")).to_have_count(0)
    await expect(own.locator(".mark")).to_have_text("read")  # bob read past it

    await bob.locator("#input").fill("hi alice")
    await bob.locator("#input").press("Shift+Enter")
    await bob.locator("#input").press_sequentially("<b>not bold</b> https://example.com/page.")
    await expect(alice.locator("#typing")).to_have_text("Bob is typing...")
    await bob.locator("#input").press("Enter")
    reply = messages(alice).filter(has_text="hi alice")
    await expect(reply.locator(".text")).to_have_text("hi alice\n<b>not bold</b> https://example.com/page.")
    await expect(reply.locator(".text b")).to_have_count(0)  # text, never markup
    await expect(reply.locator(".text a")).to_have_attribute("href", "https://example.com/page")
    await expect(alice.locator("#typing")).to_have_text("")
    await expect(messages(bob).filter(has_text="hi alice").locator(".mark")).to_have_text("read")
    await expect(messages(alice)).to_have_count(2)
    await expect(messages(bob)).to_have_count(2)
    await alice.screenshot(path=screenshots / "room.png")

    await alice.locator("#input").fill("x" * 4990)
    await expect(alice.locator("#counter")).to_have_text("4990 / 5000")
    await alice.locator("#input").press_sequentially("y" * 11)
    await expect(alice.locator("#counter")).to_have_text("5001 / 5000")
    await expect(alice.locator("#send")).to_be_disabled()
    await alice.locator("#input").press("Enter")
    await expect(messages(alice)).to_have_count(2)  # nothing sent over the limit
    await alice.locator("#input").fill("")

    await bob.get_by_role("button", name="Join activity").click()
    await bob.locator("#join-form [name=activity]").fill("book-club")
    await bob.locator("#join-form button[type=submit]").click()
    await expect(bob.locator("#room-title")).to_have_text("Group chat")
    await expect(messages(bob).filter(has_text="joined")).to_have_class("message system")
    await bob.get_by_role("button", name="Leave").click()
    await expect(room_item(bob, "Group chat")).to_have_count(0)
    await expect(bob.locator("#room-empty")).to_be_visible()

    phone = await signed_in(browser, site.url(), "alice", "Alice", viewport={"width": 380, "height": 640})
    await expect(phone.locator("#room")).to_be_hidden()  # the list fills a phone's screen
    await room_item(phone, "Pair").click()
    await expect(phone.locator("#room-list")).to_be_hidden()
    await expect(messages(phone)).to_have_count(2)
    await phone.screenshot(path=screenshots / "phone.png")
    await phone.locator("#back").click()
    await expect(room_item(phone, "Pair")).to_be_visible()


async def test_older_messages_load_on_scrolling_up(browser, site):
    frank = await signed_in(browser, site.url(), "frank", "Frank")
    await expect(room_item(frank, "History").locator(".badge")).to_have_text("60")
    await room_item(frank, "History").click()
    await expect(messages(frank)).to_have_count(50)
    await expect(messages(frank).last).to_have_text("history 60")
    await expect(messages(frank).last).to_have_class("message system")
    await frank.locator("#messages").evaluate("list => { list.scrollTop = 0; }")
    await expect(messages(frank)).to_have_count(60)
    await expect(messages(frank).first).to_have_text("history 1")
    await expect(room_item(frank, "History").locator(".badge")).to_have_count(0)


async def test_unverified_user_is_locked_until_staff_approve_in_the_admin(browser, site, screenshots):
    carol = await signed_in(browser, site.url(), "carol", "Carol")
    await room_item(carol, "Welcome").click()
    await expect(carol.locator("#input")).to_be_disabled()
    await expect(carol.locator("#lock")).to_contain_text("not verified yet")
    await carol.screenshot(path=screenshots / "locked.png")

    staff = await new_page(browser)
    await staff.goto(f"{site.url(1)}/admin/login/?next=/admin/chat/profile/")
    await staff.locator("#id_username").fill("staff")
    await staff.locator("#id_password").fill(STAFF_PASSWORD)
    await staff.locator("input[type=submit]").click()
    row = staff.locator("#result_list tbody tr").filter(has=staff.get_by_text("carol", exact=True))
    await row.locator("input[name=_selected_action]").check()
    await staff.locator("select[name=action]").select_option("approve")
    await staff.locator("button[name=index]").click()
    await expect(staff.locator(".messagelist .success")).to_contain_text("1 profile")

    await expect(carol.locator("#input")).to_be_enabled()  # no reload
    await expect(carol.locator("#lock")).to_be_hidden()
    await send(carol, "thanks!")
    await expect(messages(carol).filter(has_text="thanks!").locator(".mark")).to_have_text("sent")


async def test_restarted_server_page_reconnects_and_shows_what_it_missed_once(browser, site):
    dave = await signed_in(browser, site.url(), "dave", "Dave")  # on the process that restarts
    erin = await signed_in(browser, site.url(1), "erin", "Erin")
    await room_item(dave, "Restart").click()
    await room_item(erin, "Restart").click()
    await send(erin, "before")
    await expect(messages(dave).filter(has_text="before")).to_have_count(1)
    await expect(room_item(erin, "Restart").locator(".dot")).to_be_visible()

    site.stop(0)
    await expect(dave.locator("#status")).to_contain_text("reconnecting")
    await expect(room_item(erin, "Restart").locator(".dot")).to_have_count(0)
    await send(dave, "from the dark")
    await expect(messages(dave).filter(has_text="from the dark").locator(".mark")).to_contain_text("not sent")
    for text in ("while down 1", "while down 2"):
        await send(erin, text)
        await expect(messages(erin).filter(has_text=text).locator(".mark")).to_have_text("sent")
    site.start(0)

    await expect(dave.locator("#status")).to_have_attribute("data-state", "open", timeout=20_000)
    await expect(room_item(erin, "Restart").locator(".dot")).to_be_visible()  # presence, live
    await expect(dave.locator("#messages .message .text")).to_have_text(
        ["before", "while down 1", "while down 2", "from the dark"]
    )
    await messages(dave).filter(has_text="from the dark").get_by_role("button", name="Retry").click()
    await expect(messages(dave).filter(has_text="from the dark").locator(".mark")).to_have_text("read")
    await expect(erin.locator("#messages .message .text")).to_have_text(
        ["before", "while down 1", "while down 2", "from the dark"]
    )
    await expect(dave.locator("#messages .message .text")).to_have_text(
        ["before", "while down 1", "while down 2", "from the dark"]
    )


class FakeHostedUi:
    """Cognito's Hosted UI as the page sees it: /oauth2/authorize sends the
    browser back with a code, /oauth2/token gives an ID token (the site's
    dev issuer signs it) for that code, only with the verifier of its PKCE
    challenge and the same redirect URI."""

    user = "olivia"

    def __init__(self) -> None:
        self.site: Site | None = None
        self.codes: dict[str, dict[str, str]] = {}
        self.exchanged: list[bool] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                assert query["response_type"] == "code" and query["code_challenge_method"] == "S256"
                code = uuid.uuid4().hex
                fake.codes[code] = query
                self.send_response(302)
                self.send_header(
                    "Location", f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
                )
                self.end_headers()

            def do_POST(self) -> None:
                form = {
                    k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()
                }
                asked = fake.codes.pop(form.get("code", ""), None)
                digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
                challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
                ok = (
                    asked is not None
                    and challenge == asked["code_challenge"]
                    and form["redirect_uri"] == asked["redirect_uri"]
                )
                fake.exchanged.append(ok)
                answer = json.dumps(
                    {"id_token": fake.id_token(), "refresh_token": "r", "expires_in": 3600}
                    if ok
                    else {"error": "invalid_grant"}
                ).encode()
                self.send_response(200 if ok else 400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def id_token(self) -> str:
        """What the site's dev issuer would sign (the key file is the site's)."""
        assert self.site is not None
        key = serialization.load_pem_private_key(Path(self.site.env["JWT_DEV_KEY_PATH"]).read_bytes(), None)
        now = int(time.time())
        claims = {"sub": self.user, "nickname": "Olivia", "token_use": "id", "iat": now, "exp": now + 3600}
        claims.update(iss=self.site.env["JWT_ISSUER"], aud="chat-dev")
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": dev_issuer.public_jwk(key)["kid"]})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_oidc_sign_in_with_pkce_through_the_hosted_ui(browser, site, hosted_ui, screenshots):
    page = await new_page(browser)
    await page.goto(site.url(1))
    await page.screenshot(path=screenshots / "sign-in.png")
    await page.locator("#oidc-button").click()
    await expect(page.locator("#me")).to_have_text("Olivia (olivia)")
    await expect(page.locator("#status")).to_have_attribute("data-state", "open")
    assert hosted_ui.exchanged == [True]
    assert page.url == f"{site.url(1)}/"  # the code is gone from the address bar
    token = await page.evaluate("JSON.parse(sessionStorage.getItem('chat.session')).idToken")
    assert token and not [c for c in await page.context.cookies() if token in c["value"]]
