"""GET /metrics: the counters move as a user's actions would make them,
read as Prometheus reads them, and only allowed scrapers may read them."""

from pathlib import Path

import pytest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from chat import metrics
from tests.helpers import approve, new_room, next_frame
from tests.openapi import conforms

pytestmark = pytest.mark.django_db(transaction=True)


class Scrape:
    """One reading of /metrics: sample values by name and labels."""

    def __init__(self, text: str) -> None:
        self.samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def __call__(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def since(self, earlier: "Scrape", name: str, **labels: str) -> float:
        """How far the sample moved since the earlier reading."""
        return self(name, **labels) - earlier(name, **labels)

    def total(self, name: str, **labels: str) -> float:
        """The sum over every other label (say, each storage operation)."""
        wanted = set(labels.items())
        return sum(value for (sample, found), value in self.samples.items() if sample == name and wanted <= found)


async def scrape(async_client, **headers: str) -> Scrape:
    response = await async_client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return Scrape(response.content.decode())


async def test_connect_send_refusal_and_error_frame_are_counted(async_client, connect, issuer):
    await approve("metered")
    room_id = await new_room("metered", "listener")
    before = await scrape(async_client)

    listener = await connect(issuer.token("listener"))
    sender = await connect(issuer.token("metered"))
    during = await scrape(async_client)
    await sender.send_json_to({"action": "sendMessage", "chatRoomId": room_id, "content": "counted"})
    assert (await next_frame(sender))["type"] == "message"
    assert (await next_frame(sender))["type"] == "ack"
    assert (await next_frame(listener))["type"] == "message"
    await sender.send_json_to({"action": "shout"})
    assert (await next_frame(sender))["data"]["code"] == "UNKNOWN_ACTION"
    refused = await connect(issuer.token("metered", exp=1), ready=False)
    assert (await refused.receive_output(timeout=5))["code"] == 4401
    after = await scrape(async_client)

    assert during.since(before, "chat_open_sockets") == 2
    assert after.since(before, "chat_connects_total") == 3
    refusals = dict(code="4401", reason="unauthorized")
    assert after.since(before, "chat_connect_refusals_total", **refusals) == 1
    for action in ("sendMessage", "unknown"):
        assert after.since(before, "chat_frames_received_total", action=action) == 1
    assert after.since(before, "chat_messages_stored_total", type="user") == 1
    assert after.since(before, "chat_deliveries_total") > 0  # the listener's copy at least
    error = dict(code="UNKNOWN_ACTION", transport="socket")
    assert after.since(before, "chat_errors_total", **error) == 1
    assert after.since(before, "chat_storage_call_seconds_count", operation="BatchWriteItem") > 0  # the message put


async def test_closed_sockets_leave_the_open_count(async_client, connect, issuer):
    before = await scrape(async_client)
    socket = await connect(issuer.token("passing"))
    assert (await scrape(async_client)).since(before, "chat_open_sockets") == 1
    await socket.disconnect()
    assert (await scrape(async_client)).since(before, "chat_open_sockets") == 0


async def test_a_storage_outage_is_counted_by_operation(async_client, connect, issuer, break_storage):
    await approve("stranded")
    room_id = await new_room("stranded", "other")
    socket = await connect(issuer.token("stranded"))
    before = await scrape(async_client)
    break_storage()
    await socket.send_json_to({"action": "sendMessage", "chatRoomId": room_id, "content": "lost"})
    assert (await next_frame(socket))["data"]["code"] == "STORAGE_UNAVAILABLE"
    after = await scrape(async_client)
    assert after.total("chat_storage_errors_total") > before.total("chat_storage_errors_total")
    assert after.total("chat_storage_call_seconds_count") > before.total("chat_storage_call_seconds_count")
    error = dict(code="STORAGE_UNAVAILABLE", transport="socket")
    assert after.since(before, "chat_errors_total", **error) == 1


async def test_rate_limit_refusals_and_http_errors_are_counted(async_client, connect, issuer, settings):
    settings.SOCKET_RATE, settings.SOCKET_BURST = 1, 1
    socket = await connect(issuer.token("hasty"))  # its ping took the one frame of the burst
    before = await scrape(async_client)
    await socket.send_json_to({"action": "ping"})
    assert (await next_frame(socket))["data"]["code"] == "RATE_LIMITED"
    assert (await async_client.get("/chat/rooms")).status_code == 401
    after = await scrape(async_client)
    limited = dict(limit="socket_frames")
    assert after.since(before, "chat_rate_limited_total", **limited) == 1
    unauthorized = dict(code="UNAUTHORIZED", transport="http")
    assert after.since(before, "chat_errors_total", **unauthorized) == 1


def test_every_metric_is_prefixed_and_in_the_readme():
    defined = [value for value in vars(metrics).values() if isinstance(value, MetricWrapperBase)]
    names = {family.name for metric in defined for family in metric.describe()}
    assert names and all(name.startswith("chat_") for name in names)
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert not {name for name in names if f"`{name}" not in readme}


async def test_only_allowed_networks_or_the_token_may_scrape(async_client, settings):
    settings.METRICS_ALLOWED_NETWORKS = []
    response = await async_client.get("/metrics")
    assert response.status_code == 403
    assert conforms(response, "/metrics")["error"]["code"] == "FORBIDDEN"
    settings.METRICS_TOKEN = "scrape-me"
    assert (await async_client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 403
    await scrape(async_client, Authorization="Bearer scrape-me")
