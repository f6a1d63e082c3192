"""Micro-benchmark of the candidate DynamoDB clients for the data plane, as
a message uses them: pairs of UpdateItem (ADD lastSeq) and PutItem (a
message item), against a local dynalite started here. Reports this
process's CPU per call (what the server pays; dynalite's own CPU is not
counted) with one caller and with 20 at once, and each candidate's ratio to
today's data plane (aiodynamo on aiohttp). Results feed
docs/performance.md.

Usage: python -m bench.storage_clients [PAIRS]"""

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import aiohttp
import boto3
import httpx
from aiodynamo.client import Client
from aiodynamo.credentials import Credentials
from aiodynamo.http.aiohttp import AIOHTTP
from aiodynamo.http.httpx import HTTPX
from botocore.config import Config
from yarl import URL

from devtools.servers import ROOT, Dynalite, use_local_credentials

TABLE = "clients-bench"
Pair = Callable[[int], Awaitable[None]]


def requests(n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    room = f"CHATROOM#bench-{n % 50}"
    update = {
        "TableName": TABLE,
        "Key": {"PK": {"S": room}, "SK": {"S": "METADATA"}},
        "UpdateExpression": "ADD lastSeq :one",
        "ExpressionAttributeValues": {":one": {"N": "1"}},
        "ReturnValues": "UPDATED_NEW",
    }
    put = {
        "TableName": TABLE,
        "Item": {
            "PK": {"S": room},
            "SK": {"S": f"MESSAGE#{time.time_ns()}#{uuid.uuid4()}"},
            "content": {"S": "hello " * 10},
            "senderId": {"S": "bench"},
            "seq": {"N": str(n)},
        },
    }
    return update, put


def boto3_pool(url: str) -> tuple[Pair, Callable[[], Awaitable[None]]]:
    """Today's control plane, and the data plane before: boto3 on a thread pool."""
    config = Config(max_pool_connections=32, retries={"mode": "standard", "max_attempts": 3})
    client = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1", config=config)
    pool = ThreadPoolExecutor(32)

    def pair(n: int) -> None:
        update, put = requests(n)
        client.update_item(**update)
        client.put_item(**put)

    async def run(n: int) -> None:
        await asyncio.get_running_loop().run_in_executor(pool, pair, n)

    async def close() -> None:
        pool.shutdown()

    return run, close


def aiodynamo_on(http: Any, url: str) -> Pair:
    client = Client(http, Credentials.auto(), "us-east-1", URL(url), numeric_type=Decimal)

    async def run(n: int) -> None:
        update, put = requests(n)
        await client.send_request(action="UpdateItem", payload=update)
        await client.send_request(action="PutItem", payload=put)

    return run


async def candidates(url: str) -> dict[str, tuple[Pair, Callable[[], Awaitable[None]]]]:
    session = aiohttp.ClientSession()
    httpx_client = httpx.AsyncClient(limits=httpx.Limits(max_connections=100))
    return {
        "boto3 on a 32-thread pool": boto3_pool(url),
        "aiodynamo on aiohttp (chosen)": (aiodynamo_on(AIOHTTP(session), url), session.close),
        "aiodynamo on httpx": (aiodynamo_on(HTTPX(httpx_client), url), httpx_client.aclose),
    }


async def measure(pair: Pair, pairs: int, callers: int) -> float:
    """CPU ms of this process per storage call."""
    for n in range(20):  # warm connections and caches
        await pair(n)
    queue = iter(range(pairs))

    async def caller() -> None:
        for n in queue:
            await pair(n)

    started = time.process_time()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return (time.process_time() - started) * 1000 / (2 * pairs)


async def main(pairs: int) -> dict[str, dict[str, float]]:
    use_local_credentials()
    server = Dynalite(ROOT / "var" / "bench" / f"clients-{uuid.uuid4().hex[:6]}").start()
    try:
        boto3.client("dynamodb", endpoint_url=server.url, region_name="us-east-1").create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("PK", "SK")],
        )
        results = {}
        for name, (pair, close) in (await candidates(server.url)).items():
            results[name] = {
                "cpu_ms_per_call_1_caller": round(await measure(pair, pairs, 1), 3),
                "cpu_ms_per_call_20_callers": round(await measure(pair, pairs, 20), 3),
            }
            await close()
        return results
    finally:
        server.stop()


if __name__ == "__main__":
    found = asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
    chosen = found["aiodynamo on aiohttp (chosen)"]
    print("| client | CPU ms per call, 1 caller | 20 callers | 20 callers, ratio to chosen |")
    print("|---|---|---|---|")
    for name, row in found.items():
        ratio = row["cpu_ms_per_call_20_callers"] / chosen["cpu_ms_per_call_20_callers"]
        print(f"| {name} | {row['cpu_ms_per_call_1_caller']} | {row['cpu_ms_per_call_20_callers']} | {ratio:.2f} |")
    print(json.dumps(found))
