"""Configuration fails fast: a missing or wrong setting stops manage.py and
the server with one line naming it, and the documented production settings
pass `manage.py check --deploy`."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.servers import ROOT, free_port

# Settings only: neither Redis nor DynamoDB is reached.
pytestmark = pytest.mark.unit

# Production as the README's "Deployment" sets it up, behind a proxy that ends TLS.
PRODUCTION = {
    "DJANGO_ALLOWED_HOSTS": "chat.example.com",
    "COGNITO_USER_POOL_ID": "us-east-1_Example",
    "COGNITO_CLIENT_ID": "example-client-id",
    "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
    "SECURE_HSTS_PRELOAD": "1",
}


def environment(tmp_path: Path, **settings: str) -> dict[str, str]:
    """This process's environment without its Django, issuer and HTTPS
    settings (DJANGO_DEBUG is then off: production), plus settings."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "JWT_", "COGNITO_", "SECURE_")) and name != "DATABASE_URL"
    }
    return {**kept, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", **settings}


def production(tmp_path: Path, **settings: str) -> dict[str, str]:
    return environment(tmp_path, **{"DJANGO_SECRET_KEY": secrets.token_urlsafe(50), **PRODUCTION, **settings})


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def serve(env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "chatproject.serve", "-b", "127.0.0.1", "-p", str(free_port())]
    return subprocess.run(
        [*command, "chatproject.asgi:application"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def assert_refused(result: subprocess.CompletedProcess, setting: str) -> None:
    """Stopped with one line that names setting, and no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"configuration error: {setting}"), line


BAD_SETTINGS = [
    ("PORT", "eighty"),
    ("PORT", "70000"),
    ("SOCKET_RATE", "1.5"),
    ("SEND_DEADLINE_SECONDS", "soon"),
    ("DJANGO_DEBUG", "maybe"),
    ("REDIS_URL", "http://127.0.0.1:6379"),
    ("REDIS_URL", "redis://127.0.0.1:port"),
    ("DYNAMODB_ENDPOINT_URL", "localhost:8000"),
    ("DATABASE_URL", "nosuchdb://x"),
    ("SHUTDOWN_TIMEOUT_SECONDS", "0"),
]


@pytest.mark.parametrize("setting,value", BAD_SETTINGS)
def test_a_wrong_setting_stops_manage_py_with_one_line(tmp_path, setting, value):
    assert_refused(manage(environment(tmp_path, **{"DJANGO_DEBUG": "1", setting: value}), "check"), setting)


@pytest.mark.parametrize("setting,value", [("PORT", "eighty"), ("REDIS_URL", "redis//nowhere")])
def test_a_wrong_setting_stops_the_server_with_one_line(tmp_path, setting, value):
    assert_refused(serve(environment(tmp_path, **{"DJANGO_DEBUG": "1", setting: value})), setting)


def test_a_password_in_a_wrong_url_is_not_printed(tmp_path):
    result = manage(environment(tmp_path, DJANGO_DEBUG="1", REDIS_URL="redis://:hunter2@cache:99999"), "check")
    assert_refused(result, "REDIS_URL")
    assert "hunter2" not in result.stderr


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "COGNITO_USER_POOL_ID"])
def test_production_without_a_required_setting_does_not_start(tmp_path, missing):
    env = {name: value for name, value in production(tmp_path).items() if name != missing}
    assert_refused(manage(env, "check"), missing)
    assert_refused(serve(env), missing)


def test_another_oidc_issuer_instead_of_cognito_is_enough(tmp_path):
    env = {name: value for name, value in production(tmp_path).items() if not name.startswith("COGNITO_")}
    env.update(JWT_ISSUER="https://issuer.example.com", JWT_AUDIENCE="chat")
    result = manage(env, "check")
    assert result.returncode == 0, result.stderr


def test_production_settings_pass_check_deploy(tmp_path):
    result = manage(production(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_hsts_preload_is_the_one_opt_in_check_deploy_asks_for(tmp_path):
    result = manage(production(tmp_path, SECURE_HSTS_PRELOAD="0"), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert "security.W021" in result.stderr + result.stdout
    assert "(1 silenced)" not in result.stdout


def test_production_redirects_to_https_except_the_probes(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/chat/rooms").status_code == 301
    assert client.get("/healthz").status_code == 200
    # Behind the TLS proxy, with SECURE_PROXY_SSL_HEADER: no redirect.
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert client.get("/chat/rooms", headers={"X-Forwarded-Proto": "https"}).status_code == 401
