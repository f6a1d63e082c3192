"""Local stand-ins for production services, for `make run` and the tests:
dynalite (a DynamoDB-compatible server) and Redis. Only the project's tools
use this; the app itself only ever sees an endpoint URL."""

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import boto3
import redis
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

ROOT = Path(__file__).resolve().parent.parent
DYNALITE = ROOT / "node_modules" / "dynalite" / "cli.js"
# What `make run` tells `make manage` about its server (devtools/run.py,
# devtools/manage.py): the settings that name the server and what it talks
# to. Secrets (DJANGO_SECRET_KEY, AWS keys) are never written.
RUN_ENV_NAMES = (
    "PORT",
    "DJANGO_DEBUG",
    "VAR_DIR",
    "DATABASE_URL",
    "REDIS_URL",
    "CHANNEL_LAYER",
    "CHANNEL_PREFIX",
    "DYNAMODB_ENDPOINT_URL",
    "DYNAMODB_TABLE",
    "AWS_REGION",
    "JWT_DEV_ISSUER",
    "JWT_DEV_KEY_PATH",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "JWT_JWKS_URL",
    "COGNITO_REGION",
    "COGNITO_USER_POOL_ID",
    "COGNITO_CLIENT_ID",
)


def var_dir() -> Path:
    """Where local state lives: VAR_DIR, as the settings read it."""
    return Path(os.environ.get("VAR_DIR") or ROOT / "var")


def run_env_path() -> Path:
    return var_dir() / "run.env"


def write_run_env(path: Path) -> None:
    """The RUN_ENV_NAMES set in this environment, one NAME=value a line,
    readable by the owner only (DATABASE_URL may hold a password)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{name}={os.environ[name]}\n" for name in RUN_ENV_NAMES if os.environ.get(name)]
    temporary = path.with_suffix(".tmp")
    temporary.unlink(missing_ok=True)
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
        handle.writelines(lines)
    temporary.replace(path)


def read_run_env(path: Path) -> dict[str, str]:
    """What write_run_env wrote, or nothing if there is no such file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    pairs = (line.partition("=") for line in text.splitlines())
    return {name: value for name, mark, value in pairs if mark and name in RUN_ENV_NAMES}


def use_local_credentials() -> None:
    """Local endpoints accept any credentials; the clients still want some,
    and must never go looking for an instance's metadata service."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_REGION", "us-east-1")
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(port: int, process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Whether the server process started answers /healthz on port before
    it exits or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return True
        except OSError:
            time.sleep(0.2)
    return False


def dynamodb_answers(url: str) -> bool:
    use_local_credentials()
    config = Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1})
    client = boto3.client("dynamodb", endpoint_url=url, region_name=os.environ["AWS_REGION"], config=config)
    try:
        client.list_tables(Limit=1)
        return True
    except (BotoCoreError, ClientError):
        return False


class Dynalite:
    """One dynalite process on loopback, owning one data directory."""

    def __init__(self, path: Path, port: int | None = None):
        self.path, self.port = Path(path), port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> "Dynalite":
        if not DYNALITE.exists():
            raise RuntimeError("dynalite is not installed: run `npm ci` (make does)")
        self.path.mkdir(parents=True, exist_ok=True)
        command = ["node", str(DYNALITE), "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--path", str(self.path), "--createTableMs", "0"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not dynamodb_answers(self.url):
            if self.process.poll() is not None:
                raise RuntimeError(f"dynalite exited with {self.process.returncode} (is {self.path} in use?)")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dynalite did not answer on {self.url}")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def start_local_redis(url: str, timeout: float = 10) -> None:
    """Start a throw-away redis-server on 6379 (as CI does) and wait for it."""
    if not shutil.which("redis-server"):
        raise RuntimeError("Redis is not answering and redis-server is not installed")
    subprocess.run(
        ["redis-server", "--daemonize", "yes", "--port", "6379", "--save", "", "--appendonly", "no"], check=True
    )
    deadline = time.monotonic() + timeout
    while not redis_answers(url):
        if time.monotonic() > deadline:
            raise RuntimeError(f"Redis did not answer on {url}")
        time.sleep(0.1)
