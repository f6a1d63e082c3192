"""Turning raw load-generator results into numbers, a table, JSON and a plot."""

import json
import statistics
from pathlib import Path
from typing import Any

P99_LIMIT_MS = 100
LOSS_LIMIT = 0.001
# The fixed load at which P's p99 is held against B0's (a W2 step).
FIXED_LOAD = 800


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def summarise(name: str, raw: dict[str, Any], phases: list[dict[str, Any]], clients: int) -> dict[str, Any]:
    """The numbers a workload is judged by, plus its per-phase detail."""
    summary: dict[str, Any] = {"phases": phases, "duplicates": raw["duplicates"], "out_of_order": raw["out_of_order"]}
    if name == "W4":
        handshakes = sorted(raw["handshakes"])
        summary["headline"] = {
            "connects_per_s": _round(clients / raw["open_seconds"]),
            "handshake_p99_ms": _round(handshakes[int(0.99 * (len(handshakes) - 1))] * 1000),
            "rss_kib_per_idle_connection": _round((raw["rss_open"] - raw["rss_idle"]) / clients / 1024),
            "failed_connects": raw["failed_connects"],
        }
        return summary
    deliveries = len(raw["deliveries"])
    headline = {
        "deliveries_per_s": _round(phases[-1]["deliveries_per_s"]),
        "p50_ms": _round(phases[-1]["p50_ms"]),
        "p99_ms": _round(phases[-1]["p99_ms"]),
        "p999_ms": _round(phases[-1]["p999_ms"]),
        "lost": phases[-1]["lost"],
        "duplicates": raw["duplicates"],
        "out_of_order": raw["out_of_order"],
        "failed_connects": raw["failed_connects"],
        "cpu_ms_per_1000_deliveries": _round(raw["cpu"] / deliveries * 1e6) if deliveries else None,
        # Of which the event loop's thread (the rest is the pools': storage calls).
        "loop_cpu_ms_per_1000_deliveries": _round(raw["loop_cpu"] / deliveries * 1e6) if deliveries else None,
    }
    if name == "W2":
        fixed = at_load(phases, FIXED_LOAD)
        headline = {
            "capacity_deliveries_per_s": capacity(phases),
            "lost": sum(p["lost"] for p in phases),
            "failed_connects": raw["failed_connects"],
            f"p99_ms_at_{FIXED_LOAD}": _round(fixed["p99_ms"]) if fixed else None,
            "cpu_ms_per_1000_deliveries": headline["cpu_ms_per_1000_deliveries"],
        }
    # Catch-up by seq after the run (variants that acknowledge with a seq).
    headline.update(raw.get("catch_up") or {})
    summary["headline"] = headline
    return summary


def capacity(phases: list[dict[str, Any]]) -> float:
    """The highest step with p99 <= 100 ms and loss <= 0.1%. Not the last
    before the first failure: on a shared machine a low step can fail on one
    stray pause (a p99 over 7 s is the 7th-worst of 700 deliveries), while
    overload, open loop, fails every step above it."""
    passing = [
        p for p in phases if p["p99_ms"] is not None and p["p99_ms"] <= P99_LIMIT_MS and p["loss_ratio"] <= LOSS_LIMIT
    ]
    return _round(passing[-1]["deliveries_per_s"]) if passing else 0.0


def at_load(phases: list[dict[str, Any]], offered: float) -> dict[str, Any] | None:
    """The step whose offered load is within 15% of `offered`, if any."""
    near = [p for p in phases if abs(p["offered_deliveries_per_s"] - offered) <= 0.15 * offered]
    return min(near, key=lambda p: abs(p["offered_deliveries_per_s"] - offered)) if near else None


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 2) if present else None


def medians(runs: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Per workload and headline metric, the median over repetitions."""
    return {
        workload: {
            metric: _median([run[workload]["headline"][metric] for run in runs])
            for metric in runs[0][workload]["headline"]
        }
        for workload in runs[0]
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def capacity_ratio(ours: float | None, baseline: float | None, lowest_step: float) -> float | str | None:
    """P's W2 capacity over a baseline's. A baseline that passes no step
    cannot carry even the lowest one, so the ratio is more than P's capacity
    over that step: reported as "> x"."""
    if ours is None or baseline is None:
        return None
    if baseline:
        return round(ours / baseline, 2)
    return f"> {round(ours / lowest_step, 1)}" if ours else None


def lost_acknowledged(reps: list[dict[str, Any]]) -> int | None:
    """Acknowledged messages lost over every repetition and workload: one
    loss is a failure, so no median may hide it."""
    counts = [run[w]["headline"].get("lost_acknowledged") for run in reps for w in ("W1", "W2", "W3") if w in run]
    present = [int(count) for count in counts if count is not None]
    return sum(present) if present else None


def ratios(
    table: dict[str, dict[str, dict[str, float | None]]],
    lowest_step: float,
    runs: dict[str, list[dict[str, Any]]],
) -> dict[str, float | str | None]:
    """The issue's targets, as ratios of the medians in this run (and P's
    absolute ones; lost acknowledged messages are counted over every
    repetition); lowest_step is the W2 ramp's first offered deliveries/s.
    P/L shows how close to the floor the framework and storage keep P; PU/P
    what daphne costs against uvicorn."""
    get = lambda v, w, m: table.get(v, {}).get(w, {}).get(m)  # noqa: E731
    capacity_of = lambda v: get(v, "W2", "capacity_deliveries_per_s")  # noqa: E731
    cpu_of = lambda v, w="W1": get(v, w, "cpu_ms_per_1000_deliveries")  # noqa: E731
    fixed = f"p99_ms_at_{FIXED_LOAD}"
    return {
        "W1 CPU per delivery P/B0 (target <= 0.5)": _ratio(cpu_of("P"), cpu_of("B0")),
        "W2 capacity P/B0 (target >= 2)": capacity_ratio(capacity_of("P"), capacity_of("B0"), lowest_step),
        "W2 capacity P/B1 (target >= 5)": capacity_ratio(capacity_of("P"), capacity_of("B1"), lowest_step),
        f"p99 at {FIXED_LOAD} deliveries/s P/B0 (target <= 1)": _ratio(get("P", "W2", fixed), get("B0", "W2", fixed)),
        "W4 connects/s P/B0 (target >= 1)": _ratio(get("P", "W4", "connects_per_s"), get("B0", "W4", "connects_per_s")),
        "W4 handshake p99 P/B0 (target <= 1)": _ratio(
            get("P", "W4", "handshake_p99_ms"), get("B0", "W4", "handshake_p99_ms")
        ),
        "P lost acknowledged messages, W1+W2+W3, every repetition (target 0)": lost_acknowledged(runs.get("P", [])),
        "PU lost acknowledged messages, W1+W2+W3, every repetition": lost_acknowledged(runs.get("PU", [])),
        "W4 P KiB RSS per idle connection (target <= 64)": get("P", "W4", "rss_kib_per_idle_connection"),
        "W3 CPU per delivery P/B0": _ratio(cpu_of("P", "W3"), cpu_of("B0", "W3")),
        "W1 P p99 ms": get("P", "W1", "p99_ms"),
        "W2 capacity P/L": capacity_ratio(capacity_of("P"), capacity_of("L"), lowest_step),
        "W1 CPU per delivery P/L": _ratio(cpu_of("P"), cpu_of("L")),
        "W2 CPU per delivery P/L": _ratio(cpu_of("P", "W2"), cpu_of("L", "W2")),
        "W2 capacity PU/P (uvicorn over daphne)": capacity_ratio(capacity_of("PU"), capacity_of("P"), lowest_step),
        "W1 CPU per delivery PU/P (uvicorn over daphne)": _ratio(cpu_of("PU"), cpu_of("P")),
    }


def format_table(table: dict[str, dict[str, dict[str, float | None]]]) -> str:
    lines = []
    for workload in ("W1", "W2", "W3", "W4"):
        metrics = next((table[v][workload] for v in table if workload in table[v]), {})
        if not metrics:
            continue
        lines.append(f"\n{workload}")
        lines.append("| metric | " + " | ".join(table) + " |")
        lines.append("|---|" + "---|" * len(table))
        for metric in metrics:
            lines.append(f"| {metric} | " + " | ".join(str(table[v][workload].get(metric)) for v in table) + " |")
    return "\n".join(lines)


def plot(path: Path, runs: dict[str, list[dict[str, Any]]]) -> bool:
    """Latency percentiles against offered load (W2), one line per variant."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axis = plt.subplots(figsize=(8, 5))
    for variant, reps in runs.items():
        phases = reps[len(reps) // 2]["W2"]["phases"]
        offered = [p["offered_deliveries_per_s"] for p in phases]
        for key, style in (("p50_ms", "--"), ("p99_ms", "-")):
            axis.plot(offered, [p[key] for p in phases], style, marker="o", label=f"{variant} {key[:-3]}")
    axis.axhline(P99_LIMIT_MS, color="grey", linewidth=0.8)
    axis.set_yscale("log")
    axis.set_xlabel("offered deliveries/s")
    axis.set_ylabel("latency from planned send (ms)")
    axis.set_title("W2 ramp: latency against offered load")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return True


def write_report(run_id: str, params: dict[str, Any], runs: dict[str, list[dict[str, Any]]], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    table = {variant: medians(reps) for variant, reps in runs.items()}
    summary = ratios(table, lowest_step=params["w2_rates"][0] * params["room_size"], runs=runs)
    (folder / f"{run_id}.json").write_text(
        json.dumps({"params": params, "medians": table, "ratios": summary, "runs": runs}, indent=1)
    )
    print(f"\nmedians of {params['reps']} repetition(s); latency from planned send time")
    print(format_table(table))
    print()
    for name, value in summary.items():
        print(f"{name}: {value}")
    plotted = plot(folder / f"{run_id}.png", runs)
    print(f"\nwrote {folder / (run_id + '.json')}" + (f" and {run_id}.png" if plotted else " (no matplotlib: no plot)"))


def main(path: str) -> None:
    """Print (and rewrite) a stored run's report, e.g. after the rules of
    the headline numbers changed: python -m bench.report bench/results/RUN.json"""
    stored = json.loads(Path(path).read_text())
    for reps in stored["runs"].values():
        for run in reps:
            w2 = run.get("W2")
            if w2:
                w2["headline"]["capacity_deliveries_per_s"] = capacity(w2["phases"])
    write_report(Path(path).stem, stored["params"], stored["runs"], Path(path).parent)


if __name__ == "__main__":
    import sys

    main(sys.argv[1])
