"""Machine-readable benchmark results: the one JSON shape every ``benchmarks/bench_*.py`` writes.

A script given ``--json PATH`` writes::

    {"benchmark": "bench_decode", "title": "...", "groups": [
        {"name": "trade update", "unit": "msg/s", "kind": "throughput",
         "higher_is_better": true, "baseline": "orjson.loads",
         "series": {"orjson.loads": [...samples...], "flexconn decode": [...]}}]}

``kind`` is ``"throughput"`` (one sample per timed round) or ``"latency"`` (one sample per
operation, in seconds). A group may also carry ``ratios``: per contender, its ratio to the
baseline computed within each round (the report shows their min / median / max). The document may
carry ``goals`` (verdicts from :func:`harness.goal`), ``notes`` (what was skipped and why) and
``meta`` (pinning, stream sizes...). ``benchmarks/report.py`` turns these files into the report's
tables, goals and plots; it needs nothing else from a script.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["add_json_option", "dump", "group"]


def group(
    name: str,
    unit: str,
    series: Mapping[str, Sequence[float]],
    *,
    baseline: str | None = None,
    kind: str = "throughput",
    higher_is_better: bool = True,
) -> dict[str, Any]:
    """One comparison: several contenders measured alike, one of them the baseline."""
    if baseline is not None and baseline not in series:
        raise ValueError(f"baseline {baseline!r} is not one of the series")
    return {
        "name": name,
        "unit": unit,
        "kind": kind,
        "higher_is_better": higher_is_better,
        "baseline": baseline,
        "series": {label: [float(v) for v in values] for label, values in series.items()},
    }


def add_json_option(parser: Any) -> None:
    """Add ``--json PATH`` to an ``argparse`` parser."""
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")


def dump(
    path: str | None,
    benchmark: str,
    title: str,
    groups: Sequence[dict[str, Any]],
    *,
    goals: Sequence[dict[str, Any]] = (),
    notes: Sequence[str] = (),
    meta: Mapping[str, Any] | None = None,
) -> None:
    """Write the results to ``path`` (nothing when ``path`` is ``None``)."""
    if path is None:
        return
    document: dict[str, Any] = {"benchmark": benchmark, "title": title, "groups": list(groups)}
    document["goals"] = list(goals)
    document["notes"] = list(notes)
    document["meta"] = dict(meta or {})
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=1) + "\n")
