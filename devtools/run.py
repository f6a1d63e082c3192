"""`make run`: the chat server with embedded defaults.

Starts dynalite on $VAR_DIR/dynamodb (unless DYNAMODB_ENDPOINT_URL is set),
migrates, creates the table, then serves daphne on 127.0.0.1:$PORT. Falls back
to the in-memory channel layer, loudly, when Redis does not answer. Writes
the server's settings to $VAR_DIR/run.env for `make manage` (devtools/manage.py)
while it runs. Ctrl-C stops everything it started."""

import os
import signal
import subprocess
import sys

from devtools.servers import (
    ROOT,
    Dynalite,
    redis_answers,
    run_env_path,
    use_local_credentials,
    var_dir,
    write_run_env,
)

BANNER = "!" * 78


class Failed(Exception):
    """A step failed and said why on its own output."""

    def __init__(self, code: int) -> None:
        self.code = code


def manage(*args: str) -> None:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT)
    if result.returncode:
        raise Failed(result.returncode)


def stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    os.environ.setdefault("DJANGO_DEBUG", "1")
    os.environ.setdefault("JWT_DEV_ISSUER", "1")
    port = os.environ.setdefault("PORT", "8000")
    redis_url = os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379")
    dynalite = None
    daphne = None
    run_env = run_env_path()
    try:
        if not os.environ.get("DYNAMODB_ENDPOINT_URL"):
            use_local_credentials()
            local_port = int(os.environ.get("DYNAMODB_LOCAL_PORT", "8001"))
            dynalite = Dynalite(var_dir() / "dynamodb", port=local_port).start()
            os.environ["DYNAMODB_ENDPOINT_URL"] = dynalite.url
            print(f"local DynamoDB (dynalite) on {dynalite.url}, data in {var_dir() / 'dynamodb'}")
        redis_urls = [url.strip() for url in redis_url.split(",") if url.strip()]
        if os.environ.get("CHANNEL_LAYER", "redis-pubsub") != "memory" and not all(map(redis_answers, redis_urls)):
            print(
                f"{BANNER}\nRedis does not answer at {redis_url}: using the IN-MEMORY channel layer.\n"
                f"Only this one process can deliver messages. Start Redis for anything real.\n{BANNER}"
            )
            os.environ["CHANNEL_LAYER"] = "memory"
        manage("migrate", "--noinput", "-v", "0")
        manage("create_table")
        write_run_env(run_env)
        print(f"chat server on http://127.0.0.1:{port}  (WebSocket: ws://127.0.0.1:{port}/ws/?token=...)")
        print('dev token:  make manage ARGS="issue_token --sub alice --name Alice"')
        daphne = subprocess.Popen(
            [sys.executable, "-m", "chatproject.serve", "-b", "127.0.0.1", "-p", port, "chatproject.asgi:application"],
            cwd=ROOT,
        )
        return daphne.wait()
    except KeyboardInterrupt:
        return 0
    except Failed as failure:
        return failure.code
    finally:
        run_env.unlink(missing_ok=True)
        if daphne and daphne.poll() is None:
            daphne.terminate()
            daphne.wait()
        if dynalite:
            dynalite.stop()


if __name__ == "__main__":
    sys.exit(main())
