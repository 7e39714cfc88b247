"""Run every benchmark; write ``benchmarks/results/REPORT.md`` and, from it, ``docs/benchmarks.md``.

Discovery, not a list: every ``benchmarks/bench_*.py`` present is run with ``--json`` into a
fresh results folder (a script without that option still runs; its printed output goes into the
report verbatim). The report opens with the goals table: every goal of the issue as a ratio
measured in this run, met or **MISSED**, each miss with its measured reason; the goals come from
the scripts' own results (``goals`` in their JSON), the decode goal from ``bench_decode.json``
(that script belongs to the hot-path engineer: read, never edited) and the soak goal from the
newest 60-minute run of ``benchmarks/soak.py`` found in ``benchmarks/results/soak-*`` (which
``make bench`` does not rerun). Then the CPU pinning, and one table per benchmark: every
contender beside its baseline with min, median and max over the rounds, the ratio of medians and,
where rounds were interleaved, the per-round ratios' min / median / max. Plots (matplotlib, PNG):
throughput bars, latency distributions, and RSS, tasks and descriptors over every soak run.

``docs/benchmarks.md`` is generated from ``REPORT.md`` by :func:`docs_page` (an introduction,
then the report's text with headings moved one level down and images left out): never edit it by
hand; ``--docs-only`` regenerates it from the ``REPORT.md`` on disk.

Usage: ``python benchmarks/report.py [--only NAME ...] [--skip-run] [--docs-only]
[--out benchmarks/results]``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import goal

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DOCS_PAGE = HERE.parent / "docs" / "benchmarks.md"
#: A soak must run this long for its RSS slope to count for the goal.
SOAK_GOAL_SECONDS = 3600
SOAK_SLOPE_LIMIT = 0.02
LIBRARIES = (
    "flexconn",
    "trio",
    "trio-websocket",
    "wsproto",
    "httpx",
    "orjson",
    "cattrs",
    "attrs",
    "hypercorn",
    "websockets",
    "msgspec",
    "matplotlib",
)
#: Result files and plots this script owns in the results folder (removed before a run).
_GENERATED = ("bench_*.json", "bench_*.txt", "bench_*.png", "soak.png", "REPORT.md")


def discover() -> list[Path]:
    """Every benchmark script, in name order."""
    return sorted(HERE.glob("bench_*.py"))


def supports_json(script: Path) -> bool:
    return "add_json_option" in script.read_text() or "--json" in script.read_text()


def run(script: Path, out: Path, timeout: float) -> tuple[float, int]:
    """Run one script, its output to ``<name>.txt`` and results to ``<name>.json``."""
    command = [sys.executable, str(script)]
    if supports_json(script):
        command += ["--json", str(out / f"{script.stem}.json")]
    started = time.perf_counter()
    print(f"running {script.name} ...", flush=True)
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=HERE.parent, check=False
        )
        output, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        output, code = f"{partial}\ntimed out after {timeout:g}s", -1
    elapsed = time.perf_counter() - started
    (out / f"{script.stem}.txt").write_text(output)
    print(f"  {script.name}: exit {code} in {elapsed:.0f}s", flush=True)
    return elapsed, code


# -- environment -----------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, str]:
    return {
        "cores": str(os.cpu_count()),
        "CPU": cpu_model(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "OS": platform.platform(),
    }


def versions() -> dict[str, str]:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


# -- tables --------------------------------------------------------------------------------------


def fmt(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.01:
        return f"{value:.3f}"
    return f"{value:.3g}"


def table(result: dict[str, Any]) -> list[str]:
    """One Markdown table for a benchmark: every group's contenders, baseline first."""
    lines = [
        "| case | contender | unit | min | median | max | ratio of medians "
        "| per-round ratio min / median / max |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for grp in result["groups"]:
        base = grp.get("baseline")
        base_values = grp["series"].get(base) if base else None
        base_median = statistics.median(base_values) if base_values else None
        names = sorted(grp["series"], key=lambda n: n != base)
        unit, scale = _display_unit(grp["unit"])
        better = "" if grp.get("higher_is_better", True) else " (lower is better)"
        ratios = grp.get("ratios") or {}
        for name in names:
            values = [v * scale for v in grp["series"][name]]
            if not values:
                continue
            median = statistics.median(values)
            if base_median:
                ratio = f"{median / (base_median * scale):.3f}" if name != base else "1 (baseline)"
            else:
                ratio = "-"
            per_round = ratios.get(name) if name != base else None
            spread_text = (
                " / ".join(
                    f"{v:.3f}"
                    for v in (min(per_round), statistics.median(per_round), max(per_round))
                )
                if per_round
                else "-"
            )
            label = f"**{name}**" if name == base else name
            lines.append(
                f"| {grp['name']}{better} | {label} | {unit} | {fmt(min(values))} "
                f"| {fmt(median)} | {fmt(max(values))} | {ratio} | {spread_text} |"
            )
    return lines


def _display_unit(unit: str) -> tuple[str, float]:
    """Seconds read better as microseconds in a table of latencies."""
    return ("us", 1e6) if unit == "s" else (unit, 1.0)


# -- plots ---------------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def throughput_plot(result: dict[str, Any], path: Path) -> bool:
    """Horizontal bars of median throughput per contender, min-max whiskers, per group."""
    groups = [g for g in result["groups"] if g.get("kind", "throughput") == "throughput"]
    groups = [g for g in groups if any(g["series"].values())]
    if not groups:
        return False
    plt = _pyplot()
    rows = sum(len(g["series"]) for g in groups)
    fig, axes = plt.subplots(
        len(groups), 1, figsize=(9, 1.1 + 0.45 * rows + 0.5 * len(groups)), squeeze=False
    )
    for ax, grp in zip(axes[:, 0], groups, strict=True):
        names = [n for n, v in grp["series"].items() if v]
        medians = [statistics.median(grp["series"][n]) for n in names]
        lows = [m - min(grp["series"][n]) for n, m in zip(names, medians, strict=True)]
        highs = [max(grp["series"][n]) - m for n, m in zip(names, medians, strict=True)]
        colours = ["#888888" if n == grp.get("baseline") else "#2b6cb0" for n in names]
        ax.barh(names, medians, xerr=[lows, highs], color=colours, capsize=3)
        ax.invert_yaxis()
        ax.set_title(grp["name"], fontsize=9, loc="left")
        ax.set_xlabel(grp["unit"], fontsize=8)
        ax.tick_params(labelsize=8)
    fig.suptitle(f"{result['benchmark']}: median (bars), min-max (whiskers); grey = baseline")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def latency_plot(result: dict[str, Any], path: Path) -> bool:
    """Box plots of every latency group's samples (log scale when they span decades)."""
    groups = [g for g in result["groups"] if g.get("kind") == "latency"]
    groups = [g for g in groups if any(g["series"].values())]
    if not groups:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(len(groups), 1, figsize=(9, 2.2 * len(groups) + 0.6), squeeze=False)
    for ax, grp in zip(axes[:, 0], groups, strict=True):
        names = [n for n, v in grp["series"].items() if v]
        unit, scale = _display_unit(grp["unit"])
        data = [[v * scale for v in grp["series"][n]] for n in names]
        ax.boxplot(data, orientation="horizontal", tick_labels=names, whis=(1, 99))
        low = min(min(d) for d in data)
        high = max(max(d) for d in data)
        if low > 0 and high / low > 100:
            ax.set_xscale("log")
        ax.set_title(f"{grp['name']} (whiskers: p1-p99)", fontsize=9, loc="left")
        ax.set_xlabel(unit, fontsize=8)
        ax.tick_params(labelsize=8)
    fig.suptitle(f"{result['benchmark']}: latency distributions")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def soak_runs(results: Path) -> list[Path]:
    """Every finished soak run's folder, newest first."""
    runs = [p for p in results.glob("soak-*/soak.json") if p.is_file()]
    runs = [p for p in runs if json.loads(p.read_text()).get("checks")]
    runs.sort(key=lambda p: json.loads(p.read_text()).get("started", ""), reverse=True)
    return [p.parent for p in runs]


def soak_plot(soak: dict[str, Any], path: Path) -> None:
    """RSS, tasks, descriptors and buffered feed items over the soak, faults marked."""
    plt = _pyplot()
    samples = soak["samples"]
    t = [s["t"] / 60 for s in samples]
    panels = [
        ("rss_mb", "RSS (MiB)"),
        ("tasks", "trio tasks"),
        ("fds", "open descriptors"),
        ("buffered", "items buffered in feeds"),
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 7.5), sharex=True)
    for ax, (key, label) in zip(axes, panels, strict=True):
        ax.plot(t, [s[key] for s in samples], linewidth=1)
        ax.set_ylabel(label, fontsize=8)
        ax.set_ylim(bottom=0)
        for fault in soak.get("faults", []):
            ax.axvline(fault["t"] / 60, color="#e53e3e", alpha=0.15, linewidth=1)
        ax.tick_params(labelsize=8)
    axes[-1].set_xlabel("minutes (red lines: faults)")
    fig.suptitle(
        f"soak: {soak['duration'] / 60:.0f} min, {len(soak.get('faults', []))} faults, "
        f"verdict {'PASS' if soak['passed'] else 'FAIL'}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _slope_line(soak: dict[str, Any]) -> str:
    found = soak.get("rss_slope")
    if not found:
        slope = rss_slope(soak)
        text = "none recorded" if slope is None else f"{slope:+.4f} MiB/min"
        return f"RSS slope over the last two thirds (from the growth checks): {text}."
    return (
        f"RSS slope over the last two thirds (minutes {found['from_min']:.1f} to "
        f"{found['to_min']:.1f}, {found['samples']} samples, least squares): "
        f"**{found['slope_mib_per_min']:+.4f} MiB/min** (goal: under {found['limit']:g} over a "
        f"60-minute run; this run: {found['minutes']:.0f} min)."
    )


def soak_section(folder: Path, out: Path) -> list[str]:
    soak = json.loads((folder / "soak.json").read_text())
    soak_plot(soak, folder / "soak.png")
    rel = os.path.relpath(folder, out)
    lines = [
        f"### {folder.name}",
        "",
        f"Run `{rel}` (started {soak['started']}): one connection "
        f"({soak.get('transport', 'trio-websocket')} transport), {soak['feeds']} feeds, "
        f"{soak.get('orders_per_s', 0)} order requests/s, a fault every "
        f"{soak['fault_every']:g} s through the chaos proxy, for {soak['duration'] / 60:.1f} min; "
        f"sampled every {soak['sample_every']:g} s. Verdict: "
        f"**{'PASS' if soak['passed'] else 'FAIL'}**.",
        "",
        _slope_line(soak),
        "",
        "Growth test: median of the last third of the samples against the middle third (the first"
        " third is warm-up); a metric fails if it grew by more than its tolerance, or ever passed"
        " its hard cap.",
        "",
        "| metric | first third | middle third | last third | growth | allowed | cap | max "
        "| slope per min (last two thirds) | ok |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, check in soak["checks"].items():
        slope = check.get("slope_per_min")
        lines.append(
            f"| {name} | {fmt(check['first'])} | {fmt(check['middle'])} | {fmt(check['last'])} "
            f"| {fmt(check['growth'])} | {fmt(check['allowed'])} | {fmt(check['cap'])} "
            f"| {fmt(check['max'])} | {'-' if slope is None else f'{slope:+.3f}'} "
            f"| {'yes' if check['ok'] else '**NO**'} |"
        )
    lines += ["", "| figure | value |", "| --- | ---: |"]
    for key, value in soak.get("figures", {}).items():
        lines.append(f"| {key} | {value} |")
    if soak.get("problems"):
        lines += ["", "Problems:", ""] + [f"- {p}" for p in soak["problems"]]
    lines += ["", f"![soak]({rel}/soak.png)", ""]
    return lines


# -- goals -------------------------------------------------------------------------------------


def _verdict(
    name: str,
    value: float | None,
    target: float,
    comparison: str,
    *,
    unit: str = "x",
    spread: list[float] | None = None,
    reason: str = "",
    detail: str = "",
) -> dict[str, Any]:
    """``harness.goal`` with the value and target positional, as the report's callers write it."""
    return goal(
        name,
        value=value,
        target=target,
        comparison=comparison,
        unit=unit,
        spread_of=spread,
        reason=reason,
        detail=detail,
    )


def decode_goal(out: Path) -> dict[str, Any]:
    """Typed decode of an order notice against ``orjson.loads``, from ``bench_decode.json``.

    ``bench_decode.py`` belongs to the hot-path engineer; this only reads its results.
    """
    name = "typed decode of an order notice vs orjson.loads (cost)"
    path = out / "bench_decode.json"
    if not path.exists():
        return _verdict(name, None, 2.0, "<=", reason="bench_decode.py wrote no results")
    document = json.loads(path.read_text())
    groups = [g for g in document["groups"] if "order notice" in g["name"].lower()]
    if not groups:
        return _verdict(name, None, 2.0, "<=", reason="bench_decode has no order-notice case")
    grp = groups[0]
    base = grp.get("baseline") or "orjson.loads"
    candidates = [n for n in grp["series"] if n != base and "flexconn" in n.lower()]
    candidates.sort(key=lambda n: (n != "flexconn decode", "read" in n, n))
    if base not in grp["series"] or not candidates:
        return _verdict(name, None, 2.0, "<=", reason="bench_decode's series were not found")
    ours_name = candidates[0]
    ours, theirs = grp["series"][ours_name], grp["series"][base]
    rates = grp.get("higher_is_better", True)  # msg/s: cost ratio is theirs / ours
    per_round = [(b / a if rates else a / b) for a, b in zip(ours, theirs, strict=False) if a and b]
    ratio = statistics.median(theirs) / statistics.median(ours)
    if not rates:
        ratio = 1 / ratio
    ours_us, theirs_us = (
        (1e6 / statistics.median(v)) if rates else (1e6 * statistics.median(v))
        for v in (ours, theirs)
    )
    text = " ".join([grp["name"], document.get("title", ""), json.dumps(document.get("meta", {}))])
    distinct = "distinct" in text.lower()
    detail = (
        f"bench_decode.py's `{grp['name']}`: `{ours_name}` against `{base}`, median of "
        "per-round cost ratios; "
        + (
            "distinct values per message"
            if distinct
            else "bench_decode does not say its frames carry distinct values (the goal asks for "
            "them)"
        )
    )
    return _verdict(
        name,
        round(statistics.median(per_round) if per_round else ratio, 3),
        2.0,
        "<=",
        spread=per_round,
        reason=(
            f"flexconn's typed decode takes {ours_us:.2f} us per notice against orjson's "
            f"{theirs_us:.2f} us (+{ours_us - theirs_us:.2f} us of typing: models, enums, Decimal)"
        ),
        detail=detail,
    )


def rss_slope(document: dict[str, Any]) -> float | None:
    """The soak's RSS slope over the last two thirds (MiB/min), as the soak reported it."""
    slope = document.get("rss_slope", {}).get("slope_mib_per_min")
    if slope is None:
        slope = document.get("checks", {}).get("rss_mb", {}).get("slope_per_min")
    return None if slope is None else float(slope)


def soak_goal(out: Path) -> dict[str, Any]:
    """The newest soak of at least 60 minutes: its RSS slope over the last two thirds."""
    name = "soak: RSS slope over the last two thirds of a 60-minute run"
    runs = soak_runs(out)
    long_runs = [
        f
        for f in runs
        if json.loads((f / "soak.json").read_text()).get("duration", 0) >= SOAK_GOAL_SECONDS
    ]
    if not long_runs:
        newest = ""
        if runs:
            document = json.loads((runs[0] / "soak.json").read_text())
            slope = rss_slope(document)
            newest = (
                f"; the newest run (`{runs[0].name}`, {document['duration'] / 60:.0f} min) has "
                f"{'no slope' if slope is None else f'{slope:+.3f} MiB/min'}"
            )
        return _verdict(
            name,
            None,
            SOAK_SLOPE_LIMIT,
            "<",
            unit=" MiB/min",
            reason="no 60-minute soak in benchmarks/results (`make soak`, which `make bench` "
            f"does not run){newest}",
        )
    folder = long_runs[0]
    document = json.loads((folder / "soak.json").read_text())
    slope = rss_slope(document)
    return _verdict(
        name,
        None if slope is None else round(slope, 4),
        SOAK_SLOPE_LIMIT,
        "<",
        unit=" MiB/min",
        reason=(
            f"RSS grew {slope:+.3f} MiB/min over the last two thirds of `{folder.name}` "
            f"(started {document['started']}; least-squares slope of its samples)"
            if slope is not None
            else f"`{folder.name}` recorded no slope"
        ),
        detail=f"`{folder.name}`, started {document['started']}, "
        f"{document['duration'] / 60:.0f} min",
    )


def _value_text(entry: dict[str, Any]) -> str:
    value = entry["value"]
    if value is None:
        return "not measured"
    unit = entry.get("unit", "x")
    return f"{value:g}{unit}" if unit != "x" else f"{value:.3f}x"


def goals_section(out: Path, timings: dict[str, tuple[float, int]]) -> list[str]:
    entries: list[tuple[str, dict[str, Any]]] = []
    for name, (_elapsed, code) in timings.items():
        path = out / f"{name}.json"
        document = json.loads(path.read_text()) if path.exists() else {}
        for entry in document.get("goals", []):
            entries.append((name, entry))
        if code and name != "bench_decode":
            entries.append(
                (
                    name,
                    _verdict(
                        f"{name} finished cleanly",
                        None,
                        0,
                        "<=",
                        reason=f"{name} exited with code {code}: its goals above may be missing "
                        f"or partial; see `{name}.txt`",
                    ),
                )
            )
    entries.append(("bench_decode", decode_goal(out)))
    entries.append(("soak.py", soak_goal(out)))
    order = ["bench_feed", "bench_roundtrip", "bench_decode", "bench_rest", "bench_rss", "soak.py"]
    entries.sort(key=lambda e: order.index(e[0]) if e[0] in order else len(order))
    issue = [(n, e) for n, e in entries if not e["goal"].startswith("harness")]
    harness = [(n, e) for n, e in entries if e["goal"].startswith("harness")]
    met = sum(1 for _, e in issue if e["met"])
    lines = [
        "## Goals",
        "",
        f"{met} of {len(issue)} met in this run. Ratios are flexconn over the baseline measured in "
        "the same run (for costs and latencies lower is better, for rates higher); the value is "
        "the median of the per-round ratios over interleaved rounds (the round trip's: the "
        "percentile over every sample), with the rounds' min / median / max beside it.",
        "",
        "| goal | target | measured | rounds min / median / max | verdict | reason (for a miss)"
        " / what was measured |",
        "| --- | --- | ---: | ---: | --- | --- |",
    ]
    for source, entry in issue + harness:
        spread = entry.get("spread")
        spread_text = (
            " / ".join(f"{v:.3f}" for v in spread)
            if spread and entry.get("unit") == "x"
            else (" / ".join(f"{v:.1f}" for v in spread) if spread else "-")
        )
        unit = entry.get("unit", "x")
        target = f"{entry['comparison']} {entry['target']:g}{unit if unit != 'x' else 'x'}"
        verdict = "met" if entry["met"] else "**MISSED**"
        why = entry["reason"] if not entry["met"] else entry.get("detail", "")
        if not entry["met"] and entry.get("detail"):
            why += f" ({entry['detail']})"
        lines.append(
            f"| {entry['goal']} (`{source}`) | {target} | {_value_text(entry)} | {spread_text} "
            f"| {verdict} | {why.replace('|', '/')} |"
        )
    lines.append("")
    return lines


def pinning_section(out: Path, timings: dict[str, tuple[float, int]]) -> list[str]:
    notes = []
    for name in timings:
        path = out / f"{name}.json"
        if not path.exists():
            continue
        pinning = json.loads(path.read_text()).get("meta", {}).get("pinning")
        if pinning:
            notes.append(f"| {name} | {pinning['note']} |")
    if not notes:
        return []
    return [
        "## CPU pinning",
        "",
        "| benchmark | pinning |",
        "| --- | --- |",
        *notes,
        "",
        "Benchmarks not listed here (`bench_decode`, `bench_engine`, `bench_sim`, "
        "`bench_reconnect`) do not pin.",
        "",
    ]


# -- the report ----------------------------------------------------------------------------------


def write_report(out: Path, timings: dict[str, tuple[float, int]]) -> Path:
    lines = [
        "# flexconn benchmark report",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
        "`make bench` (`benchmarks/report.py`). Every benchmark below was run in this invocation; "
        "each compares flexconn with its baseline measured in the same run.",
        "",
    ]
    lines += goals_section(out, timings)
    lines += ["## Machine", "", "| | |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in machine().items()]
    lines += ["", "## Library versions", "", "| library | version |", "| --- | --- |"]
    lines += [f"| {name} | {version} |" for name, version in versions().items()]
    lines.append("")
    lines += pinning_section(out, timings)
    for name, (elapsed, code) in timings.items():
        lines += [f"## {name}", ""]
        result_path = out / f"{name}.json"
        status = f"ran in {elapsed:.0f} s" + (f", **exit code {code}**" if code else "")
        if result_path.exists():
            result = json.loads(result_path.read_text())
            lines += [f"{result['title']} ({status}; raw output: `{name}.txt`).", ""]
            for note in result.get("notes", []):
                lines += [f"- note: {note}"]
            if result.get("notes"):
                lines.append("")
            lines += table(result)
            lines.append("")
            if throughput_plot(result, out / f"{name}.png"):
                lines += [f"![{name}]({name}.png)", ""]
            if latency_plot(result, out / f"{name}-latency.png"):
                lines += [f"![{name} latency]({name}-latency.png)", ""]
        else:
            text = (out / f"{name}.txt").read_text() if (out / f"{name}.txt").exists() else ""
            lines += [f"No machine-readable results ({status}); its output:", "", "```"]
            lines += [re.sub(r"\s+$", "", line) for line in text.splitlines()[-60:]]
            lines += ["```", ""]
    lines += ["## Soak runs", ""]
    runs = soak_runs(out)
    if not runs:
        lines += ["No soak run found (run `make soak`).", ""]
    for folder in runs:
        lines += soak_section(folder, out)
    report = out / "REPORT.md"
    report.write_text("\n".join(lines))
    return report


# -- the documentation page ----------------------------------------------------------------------

DOCS_INTRO = """\
<!-- GENERATED by benchmarks/report.py from benchmarks/results/REPORT.md: do not edit by hand.
     `make bench` rewrites it; `python benchmarks/report.py --docs-only` regenerates it alone. -->

# Benchmarks

Every benchmark compares flexconn with a baseline measured in the same run, the contenders
interleaved round by round so that drift (CPU frequency, other load) hits them alike, and shows
min, median and max over the rounds. The feed, round-trip and outbox benchmarks use a bare
asyncio `websockets` + `orjson` client as their baseline (the fastest common peer); the server
side and the client side run in separate processes pinned to different CPUs.

What each script asks, and against what:

- `bench_feed.py`: typed messages/s from one feed (order notices; depth-25 with every level read
  as Decimal), from a raw pre-framed server with distinct values in every message, whose own
  capacity is measured too. Baselines: bare asyncio websockets + orjson; bare trio + websockets'
  sans-IO core + orjson.
- `bench_roundtrip.py`: a lone order's acknowledgement latency (p50, p99) on the simulator, against
  a bare asyncio websockets + orjson client on the same simulator.
- `bench_outbox.py`: sustained orders/s through the batching outbox under the exchange's limits,
  against a bare asyncio client batching and pacing by hand.
- `bench_rest.py`: what `RestClient` costs per request, public and private, against bare httpx +
  orjson signing by hand.
- `bench_rss.py`: resident memory of one connection with 20 feeds (fresh processes), against a
  bare asyncio websockets + orjson client.
- `bench_decode.py`: how fast frames become typed messages, against `orjson.loads`.
- `bench_engine.py`, `bench_sim.py`, `bench_reconnect.py`: the simulator's engine and fan-out,
  and the time from a drop to fresh data.
- `soak.py`: whether a connection (20 feeds, orders, a fault a minute) stays flat, and its RSS
  slope over the last two thirds of the run.

```console
$ make bench                     # every bench_*.py, then REPORT.md and this page (~10 min)
$ make soak SOAK_MINUTES=60      # the long soak, into benchmarks/results/soak-<time>/
$ .venv/bin/python benchmarks/bench_feed.py --rounds 3   # one script on its own (--help)
```

What follows is `benchmarks/results/REPORT.md` as generated (plots are in that folder). Figures
from another machine or another commit will differ: run `make bench` for yours.

"""


def docs_page(report_text: str) -> str:
    """``docs/benchmarks.md`` from the report's text: headings one level down, no images."""
    lines = []
    for line in report_text.splitlines():
        if line.startswith("# "):
            continue  # the report's own title: the page has one
        if line.startswith("!["):
            continue  # plots live beside REPORT.md, outside the documentation
        if line.startswith("#"):
            line = "#" + line
        lines.append(line)
    body = "\n".join(lines).strip("\n")
    return DOCS_INTRO + body + "\n"


def write_docs(report: Path, page: Path = DOCS_PAGE) -> Path:
    page.write_text(docs_page(report.read_text()))
    return page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--only", nargs="*", help="run only these benchmarks (script stems)")
    parser.add_argument("--skip-run", action="store_true", help="report on existing results")
    parser.add_argument(
        "--docs-only", action="store_true", help="regenerate docs/benchmarks.md from REPORT.md"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds per benchmark")
    args = parser.parse_args(argv)
    out: Path = args.out
    if args.docs_only:
        print(f"wrote {write_docs(out / 'REPORT.md')}")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    scripts = [s for s in discover() if not args.only or s.stem in args.only]
    timings: dict[str, tuple[float, int]] = {}
    started = time.perf_counter()
    if args.skip_run:
        timings = {s.stem: (0.0, 0) for s in scripts}
    else:
        for pattern in _GENERATED:
            for stale in out.glob(pattern):
                if stale.is_dir():
                    shutil.rmtree(stale)
                else:
                    stale.unlink()
        for script in scripts:
            timings[script.stem] = run(script, out, args.timeout)
    report = write_report(out, timings)
    print(f"wrote {report}")
    if out.resolve() == RESULTS.resolve():
        print(f"wrote {write_docs(report)}")
    print(f"total {time.perf_counter() - started:.0f} s")
    return 1 if any(code for _, code in timings.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
