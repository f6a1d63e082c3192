"""`make manage`: manage.py against the server that `make run` started.

`make run` writes the settings it gave its server (devtools/run.py: port,
Redis, DynamoDB endpoint, table, channel prefix, database, dev issuer) to
$VAR_DIR/run.env and removes the file when it stops. This reads that file
so that a second terminal talks to the same server whatever `make run` was
given; variables set in this terminal win, and without the file (no
`make run` up) the local defaults apply."""

import os
import sys

from devtools.servers import ROOT, read_run_env, run_env_path, use_local_credentials


def main() -> None:
    for name, value in read_run_env(run_env_path()).items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("DJANGO_DEBUG", "1")
    os.environ.setdefault("JWT_DEV_ISSUER", "1")
    use_local_credentials()
    local_port = os.environ.get("DYNAMODB_LOCAL_PORT", "8001")
    os.environ.setdefault("DYNAMODB_ENDPOINT_URL", f"http://127.0.0.1:{local_port}")
    os.chdir(ROOT)
    os.execv(sys.executable, [sys.executable, "manage.py", *sys.argv[1:]])  # noqa: S606 (our own manage.py)


if __name__ == "__main__":
    main()
