"""The benchmark's own arithmetic and accounting: what it reports as lost
must be lost, and CPU must be charged to the thread that spent it."""

import os
import threading
import time

import pytest

from bench import storage_clients
from bench.report import at_load, capacity_ratio, lost_acknowledged, medians
from bench.run import acknowledged_loss, cpu_seconds


@pytest.mark.unit
def test_an_acknowledged_message_a_client_does_not_hold_is_lost_once_per_client():
    acks = [["room-1", 5], ["room-1", 6], ["room-1", 7], ["room-2", 3]]
    holdings = [
        {"room": "room-1", "held": [[5, 7]]},
        {"room": "room-1", "held": [[5, 5], [7, 7]]},  # missed 6
        {"room": "room-1", "held": [[7, 7]]},  # missed 5 and 6
        {"room": "room-2", "held": [[1, 3]]},
    ]
    assert acknowledged_loss(acks, holdings) == {"acknowledged": 4, "lost_acknowledged": 3, "unverified_clients": 0}


@pytest.mark.unit
def test_a_client_that_could_not_catch_up_is_unverified_not_lost():
    holdings = [{"room": "room-1", "held": None}, {"room": "room-1", "held": [[1, 1]]}]
    assert acknowledged_loss([["room-1", 1]], holdings) == {
        "acknowledged": 1,
        "lost_acknowledged": 0,
        "unverified_clients": 1,
    }


@pytest.mark.unit
def test_a_loss_in_one_repetition_is_reported_although_the_median_is_zero():
    reps = [{"W1": {"headline": {"lost_acknowledged": lost}}} for lost in (0, 190, 0)]
    assert medians(reps)["W1"]["lost_acknowledged"] == 0
    assert lost_acknowledged(reps) == 190


@pytest.mark.unit
def test_capacity_ratio_against_a_baseline_that_passes_no_step_is_a_lower_bound():
    assert capacity_ratio(800.0, 1600.0, lowest_step=20.0) == 0.5
    assert capacity_ratio(800.0, 0.0, lowest_step=20.0) == "> 40.0"
    assert capacity_ratio(0.0, 0.0, lowest_step=20.0) is None


@pytest.mark.unit
def test_the_event_loop_share_of_cpu_leaves_out_other_threads_work():
    def burn() -> None:
        deadline = time.thread_time() + 0.3
        while time.thread_time() < deadline:
            pass

    pid = os.getpid()
    process, main = cpu_seconds(pid), cpu_seconds(pid, pid)
    worker = threading.Thread(target=burn)
    worker.start()
    worker.join()
    assert cpu_seconds(pid) - process >= 0.25
    assert cpu_seconds(pid, pid) - main < 0.1


@pytest.mark.unit
def test_the_fixed_load_step_is_the_nearest_within_fifteen_percent():
    phases = [{"offered_deliveries_per_s": offered, "p99_ms": offered / 10} for offered in (400, 780, 1200)]
    assert at_load(phases, 800)["offered_deliveries_per_s"] == 780
    assert at_load(phases[::2], 800) is None


async def test_the_client_micro_benchmark_measures_every_candidate():
    results = await storage_clients.main(pairs=5)
    assert set(results) == {"boto3 on a 32-thread pool", "aiodynamo on aiohttp (chosen)", "aiodynamo on httpx"}
    for row in results.values():
        assert row["cpu_ms_per_call_1_caller"] > 0 and row["cpu_ms_per_call_20_callers"] > 0
