"""Deployment as docker-compose.yml describes it. No Docker engine runs here,
so the compose file is checked against what the server reads and what its
services listen on, Debian's nginx runs deploy/nginx's config (`nginx -t`,
then live in front of two daphne processes), and the channel layer runs
sharded over two real redis-server processes."""

import functools
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import yaml

from chat.delivery import room_group
from chat.storage import control
from devtools.servers import ROOT, free_port, redis_answers
from tests.helpers import Server, eventually, opened, receive, send, server_env, start_daphne

NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]
NGINX_TEMPLATE = ROOT / "deploy" / "nginx" / "default.conf.template"
APP_IMAGE = "chat-server"

# Variables the app's containers may set that chatproject/settings.py does
# not read, and who reads them.
READ_ELSEWHERE = {
    "AWS_ACCESS_KEY_ID": "botocore and aiodynamo's credential chains",
    "AWS_SECRET_ACCESS_KEY": "botocore and aiodynamo's credential chains",
    "DJANGO_SUPERUSER_USERNAME": "createsuperuser --noinput",
    "DJANGO_SUPERUSER_PASSWORD": "createsuperuser --noinput",
    "DJANGO_SUPERUSER_EMAIL": "createsuperuser --noinput",
}
# What an operator must give (in .env): compose refuses to start without.
REQUIRED = {"DJANGO_SECRET_KEY", "DJANGO_SUPERUSER_PASSWORD"}


def interpolate(value: str, variables: dict[str, str]) -> str:
    """value with compose's ${NAME}, ${NAME:-default} and ${NAME:?error}
    taken from variables, as `docker compose` would."""

    def one(match: re.Match) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        if variables.get(name):
            return variables[name]
        if operator == ":?":
            raise KeyError(f"{name}: {argument}")
        return argument if operator == ":-" else ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value)


def app_services() -> dict[str, dict]:
    return {name: service for name, service in SERVICES.items() if service.get("image") == APP_IMAGE}


def server_services() -> dict[str, dict]:
    return {name: s for name, s in app_services().items() if "chatproject.serve" in s.get("command", [])}


def app_environment(service: str, **given: str) -> dict[str, str]:
    variables = {name: f"given-{name.lower()}" for name in REQUIRED} | given
    return {k: interpolate(str(v), variables) for k, v in SERVICES[service]["environment"].items()}


def settings_read() -> set[str]:
    """Every environment variable chatproject/settings.py reads."""
    source = (ROOT / "chatproject" / "settings.py").read_text()
    return set(re.findall(r'(?:env_\w+\(|os\.environ\.get\(|env=)"([A-Z][A-Z0-9_]*)"', source))


def loaded_settings(environment: dict[str, str]) -> dict:
    """Settings as a process with exactly this environment sees them, once
    Django's system checks passed."""
    probe = (
        "import django, io, json; django.setup(); from django.core.management import call_command;"
        " call_command('check', stdout=io.StringIO()); from django.conf import settings as s; print(json.dumps({"
        "'DEBUG': s.DEBUG, 'PORT': s.PORT, 'REDIS_URL': s.REDIS_URL, 'STATIC_ROOT': str(s.STATIC_ROOT),"
        "'hosts': s.CHANNEL_LAYERS['default']['CONFIG']['hosts'], 'DYNAMODB_ENDPOINT_URL': s.DYNAMODB_ENDPOINT_URL,"
        "'DATABASE': str(s.DATABASES['default']['NAME']), 'JWT_ISSUER': s.JWT_ISSUER}))"
    )
    env = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "chatproject.settings", **environment}
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@functools.cache
def compose_settings() -> dict:
    """The settings of app1, as compose starts it."""
    return loaded_settings(app_environment("app1"))


def option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def port_of(url_in: str) -> int:
    url = re.search(r"https?://[^'\s]+", url_in)
    assert url, url_in
    return urlsplit(url.group(0)).port or 80


def depends(service: dict) -> dict[str, str]:
    return {name: rule["condition"] for name, rule in service.get("depends_on", {}).items()}


def mounts(service: dict) -> dict[str, str]:
    """volume (or host path) -> where the container sees it."""
    return {entry.split(":")[0]: entry.split(":")[1] for entry in service.get("volumes", [])}


def test_the_app_containers_set_only_what_the_server_reads():
    known = settings_read() | READ_ELSEWHERE.keys()
    assert {"REDIS_URL", "DJANGO_SECRET_KEY", "DATABASE_URL"} <= known  # the scan finds settings
    assert set(app_services()) == {"migrate", "create-table", "superuser", "app1", "app2"}
    for name, service in app_services().items():
        assert set(service["environment"]) - known == set(), name
    required = {
        name
        for service in SERVICES.values()
        for name, value in service.get("environment", {}).items()
        if ":?" in str(value)
    }
    assert required == REQUIRED


def test_the_compose_environment_starts_a_production_server():
    loaded = compose_settings()
    assert loaded["DEBUG"] is False
    assert loaded["DYNAMODB_ENDPOINT_URL"] == "http://dynamodb:8000"
    assert [host["address"] for host in loaded["hosts"]] == ["redis://redis:6379"]
    # The dev issuer's URL is the process's own port: the one it serves on.
    assert loaded["JWT_ISSUER"] == f"http://127.0.0.1:{loaded['PORT']}/dev-issuer"
    for server in server_services().values():
        assert int(option(server["command"], "-p")) == loaded["PORT"]
    # Without a required variable, compose refuses to start at all.
    for name in REQUIRED:
        service = "superuser" if "SUPERUSER" in name else "app1"
        with pytest.raises(KeyError, match=name):
            app_environment(service, **{name: ""})


def test_the_services_listen_where_the_others_look():
    loaded = compose_settings()
    servers = server_services()
    assert set(servers) == {"app1", "app2"}
    for server in servers.values():
        port = int(option(server["command"], "-p"))
        assert port_of(str(server["healthcheck"]["test"])) == port
    nginx = SERVICES["nginx"]
    upstreams = re.findall(r"server ([\w.-]+):(\d+);", nginx["environment"]["CHAT_UPSTREAM_SERVERS"])
    assert {(host, int(port)) for host, port in upstreams} == {
        (name, int(option(server["command"], "-p"))) for name, server in servers.items()
    }
    listen = int(nginx["environment"]["CHAT_LISTEN_PORT"])
    assert any(int(str(mapping).rsplit(":", 1)[1]) == listen for mapping in nginx["ports"])
    assert port_of(str(nginx["healthcheck"]["test"])) == listen
    # Redis and DynamoDB Local listen on their default ports (no option moves them).
    for address in (host["address"] for host in loaded["hosts"]):
        redis_service = SERVICES[urlsplit(address).hostname]
        assert urlsplit(address).port == 6379 and "--port" not in redis_service["command"]
        assert int(option(redis_service["healthcheck"]["test"], "-p")) == 6379
    dynamodb = urlsplit(loaded["DYNAMODB_ENDPOINT_URL"])
    assert dynamodb.port == 8000 and "-port" not in SERVICES[dynamodb.hostname]["command"]
    assert port_of(str(SERVICES[dynamodb.hostname]["healthcheck"]["test"])) == dynamodb.port


def test_start_up_order_health_and_restarts():
    one_shots = {name for name, s in SERVICES.items() if s.get("restart") == "no"}
    assert one_shots == {"migrate", "create-table", "superuser"}
    for name, service in SERVICES.items():
        assert str(service.get("user", "")) not in {"root", "0", "0:0"}, name
        if name not in one_shots:
            assert service["restart"] == "unless-stopped", name
            assert service["healthcheck"]["test"][0] == "CMD", name
        for needed, condition in depends(service).items():
            expected = "service_completed_successfully" if needed in one_shots else "service_healthy"
            assert condition == expected, (name, needed)
    assert depends(SERVICES["create-table"]) == {"dynamodb": "service_healthy"}
    assert depends(SERVICES["superuser"]) == {"migrate": "service_completed_successfully"}
    for name in server_services():
        assert {"redis", "migrate", "create-table"} <= depends(SERVICES[name]).keys()
    assert depends(SERVICES["nginx"]).keys() == server_services().keys()
    assert "createsuperuser --noinput" in " ".join(SERVICES["superuser"]["command"])
    assert "create_table" in SERVICES["create-table"]["command"]
    assert "migrate --noinput" in " ".join(SERVICES["migrate"]["command"])


def test_volumes_are_where_their_readers_and_writers_look():
    loaded = compose_settings()
    var_dir = str(Path(loaded["DATABASE"]).parent)
    for name in ("migrate", "superuser", "app1", "app2"):
        assert mounts(SERVICES[name])["app-var"] == var_dir, name
    # collectstatic writes STATIC_ROOT (under the image's WORKDIR, the
    # checkout's place); nginx serves the same volume at /static/.
    workdir = next(
        line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("WORKDIR")
    )
    assert mounts(SERVICES["migrate"])["static"] == loaded["STATIC_ROOT"].replace(str(ROOT), workdir)
    alias = re.search(r"location /static/ \{\s*alias (\S+);", NGINX_TEMPLATE.read_text())
    assert alias and mounts(SERVICES["nginx"])["static"] == alias.group(1).rstrip("/")
    assert mounts(SERVICES["nginx"])["./deploy/nginx/default.conf.template"] == (
        "/etc/nginx/templates/default.conf.template"
    )
    # DynamoDB Local writes where -dbPath says, a directory its image makes
    # and gives to its unprivileged user (a new volume copies that owner).
    dynamodb = SERVICES["dynamodb"]
    data = option(dynamodb["command"], "-dbPath")
    assert mounts(dynamodb)["dynamodb-data"] == data
    dockerfile = (ROOT / dynamodb["build"] / "Dockerfile").read_text()
    assert f"chown dynamodblocal:dynamodblocal {data}" in dockerfile
    assert dockerfile.strip().splitlines()[-1] == "USER dynamodblocal"


def test_the_image_runs_unprivileged_and_gets_only_what_it_copies():
    dockerfile = (ROOT / "Dockerfile").read_text().splitlines()
    users = [line.split()[1] for line in dockerfile if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    copied = {shlex.split(line)[1] for line in dockerfile if line.startswith("COPY ")}
    ignore = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert ignore[0] == "*"  # everything out, then back in only what is copied
    assert {line[1:].rstrip("/") for line in ignore if line.startswith("!")} == copied


def render_nginx(upstreams: list[str], listen_port: int) -> str:
    """deploy/nginx's template as the nginx image's entrypoint renders it
    with the compose file's variables, but for where processes listen."""
    variables = dict(SERVICES["nginx"]["environment"])
    chosen = re.compile(variables.pop("NGINX_ENVSUBST_FILTER"))
    variables |= {
        "CHAT_UPSTREAM_SERVERS": " ".join(f"server {address};" for address in upstreams),
        "CHAT_LISTEN_PORT": str(listen_port),
    }
    text = NGINX_TEMPLATE.read_text()
    for name, value in variables.items():
        assert chosen.search(name), name
        text = text.replace(f"${{{name}}}", value)
    assert not re.search(r"\$\{?CHAT_\w", text), text  # compose gives every variable a value
    return text


def nginx_config(directory: Path, site: str) -> Path:
    """A main configuration like the nginx image's around site, with every
    path under directory: the image's own access log (its `main` format
    prints the raw request line) is kept in image-access.log, to show that
    the site's log replaces it."""
    (directory / "site.conf").write_text(site)
    temp_paths = "\n".join(
        f"    {kind}_temp_path {directory / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = directory / "nginx.conf"
    main.write_text(
        f"""worker_processes 1;
error_log {directory / "error.log"} info;
pid {directory / "nginx.pid"};
events {{
    worker_connections 64;
}}
http {{
{temp_paths}
    log_format main '$remote_addr - $remote_user [$time_local] "$request" $status "$http_referer"';
    access_log {directory / "image-access.log"} main;
    include {directory / "site.conf"};
}}
"""
    )
    return main


def nginx_test(main: Path) -> subprocess.CompletedProcess:
    return subprocess.run([NGINX, "-t", "-p", str(main.parent), "-c", str(main)], capture_output=True, text=True)


@contextmanager
def running_nginx(directory: Path, upstreams: list[str]) -> Iterator[int]:
    """nginx on a free loopback port in front of upstreams; what it prints
    goes to directory/stdout (the access log) and directory/stderr."""
    port = free_port()
    main = nginx_config(directory, render_nginx(upstreams, port))
    with (directory / "stdout").open("w") as stdout, (directory / "stderr").open("w") as stderr:
        process = subprocess.Popen(
            [NGINX, "-p", str(directory), "-c", str(main), "-g", "daemon off;"], stdout=stdout, stderr=stderr
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, (directory / "stderr").read_text()
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def test_nginx_accepts_the_deployed_config(tmp_path):
    """`nginx -t` on the config exactly as compose renders it, but with the
    app containers' names (which resolve only inside compose) as loopback."""
    upstreams = re.findall(r"server ([\w.-]+:\d+);", SERVICES["nginx"]["environment"]["CHAT_UPSTREAM_SERVERS"])
    loopback = [f"127.0.0.1:{address.rsplit(':', 1)[1]}" for address in upstreams]
    listen = int(SERVICES["nginx"]["environment"]["CHAT_LISTEN_PORT"])
    result = nginx_test(nginx_config(tmp_path, render_nginx(loopback, listen)))
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    assert "[warn]" not in result.stderr and "[emerg]" not in result.stderr, result.stderr


def test_nginx_refuses_a_broken_config(tmp_path):
    """The check above can fail: nginx -t reads the whole file."""
    site = render_nginx(["127.0.0.1:1"], free_port()).replace("proxy_pass http://chat;", "proxy_pass http://nowhere;")
    result = nginx_test(nginx_config(tmp_path, site))
    assert result.returncode != 0 and "host not found in upstream" in result.stderr


@pytest.fixture
def replicas(backend, tmp_path):
    """Two daphne processes sharing Redis, the table and the database, as
    app1 and app2 do."""
    ports = [free_port(), free_port()]
    env = server_env(backend, tmp_path, ports[0], "redis-pubsub", "nginx")
    Server(env, ports[0]).manage("migrate", "--noinput", "-v", "0")
    Server(env, ports[0]).manage("create_table")
    processes = [start_daphne(env, port, tmp_path / f"daphne-{port}.log") for port in ports]
    yield env, ports, processes
    for process in processes:
        process.terminate()
        process.wait(10)
    control.client().delete_table(TableName=env["DYNAMODB_TABLE"])


def socket_requests(access_log: Path) -> list[tuple[str, str, str]]:
    """(uri, status, upstream) of each WebSocket in nginx's access log
    (written when the socket ends)."""
    lines = access_log.read_text().splitlines()
    found = (re.search(r'"GET (\S+) HTTP/1.1" (\d+) .* upstream="([^"]*)"', line) for line in lines)
    return [match.groups() for match in found if match and match.group(2) == "101"]


async def test_two_users_chat_through_nginx_on_two_processes(replicas, tmp_path):
    env, ports, processes = replicas
    directory = tmp_path / "nginx"
    directory.mkdir()
    with running_nginx(directory, [f"127.0.0.1:{port}" for port in ports]) as port:
        proxy = Server(env, port)
        room_id = proxy.manage("create_room", "--participants", "alice,bob", "--name", "Through nginx")
        tokens = {}
        for user in ("alice", "bob", "carol"):
            proxy.manage("set_verification", user, "approved")
            tokens[user] = proxy.manage("issue_token", "--sub", user, "--name", user.title())
        alice = await opened(proxy, "alice", tokens["alice"])
        bob = await opened(proxy, "bob", tokens["bob"])

        await send(alice, {"action": "sendMessage", "chatRoomId": room_id, "content": "hello bob"})
        message = await receive(alice)
        assert message["data"]["content"] == "hello bob" and (await receive(alice))["type"] == "ack"
        assert await receive(bob) == message
        await send(bob, {"action": "sendMessage", "chatRoomId": room_id, "content": "hello alice"})
        reply = await receive(bob)
        assert reply["data"]["content"] == "hello alice" and (await receive(bob))["type"] == "ack"
        assert await receive(alice) == reply

        # Plain HTTP goes through as well; a socket URL without the upgrade
        # (a proxy that dropped it) reaches the server as a 404.
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/chat/rooms/{room_id}/messages",
            headers={"Authorization": f"Bearer {tokens['bob']}"},
        )
        history = json.loads(urllib.request.urlopen(request, timeout=5).read())["messages"]
        assert [m["content"] for m in history] == ["hello bob", "hello alice"]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ws/?token={tokens['carol']}", timeout=5)
        assert refused.value.code == 404

        await alice.close()
        await bob.close()
        await eventually(lambda: len(socket_requests(directory / "stdout")) == 2)
        sockets = socket_requests(directory / "stdout")
        # alice and bob were each on a process of their own
        assert sorted(upstream for _, _, upstream in sockets) == sorted(f"127.0.0.1:{port}" for port in ports)
        assert {uri for uri, _, _ in sockets} == {"/ws/?[redacted]"}

        # One process stops: nginx sends every new socket to the other.
        processes[1].send_signal(signal.SIGTERM)
        processes[1].wait(30)
        for _ in ports:
            carol = await opened(proxy, "carol", tokens["carol"])
            await carol.close()
        assert await eventually(lambda: len(socket_requests(directory / "stdout")) == 4)
        assert {upstream for _, _, upstream in socket_requests(directory / "stdout")[2:]} <= {
            f"127.0.0.1:{ports[0]}",
            f"127.0.0.1:{ports[1]}, 127.0.0.1:{ports[0]}",
        }

    printed = {name: (directory / name).read_text() for name in ("stdout", "stderr", "error.log", "image-access.log")}
    assert "[redacted]" in printed["stdout"]
    for name, text in printed.items():
        for user, token in tokens.items():
            assert token not in text, f"{user}'s token in nginx's {name}"


@contextmanager
def redis_servers(directory: Path, count: int) -> Iterator[list[str]]:
    """count throw-away redis-server processes on free loopback ports."""
    processes: list[subprocess.Popen] = []
    urls: list[str] = []
    try:
        for _ in range(count):
            port = free_port()
            command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            processes.append(
                subprocess.Popen([*command, "--daemonize", "no", "--dir", str(directory)], stdout=subprocess.DEVNULL)
            )
            urls.append(f"redis://127.0.0.1:{port}")
            deadline = time.monotonic() + 10
            while not redis_answers(urls[-1]):
                assert processes[-1].poll() is None and time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield urls
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)


@pytest.fixture
def sharded(backend, tmp_path):
    """Two daphne processes whose channel layer spans two Redis servers."""
    with redis_servers(tmp_path, 2) as urls:
        ports = [free_port(), free_port()]
        env = server_env(backend, tmp_path, ports[0], "redis-pubsub", "sharded") | {"REDIS_URL": ",".join(urls)}
        Server(env, ports[0]).manage("migrate", "--noinput", "-v", "0")
        Server(env, ports[0]).manage("create_table")
        processes = [start_daphne(env, port, tmp_path / f"daphne-{port}.log") for port in ports]
        yield [Server(env, port) for port in ports], [redis.Redis.from_url(url) for url in urls]
        for process in processes:
            process.terminate()
            process.wait(10)
        control.client().delete_table(TableName=env["DYNAMODB_TABLE"])


def create_room(server: Server, token: str, *participants: str) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/chat/rooms",
        data=json.dumps({"participantIds": list(participants)}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    return json.loads(urllib.request.urlopen(request, timeout=5).read())["room"]["chatRoomId"]


def subscribed_by_both(clients: list[redis.Redis], group: str) -> frozenset[int]:
    """The Redis servers (by index) where both server processes listen to
    group's channel."""
    found = set()
    for index, client in enumerate(clients):
        channels = client.pubsub_channels(f"*{group}")
        if channels and sum(count for _, count in client.pubsub_numsub(*channels)) == 2:
            found.add(index)
    return frozenset(found)


async def test_the_channel_layer_shards_over_two_redis_servers(sharded):
    servers, clients = sharded
    tokens = {}
    for user in ("alice", "bob"):
        servers[0].manage("set_verification", user, "approved")
        tokens[user] = servers[0].manage("issue_token", "--sub", user, "--name", user.title())
    alice = await opened(servers[0], "alice", tokens["alice"])
    bob = await opened(servers[1], "bob", tokens["bob"])

    # Each room's group lives on one server, chosen by its name: make rooms
    # until each server holds one (one in 2**15 to fail for chance alone).
    rooms: dict[int, str] = {}
    for _ in range(16):
        room_id = create_room(servers[0], tokens["alice"], "bob")
        for member in (alice, bob):
            frame = await receive(member)
            assert frame["type"] == "room" and frame["data"]["chatRoomId"] == room_id
        (shard,) = await eventually(lambda room_id=room_id: subscribed_by_both(clients, room_group(room_id)))
        rooms.setdefault(shard, room_id)
        if len(rooms) == 2:
            break
    assert sorted(rooms) == [0, 1]

    for room_id in rooms.values():
        await send(alice, {"action": "sendMessage", "chatRoomId": room_id, "content": f"to bob in {room_id}"})
        message = await receive(alice)
        assert (await receive(alice))["type"] == "ack"
        assert await receive(bob) == message
        await send(bob, {"action": "sendMessage", "chatRoomId": room_id, "content": f"to alice in {room_id}"})
        reply = await receive(bob)
        assert (await receive(bob))["type"] == "ack"
        assert await receive(alice) == reply

    # Both servers carried messages; the per-user limits live on the first.
    for client in clients:
        assert client.info("commandstats")["cmdstat_publish"]["calls"] > 0
    prefix = servers[0].env["CHANNEL_PREFIX"]
    assert clients[0].keys(f"{prefix}:limits:sockets:*")
    assert not clients[1].keys(f"{prefix}:limits:*")
    await alice.close()
    await bob.close()


def test_redis_url_names_several_servers_each_with_its_timeouts():
    environment = {"DJANGO_DEBUG": "1", "REDIS_URL": "redis://a.example:6379, rediss://b.example:6380/0"}
    loaded = loaded_settings(environment)
    assert loaded["REDIS_URL"] == "redis://a.example:6379"
    assert [host["address"] for host in loaded["hosts"]] == ["redis://a.example:6379", "rediss://b.example:6380/0"]
    assert all(host["socket_timeout"] == 30 and host["socket_connect_timeout"] == 5 for host in loaded["hosts"])
    bad = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], **environment, "REDIS_URL": "redis://a.example:6379,b.example"},
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "REDIS_URL must be a URL" in bad.stderr


def test_the_systemd_unit_is_valid_and_outlasts_a_graceful_stop(tmp_path, settings):
    """deploy/chat-server@.service, instantiated for port 8001 with this
    checkout in place of /opt/chat, as `systemd-analyze verify` reads it."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    template = (ROOT / "deploy" / "chat-server@.service").read_text()
    unit = tmp_path / "chat-server@8001.service"
    unit.write_text(template.replace("/opt/chat", str(ROOT)))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    stop_timeout = re.search(r"^TimeoutStopSec=(\d+)$", template, re.MULTILINE)
    assert stop_timeout and int(stop_timeout.group(1)) > settings.SHUTDOWN_TIMEOUT_SECONDS
    assert re.search(r"^ExecStart=\S+ -m chatproject\.serve .*-p %i ", template, re.MULTILINE)


def readme_policies() -> list[dict]:
    """The IAM policies of the README's "AWS setup", in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n### AWS setup\n", 1)[1].split("\n#", 1)[0]
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", section, re.DOTALL)]


def actions(policy: dict, resource_suffix: str = "") -> set[str]:
    return {
        action.removeprefix("dynamodb:")
        for statement in policy["Statement"]
        if statement["Resource"].endswith(resource_suffix)
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }


def test_the_readme_iam_policies_allow_exactly_what_the_code_calls():
    storage = ROOT / "chat" / "storage"
    source = "".join(path.read_text() for path in storage.glob("*.py"))
    data_plane = set(re.findall(r'\bcall\("([A-Z][a-z]\w+)"', source))
    control = (storage / "control.py").read_text()
    calls = set(re.findall(r"client\(\)\.(\w+)\(", control)) - {"get_paginator", "get_waiter"}
    calls |= set(re.findall(r'get_paginator\("(\w+)"\)', control))
    if 'get_waiter("table_exists")' in control:
        calls.add("describe_table")
    control_plane = {"".join(part.title() for part in call.split("_")) for call in calls}
    assert {"GetItem", "BatchWriteItem"} <= data_plane and {"CreateTable", "Scan"} <= control_plane

    servers, operators = readme_policies()
    assert actions(servers) == data_plane
    assert actions(servers, "/index/*") == {"Query"}  # the indexes are only queried
    assert actions(operators) == control_plane - {"DeleteTable"}  # the test suite's clean-up
    for policy in (servers, operators):
        for statement in policy["Statement"]:
            assert re.fullmatch(r"arn:aws:dynamodb:[\w-]+:\d{12}:table/chat(/index/\*)?", statement["Resource"])
