"""What every benchmark shares: CPU pinning, summaries over rounds, and goal verdicts.

Pinning. A benchmark has a server side (the simulator, or the raw pre-framed server) and a client
side; each runs in its own process and pins itself to its own CPU with
:func:`os.sched_setaffinity`, so that neither ever waits for the other's CPU (on the 2-core
machines this runs on, one each). :func:`cpu_plan` says which CPUs; :func:`pin` is called first
thing in every child process. With fewer than two CPUs available nothing is pinned and the report
says so.

Rounds. Contenders are measured in interleaved rounds (every contender once per round, the order
rotated from round to round), so that drift (CPU frequency, other load) hits them alike. A ratio
to the baseline is computed per round, from the two measurements of the same round, and reported
as min / median / max over the rounds.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "cpu_plan",
    "goal",
    "percentile",
    "pin",
    "pinning_note",
    "rotated",
    "round_ratios",
    "spread",
]


def cpu_plan() -> dict[str, int | None]:
    """The CPU for the server side and the one for the client side (``None``: not pinned)."""
    try:
        available = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return {"server": None, "client": None}
    if len(available) < 2:
        return {"server": None, "client": None}
    return {"server": available[0], "client": available[1]}


def pin(role: str) -> int | None:
    """Pin the calling process to the CPU of ``role`` (``"server"`` or ``"client"``)."""
    cpu = cpu_plan()[role]
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    return cpu


def pinning_note() -> dict[str, Any]:
    """What the report records about pinning."""
    plan = cpu_plan()
    if plan["server"] is None:
        return {"pinned": False, "note": "fewer than 2 CPUs available: nothing pinned"}
    return {
        "pinned": True,
        "server_cpu": plan["server"],
        "client_cpu": plan["client"],
        "note": (
            f"server side pinned to CPU {plan['server']}, client side to CPU {plan['client']} "
            "(os.sched_setaffinity in each child process)"
        ),
    }


def rotated(names: Sequence[str], round_index: int) -> list[str]:
    """``names`` rotated by ``round_index``: every contender goes first in turn."""
    if not names:
        return []
    k = round_index % len(names)
    return list(names[k:]) + list(names[:k])


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    """Min, median and max."""
    return min(values), statistics.median(values), max(values)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def round_ratios(
    series: Mapping[str, Sequence[float]], baseline: str, *, invert: bool = False
) -> dict[str, list[float]]:
    """Per contender, its value divided by the baseline's in the same round.

    ``invert`` divides the baseline by the contender instead (for costs, where lower is better,
    so that a ratio above 1 always means "better than the baseline").
    """
    base = series[baseline]
    ratios: dict[str, list[float]] = {}
    for name, values in series.items():
        pairs = [(v, b) for v, b in zip(values, base, strict=False) if v and b]
        ratios[name] = [b / v if invert else v / b for v, b in pairs]
    return ratios


def goal(
    name: str,
    *,
    value: float | None,
    target: float,
    comparison: str,
    unit: str = "x",
    spread_of: Sequence[float] | None = None,
    reason: str = "",
    detail: str = "",
) -> dict[str, Any]:
    """One goal's verdict: ``value`` against ``target`` (``comparison`` is ``>=``, ``<=``, ``<``).

    ``reason`` explains a miss (required then: the report prints it); ``detail`` says what was
    measured. A ``value`` of ``None`` is a miss (the measurement did not happen).
    """
    if comparison not in (">=", "<=", "<"):
        raise ValueError(f"unknown comparison {comparison!r}")
    if value is None:
        met = False
    elif comparison == ">=":
        met = value >= target
    elif comparison == "<=":
        met = value <= target
    else:
        met = value < target
    entry: dict[str, Any] = {
        "goal": name,
        "value": value,
        "target": target,
        "comparison": comparison,
        "unit": unit,
        "met": met,
        "detail": detail,
        "reason": "" if met else (reason or "no reason recorded"),
    }
    if spread_of:
        entry["spread"] = list(spread(spread_of))
    return entry
