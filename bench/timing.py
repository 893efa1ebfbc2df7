"""How every figure is timed: one call under ``perf_counter``, and repeats run round-robin.

Round-robin (candidate 1, 2, ..., then the next repeat) rather than all repeats of one
candidate in a row, so that a change of machine load during the run hits all of them alike:
on a shared machine only the ratios are meaningful.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable

from bench import log


def timed(fn: Callable, *args):
    """``(seconds, result)`` of one call, perf_counter around the call only."""
    gc.collect()
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def round_robin(calls: dict[str, Callable[[], object]], repeat: int, *,
                repeats: dict[str, int] | None = None,
                on_result: Callable[[str, int, object], None] | None = None,
                label: str | None = None) -> dict[str, list[float]]:
    """Seconds of each call, ``repeat`` times, the calls interleaved within every repeat.

    ``repeats`` caps the repeats of some calls (a slow peer on a budget). ``on_result(name,
    rep, result)`` sees each result right after its call, untimed; results are not kept here, so
    a large one is freed before the next call runs. ``label`` logs each repeat's seconds.
    """
    repeats = repeats or {}
    times: dict[str, list[float]] = {name: [] for name in calls}
    for rep in range(repeat):
        for name, call in calls.items():
            if rep >= repeats.get(name, repeat):
                continue
            seconds, out = timed(call)
            times[name].append(seconds)
            if on_result is not None:
                on_result(name, rep, out)
            del out
        if label is not None:
            log(f"  {label} repeat {rep + 1}/{repeat}: "
                + ", ".join(f"{name} {times[name][-1]:.3f}s" for name in calls
                            if len(times[name]) == rep + 1))
    return times


def summary(seconds: list[float]) -> dict:
    """The JSON record of a call's timings: median, every repeat, and how many."""
    return {"seconds": statistics.median(seconds), "seconds_all": [round(s, 6) for s in seconds],
            "repeats": len(seconds)}


def add_rates(record: dict, work: float, unit: str, reference_rate: float,
              floor_rate: float | None) -> None:
    """Throughput ``work / seconds`` under ``unit``, beside the reference's and the floor's."""
    record[unit] = work / record["seconds"]
    record["ratio_vs_reference"] = record[unit] / reference_rate
    if floor_rate is not None:
        record["times_floor"] = floor_rate / record[unit]
