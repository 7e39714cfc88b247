"""Run every benchmark and write ``benchmarks/results/REPORT.md`` with tables and plots.

Discovery, not a list: every ``benchmarks/bench_*.py`` present is run with ``--json`` into a
fresh results folder (a script without that option still runs; its printed output goes into the
report verbatim). Each benchmark gets one table: every contender beside its baseline with min,
median and max over the rounds and the ratio of medians. Plots (matplotlib, PNG): throughput bars
per benchmark (median, with min-max whiskers), latency distributions for latency groups, and RSS,
task and descriptor counts over every soak run found in ``benchmarks/results/soak-*``
(written by ``benchmarks/soak.py``, which ``make bench`` does not rerun: it takes 30 minutes).

Usage: ``python benchmarks/report.py [--only NAME ...] [--skip-run] [--out benchmarks/results]``.
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

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
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
        "| case | contender | unit | min | median | max | ratio to baseline |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for grp in result["groups"]:
        base = grp.get("baseline")
        base_median = statistics.median(grp["series"][base]) if base else None
        names = sorted(grp["series"], key=lambda n: n != base)
        unit, scale = _display_unit(grp["unit"])
        better = "" if grp.get("higher_is_better", True) else " (lower is better)"
        for name in names:
            values = [v * scale for v in grp["series"][name]]
            if not values:
                continue
            median = statistics.median(values)
            if base_median:
                ratio = f"{median / (base_median * scale):.3f}" if name != base else "1 (baseline)"
            else:
                ratio = "-"
            label = f"**{name}**" if name == base else name
            lines.append(
                f"| {grp['name']}{better} | {label} | {unit} | {fmt(min(values))} "
                f"| {fmt(median)} | {fmt(max(values))} | {ratio} |"
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


# -- the report ----------------------------------------------------------------------------------


def write_report(out: Path, timings: dict[str, tuple[float, int]]) -> Path:
    lines = [
        "# flexconn benchmark report",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
        "`make bench` (`benchmarks/report.py`). Every benchmark below was run in this invocation; "
        "each compares flexconn with its baseline measured in the same run.",
        "",
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
    ]
    lines += [f"| {key} | {value} |" for key, value in machine().items()]
    lines += ["", "## Library versions", "", "| library | version |", "| --- | --- |"]
    lines += [f"| {name} | {version} |" for name, version in versions().items()]
    lines.append("")
    for name, (elapsed, code) in timings.items():
        lines += [f"## {name}", ""]
        result_path = out / f"{name}.json"
        status = f"ran in {elapsed:.0f} s" + (f", **exit code {code}**" if code else "")
        if code == 0 and result_path.exists():
            result = json.loads(result_path.read_text())
            lines += [f"{result['title']} ({status}; raw output: `{name}.txt`).", ""]
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--only", nargs="*", help="run only these benchmarks (script stems)")
    parser.add_argument("--skip-run", action="store_true", help="report on existing results")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per benchmark")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    scripts = [s for s in discover() if not args.only or s.stem in args.only]
    timings: dict[str, tuple[float, int]] = {}
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
    return 1 if any(code for _, code in timings.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
