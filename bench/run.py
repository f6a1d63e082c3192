"""`make bench` / `make bench-quick`: this project (P) against the Channels
tutorial consumer (B0) and the reference system's algorithm (B1), same
machine, same Redis, same local DynamoDB server, same run; with P served by
uvicorn instead of daphne (PU), and the limit L: a bare `websockets` fan-out
server with no framework and no storage (bench.bare).

Prints a table and writes bench/results/<run>.json and <run>.png."""

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.loadgen import CATCH_UP_VARIANTS
from devtools.servers import ROOT, Dynalite, free_port, redis_answers, use_local_credentials, wait_until_healthy

RESULTS = ROOT / "bench" / "results"
ISSUER = "http://bench.local/dev-issuer"
APPS = {"P": "chatproject.asgi:application", "B0": "bench.baselines:application", "B1": "bench.baselines:application"}
PATHS = {
    "P": "/ws/?token={token}",
    "PU": "/ws/?token={token}",
    "B0": "/b0/{room}/",
    "B1": "/b1/?token={token}",
    "L": "/l/{room}/",
}
# The baselines as defined: the tutorial's RedisChannelLayer, and per-connection
# sends through it for B1. P runs with its own default (redis-pubsub).
BASELINE_LAYERS = {"B0": "redis", "B1": "redis"}
FULL = {
    "reps": 3,
    "clients": 2000,
    "room_size": 10,
    "rate_per_client": 0.1,
    "w1_seconds": 60,
    "w1_warmup": 10,
    "w2_rates": [2, 5, 10, 20, 40, 80, 120, 160, 200, 250, 300],
    "w2_seconds": 10,
    "w2_warmup": 3,
    "w3_members": 500,
    "w3_rate": 5,
    "w3_seconds": 30,
    "storm": 2000,
    "procs": 2,
    "drain": 3,
    "settle": 60,
    "server_per_workload": True,
}
QUICK = {
    "reps": 1,
    "clients": 100,
    "room_size": 10,
    "rate_per_client": 0.2,
    "w1_seconds": 4,
    "w1_warmup": 1,
    "w2_rates": [5, 30],
    "w2_seconds": 3,
    "w2_warmup": 1,
    "w3_members": 50,
    "w3_rate": 5,
    "w3_seconds": 2,
    "storm": 100,
    "procs": 1,
    "drain": 1,
    "settle": 10,
    "server_per_workload": False,
}


def configure_django(workdir: Path, dynamodb_url: str, redis_url: str, run_id: str) -> dict[str, str]:
    env = {
        # As deployed: DEBUG off (it records every SQL query).
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": uuid.uuid4().hex,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Plain HTTP on loopback: the server fetches its own JWKS over it.
        "SECURE_SSL_REDIRECT": "0",
        "JWT_DEV_ISSUER": "1",
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": "chat-dev",
        "JWT_DEV_KEY_PATH": str(workdir / "dev-key.pem"),
        "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        "DYNAMODB_ENDPOINT_URL": dynamodb_url,
        "DYNAMODB_TABLE": f"bench-{run_id}",
        "REDIS_URL": redis_url,
        "CHANNEL_PREFIX": f"bench-{run_id}",
        "LOG_LEVEL": "WARNING",
        # The load is the point: no per-socket or per-user limits in the way.
        "SOCKET_RATE": "100000",
        "SOCKET_BURST": "100000",
        "USER_SEND_RATE": "100000",
        "USER_SEND_BURST": "100000",
        "USER_MAX_SOCKETS": "100000",
    }
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    import django

    django.setup()
    return env


def prepare(params: dict[str, Any], env: dict[str, str], table: str) -> dict[str, Any]:
    """A new, empty table for one variant's repetition (servers started with
    env use it), holding approved users and their rooms; and their tokens.
    A store shared by the whole run grows with every variant's messages and
    answers more slowly as it does, which would charge the variants that
    run late for the ones that ran before."""
    from django.conf import settings
    from django.core.management import call_command

    from chat import dev_issuer, domain, services, storage

    env["DYNAMODB_TABLE"] = settings.DYNAMODB_TABLE = table
    call_command("migrate", verbosity=0)
    storage.create_table()
    size = params["room_size"]
    users = [f"bench-{n}" for n in range(max(params["clients"], params["storm"], params["w3_members"]))]
    services.set_verification(user_ids=users, status="approved")
    rooms = [
        services.create_room_sync(participant_ids=users[start : start + size]).room_id
        for start in range(0, params["clients"], size)
    ]
    # W3's room is larger than the product allows (50): written directly, to
    # measure fan-out to hundreds of members.
    big_room = f"bench-big-{uuid.uuid4().hex[:8]}"
    big = domain.Room(big_room, tuple(users[: params["w3_members"]]), "group", domain.iso_from_ms(domain.now_ms()))
    storage.run_sync(storage.put_room, big)
    tokens = {user: dev_issuer.issue_token(sub=user, ttl=4 * 3600) for user in users}
    return {"users": users, "rooms": rooms, "big_room": big_room, "tokens": tokens}


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """CPU time (user+system) of a process, or of one of its threads."""
    stat = Path(f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(pid: int, timeout: float) -> None:
    """Wait until the server is idle (under 5% of a core), so one workload's
    backlog (an overloaded variant still working through queued frames)
    does not count against the next."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(0.5)
        if cpu_seconds(pid) - before < 0.025:
            return


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def server_command(variant: str, port: int) -> list[str]:
    if variant == "L":
        return [sys.executable, "-m", "bench.bare", str(port)]
    if variant == "PU":
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--lifespan",
            "off",
            "--no-access-log",
            "--log-level",
            "warning",
            APPS["P"],
        ]
    return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), APPS[variant]]


class Server:
    """One server process (daphne, uvicorn or bare) serving a variant."""

    def __init__(self, variant: str, env: dict[str, str], workdir: Path, tag: str):
        self.variant, self.port = variant, free_port()
        self.env = {
            **os.environ,
            **env,
            "PORT": str(self.port),
            "CHANNEL_PREFIX": f"{env['CHANNEL_PREFIX']}-{tag}",
            "JWT_JWKS_URL": f"http://127.0.0.1:{self.port}/dev-issuer/.well-known/jwks.json",
        }
        if variant in BASELINE_LAYERS:
            self.env["CHANNEL_LAYER"] = BASELINE_LAYERS[variant]
        log = open(workdir / f"server-{tag}.log", "w")
        self.process = subprocess.Popen(
            server_command(variant, self.port), cwd=ROOT, env=self.env, stdout=log, stderr=log
        )
        if not wait_until_healthy(self.port, self.process, timeout=30):
            raise RuntimeError(f"the server for {variant} did not start; see {log.name}")
        time.sleep(1)  # let the JWKS warm-up finish

    def url(self, token: str, room: str) -> str:
        return f"ws://127.0.0.1:{self.port}" + PATHS[self.variant].format(token=token, room=room)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:  # an overloaded server may not get round to it
            self.process.kill()
            self.process.wait()


def drop_store() -> None:
    """Delete the table prepare made, so the store does not grow over the run."""
    from chat import storage

    storage.delete_table()


def forget_connections() -> None:
    """Delete every connection's items and presence, as the reaper would:
    a stopped server leaves its sockets registered, and B1 would go on
    sending to them (P would think their users online)."""
    from chat import domain, storage

    everything = 2**40  # "expired" by then

    async def forget(connections: list[domain.Connection]) -> None:
        for connection in connections:
            await storage.delete_expired_connection(connection, now=everything)
            await storage.set_offline(connection, now=everything)

    storage.run_sync(forget, list(storage.expired_connections(now=everything)))


def run_load(
    server: Server,
    clients: list[dict[str, Any]],
    workdir: Path,
    tag: str,
    *,
    mode: str,
    phases: list[dict[str, Any]],
    procs: int,
    room_sizes: dict[str, int],
    drain: float,
    settle_seconds: float,
) -> dict[str, Any]:
    """Run loadgen processes over the clients; returns merged raw results and server usage."""
    pid = server.process.pid
    settle(pid, timeout=settle_seconds)
    start_seqs = (
        room_seqs({c["room"] for c in clients}) if mode == "traffic" and server.variant in CATCH_UP_VARIANTS else {}
    )
    shares = [clients[i::procs] for i in range(procs)]
    workers = []
    for i, share in enumerate(shares):
        config = {
            "variant": server.variant,
            "clients": share,
            "mode": mode,
            "proc": i,
            "seed": i,
            "concurrency": 100,
            "drain": drain,
            "phases": [{**p, "rate": p["rate"] / procs} for p in phases],
            "start_seqs": start_seqs,
        }
        path = workdir / f"load-{tag}-{i}.json"
        path.write_text(json.dumps(config))
        workers.append(
            (
                subprocess.Popen(
                    [sys.executable, "-m", "bench.loadgen", str(path), f"{path}.out"],
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                ),
                path,
            )
        )
    rss_idle = rss_bytes(pid)
    for worker, _ in workers:
        assert worker.stdout.readline().strip() == "open", "load generator failed to connect"
    # The main thread runs the event loop; the rest of the process's CPU is
    # its pools' (P: storage calls on the blocking pool and the group commit).
    usage = {"rss_open": rss_bytes(pid), "cpu_start": cpu_seconds(pid), "loop_cpu_start": cpu_seconds(pid, pid)}
    for worker, _ in workers:
        worker.stdin.write("go\n")
        worker.stdin.flush()
    for worker, _ in workers:
        assert worker.stdout.readline().strip() == "done", "load generator failed"
    usage["cpu"] = cpu_seconds(pid) - usage.pop("cpu_start")
    usage["loop_cpu"] = cpu_seconds(pid, pid) - usage.pop("loop_cpu_start")
    if start_seqs:  # catch-up: once every process's sends are answered
        for worker, _ in workers:
            assert worker.stdout.readline().strip() == "answered", "load generator failed"
        for worker, _ in workers:
            worker.stdin.write("catch up\n")
            worker.stdin.flush()
    for worker, _ in workers:
        worker.wait()
    merged: dict[str, Any] = {
        "sent": [],
        "deliveries": [],
        "handshakes": [],
        "acks": [],
        "holdings": [],
        "duplicates": 0,
        "out_of_order": 0,
        "failed_connects": 0,
        "unanswered": 0,
        "refused": 0,
    }
    for _, path in workers:
        result = json.loads(Path(f"{path}.out").read_text())
        for name in ("sent", "deliveries", "handshakes", "acks", "holdings"):
            merged[name] += result.get(name, [])
        for name in ("duplicates", "out_of_order", "failed_connects", "unanswered", "refused"):
            merged[name] += result.get(name, 0)
        merged["open_seconds"] = max(merged.get("open_seconds", 0), result["open_seconds"])
    merged.update(usage, rss_idle=rss_idle, room_sizes=room_sizes)
    merged["catch_up"] = None
    if start_seqs:
        merged["catch_up"] = {
            **acknowledged_loss(merged["acks"], merged.pop("holdings")),
            "refused_sends": merged["refused"],
            "unanswered_sends": merged["unanswered"],
        }
    return merged


def room_seqs(room_ids: set[str]) -> dict[str, int]:
    """Each room's last seq before a workload: where its clients catch up from."""
    from chat import storage

    async def seqs() -> dict[str, int]:
        rooms = [await storage.get_room(room_id) for room_id in room_ids]
        return {room.room_id: room.last_seq for room in rooms if room is not None}

    return storage.run_sync(seqs)


def acknowledged_loss(acks: list[list[Any]], holdings: list[dict[str, Any]]) -> dict[str, int]:
    """Acknowledged messages each client of their room does not hold after
    catching up (lost); clients whose catch-up did not finish are counted
    apart (unverified), not as losses."""
    acked: dict[str, set[int]] = {}
    for room, seq in acks:
        acked.setdefault(room, set()).add(seq)
    lost = unverified = 0
    for holding in holdings:
        if holding["held"] is None:
            unverified += 1
            continue
        held = {seq for first, last in holding["held"] for seq in range(first, last + 1)}
        lost += len(acked.get(holding["room"], set()) - held)
    return {"acknowledged": len(acks), "lost_acknowledged": lost, "unverified_clients": unverified}


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def phase_stats(raw: dict[str, Any], phases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Latency, throughput and loss per phase, over its measured part."""
    stats = []
    for index, phase in enumerate(phases):
        measured = [s for s in raw["sent"] if s["phase"] == index and s["measured"]]
        keys = {s["key"] for s in measured}
        latencies = [lat for key, lat in raw["deliveries"] if key in keys]
        expected = sum(raw["room_sizes"][s["room"]] for s in measured)
        seconds = phase["duration"] - phase.get("warmup", 0)
        stats.append(
            {
                "offered_deliveries_per_s": expected / seconds if seconds else 0,
                "deliveries_per_s": len(latencies) / seconds if seconds else 0,
                "p50_ms": percentile(latencies, 0.5),
                "p99_ms": percentile(latencies, 0.99),
                "p999_ms": percentile(latencies, 0.999),
                "lost": expected - len(latencies),
                "loss_ratio": (expected - len(latencies)) / expected if expected else 0,
            }
        )
    return stats


def workloads(params: dict[str, Any], shared: dict[str, Any]) -> dict[str, dict[str, Any]]:
    size, users, rooms = params["room_size"], shared["users"], shared["rooms"]
    chat_clients = [(users[i], rooms[i // size]) for i in range(params["clients"])]
    w1_rate = params["clients"] * params["rate_per_client"]
    return {
        "W4": {
            "clients": [(users[i], rooms[(i // size) % len(rooms)]) for i in range(params["storm"])],
            "mode": "storm",
            "phases": [],
        },
        "W1": {
            "clients": chat_clients,
            "mode": "traffic",
            "phases": [
                {"rate": w1_rate, "duration": params["w1_seconds"] + params["w1_warmup"], "warmup": params["w1_warmup"]}
            ],
        },
        "W2": {
            "clients": chat_clients,
            "mode": "traffic",
            "phases": [
                {"rate": rate, "duration": params["w2_seconds"], "warmup": params["w2_warmup"]}
                for rate in params["w2_rates"]
            ],
        },
        "W3": {
            "clients": [(users[i], shared["big_room"]) for i in range(params["w3_members"])],
            "mode": "traffic",
            "phases": [{"rate": params["w3_rate"], "duration": params["w3_seconds"] + 2, "warmup": 2}],
        },
    }


def measure(
    variant: str, params: dict[str, Any], shared: dict[str, Any], env: dict[str, str], workdir: Path, rep: int
) -> dict[str, Any]:
    """Every workload once against a fresh server of `variant`; in the full
    run, a fresh one per workload: an overloaded server still works through
    queued frames long after its load generator is gone, and that must not
    count against the next workload (quick loads overload nothing)."""
    from bench.report import summarise

    results: dict[str, Any] = {}
    server = None
    try:
        for name, load in workloads(params, shared).items():
            if server is None:
                server = Server(variant, env, workdir, f"{variant}-{rep}-{name}")
            room_sizes = {room: params["room_size"] for room in shared["rooms"]} | {
                shared["big_room"]: params["w3_members"]
            }
            clients = [
                {"url": server.url(shared["tokens"][user], room), "room": room, "index": i}
                for i, (user, room) in enumerate(load["clients"])
            ]
            raw = run_load(
                server,
                clients,
                workdir,
                f"{variant}-{rep}-{name}",
                mode=load["mode"],
                phases=load["phases"],
                procs=params["procs"],
                room_sizes=room_sizes,
                drain=params["drain"],
                settle_seconds=params["settle"],
            )
            if params["server_per_workload"]:
                server.stop()
                server = None
                forget_connections()
            results[name] = summarise(name, raw, phase_stats(raw, load["phases"]), len(clients))
            print(f"  {variant} rep {rep + 1} {name}: {json.dumps(results[name]['headline'])}", flush=True)
    finally:
        if server is not None:
            server.stop()
        forget_connections()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small loads, one repetition (under 2 minutes)")
    parser.add_argument("--variants", default="P,B0,B1,L,PU")
    parser.add_argument("--reps", type=int, help="repetitions (default: 3, quick: 1)")
    args = parser.parse_args()
    params = {**(QUICK if args.quick else FULL)}
    if args.reps:
        params["reps"] = args.reps
    run_id = time.strftime("%Y%m%d-%H%M%S") + ("-quick" if args.quick else "")
    workdir = ROOT / "var" / "bench" / run_id
    workdir.mkdir(parents=True, exist_ok=True)
    use_local_credentials()
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
    if not redis_answers(redis_url):
        print(f"Redis does not answer at {redis_url}", file=sys.stderr)
        return 2
    dynalite = None if os.environ.get("DYNAMODB_ENDPOINT_URL") else Dynalite(workdir / "dynamodb").start()
    try:
        env = configure_django(
            workdir, os.environ.get("DYNAMODB_ENDPOINT_URL") or dynalite.url, redis_url, uuid.uuid4().hex[:8]
        )
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in args.variants.split(",")}
        table = env["DYNAMODB_TABLE"]
        for rep in range(params["reps"]):
            for variant in runs:
                shared = prepare(params, env, table=f"{table}-{variant}-{rep}")
                runs[variant].append(measure(variant, params, shared, env, workdir, rep))
                drop_store()
    finally:
        if dynalite:
            dynalite.stop()
    from bench.report import write_report

    write_report(run_id, params, runs, RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
