"""`make test` leaves nothing behind in the Redis it was given: a test run
of its own, which leaves keys the way the suite does, is followed by no key
under its prefix (tests/conftest.forget_run_keys)."""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import redis
from channels_redis.core import RedisChannelLayer

from devtools.servers import ROOT
from tests.helpers import live_server

# Set, to a file for its prefix, in the environment of the inner run only.
INNER_RUN = "CHAT_TEST_INNER_RUN_RECORD"


def run_keys(redis_url: str, prefix: str) -> list[bytes]:
    client = redis.Redis.from_url(redis_url)
    try:
        return list(client.scan_iter(f"{prefix}*", count=1000))
    finally:
        client.close()


def record_prefix(prefix: str) -> None:
    """Tell the outer run which prefix the inner one used."""
    Path(os.environ[INNER_RUN]).write_text(prefix)


@pytest.mark.skipif(not os.environ.get(INNER_RUN), reason="the inner run of the test below")
async def test_an_inner_run_leaves_keys_as_the_suite_does(backend, issuer, tmp_path):
    # A live server's per-user limits, under its own prefix (prefix-name),
    # which the per-test clean-up does not reach.
    with live_server(backend, issuer, tmp_path, "cleanup") as server:
        server.manage("set_verification", "cleanup-a", "approved")
        request = urllib.request.Request(
            f"{server.url}/chat/rooms",
            data=json.dumps({"participantIds": ["cleanup-b"]}).encode(),
            headers={"Authorization": f"Bearer {issuer.token('cleanup-a')}", "Content-Type": "application/json"},
        )
        assert urllib.request.urlopen(request, timeout=10).status == 201
    # The core channel layer's group membership, which lives for a day.
    layer = RedisChannelLayer(hosts=[backend["redis_url"]], prefix=backend["prefix"])
    await layer.group_add("room.cleanup", await layer.new_channel())
    await layer.close_pools()
    left = run_keys(backend["redis_url"], backend["prefix"])
    assert any(b"-cleanup:limits:rooms:" in key for key in left), left
    assert any(b":group:" in key for key in left), left
    record_prefix(backend["prefix"])


def test_a_test_run_leaves_nothing_in_its_redis(backend, tmp_path):
    record = tmp_path / "prefix"
    env = {
        **os.environ,
        INNER_RUN: str(record),
        "DYNAMODB_ENDPOINT_URL": backend["endpoint"],
        "REDIS_URL": backend["redis_url"],
    }
    test = "tests/test_redis_cleanup.py::test_an_inner_run_leaves_keys_as_the_suite_does"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    prefix = record.read_text()
    assert prefix != backend["prefix"]
    assert run_keys(backend["redis_url"], prefix) == []
