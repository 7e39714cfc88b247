"""The ``flexconn`` console script, run as a real subprocess.

Each test starts the installed script (the one ``pip install`` put next to the interpreter) and
checks what a user sees: exit status, stdout and stderr. The in-process simulator makes every
command self-contained; ``flexconn sim`` is driven with SIGINT as a user's Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("flexconn")
MARKET = "BTC-USD-SWAP-LIN"


def flexconn(
    *args: str, timeout: float = 30, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def closed_port() -> int:
    """A local port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def running_sim() -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    """``flexconn sim`` on free ports; yields the process and the printed exports."""
    process = subprocess.Popen(
        [str(SCRIPT), "sim", "--port", "0", "--rest-port", "0", "--stats-every", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    exports: dict[str, str] = {}
    try:
        for line in process.stdout:
            for name, value in re.findall(r"(FLEXCONN_\w+)=(\S+)", line):
                exports[name] = value
            if line.startswith("Press Ctrl-C"):
                break
        yield process, exports
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        process.stdout.close()
        assert process.stderr is not None
        process.stderr.close()


def test_the_console_script_is_installed() -> None:
    assert SCRIPT.exists(), f"{SCRIPT} missing: install the package (make install)"
    result = flexconn("--help")
    assert result.returncode == 0
    for command in ("sim", "stream", "book", "orders", "place", "modify", "cancel", "demo"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.M), command


def test_python_dash_m_runs_the_same_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flexconn", "stream", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert "--count N" in result.stdout


def test_demo_plain_output_shows_the_reconnect_and_the_resubscription() -> None:
    result = flexconn("demo", "--duration", "5", timeout=40)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Traceback" not in out + result.stderr
    # The script's steps, in order.
    steps = [
        "place_many: 10 orders in 1 command(s); 10 acked",
        "modify_many: 4 changes; 4 acked",
        "PriceBoundError",
        "IOC buy at",
        "dropping every connection",
        "connection lost",
        f"resubscribed 3 channels in one command: order:all, depthL25:{MARKET}, trade:{MARKET}",
        "connection state: connected (reconnect #1)",
        "every order open before the drop survived it",
        "cancel_many:",
        "demo summary after",
    ]
    positions = [out.find(step) for step in steps]
    assert all(p >= 0 for p in positions), dict(zip(steps, positions, strict=True))
    assert positions[:5] == sorted(positions[:5])
    assert positions[-2:] == sorted(positions[-2:]) and positions[-2] > positions[4]
    assert f"trade:{MARKET}: continuity marker (reconnect #1)" in out
    assert "order:all: continuity marker (reconnect #1)" in out
    assert re.search(r"in-flight BUY order: (placed|not applied)", out)
    assert "connection: 1 reconnect(s)" in out
    assert "rejections 1 (PriceBoundError 1)" in out


def test_stream_prints_one_json_message_per_line_of_the_asked_channels() -> None:
    result = flexconn(
        "stream", f"depthL5:{MARKET}", f"trade:{MARKET}", "--count", "6", "--sim-rate", "400"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 6
    tables = set()
    for line in lines:
        message = json.loads(line)
        tables.add(message["table"])
        for item in message["data"]:
            assert item.get("instrumentId", item.get("marketCode")) == MARKET
    assert tables <= {"depthL5", "trade"}
    assert "depthL5" in tables


def test_stream_stops_after_its_duration() -> None:
    started = time.monotonic()
    result = flexconn("stream", "ticker:all", "--duration", "1.5")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 10
    assert all(json.loads(line)["table"] == "ticker" for line in result.stdout.splitlines())


def test_sim_prints_its_urls_and_demo_key_and_stops_on_sigint(
    running_sim: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    process, exports = running_sim
    assert re.fullmatch(r"ws://127\.0\.0\.1:\d+/v2/websocket", exports["FLEXCONN_URL"])
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", exports["FLEXCONN_REST_URL"])
    assert exports["FLEXCONN_API_KEY"] and exports["FLEXCONN_API_SECRET"]
    # It serves: a client gets data from it.
    result = flexconn("stream", f"depth:{MARKET}", "--count", "1", "--url", exports["FLEXCONN_URL"])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["data"][0]["instrumentId"] == MARKET
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0
    assert process.stderr is not None
    log = process.stderr.read()
    assert "simulator stopped" in log
    assert "Traceback" not in log


def test_place_orders_modify_and_cancel_against_a_running_sim(
    running_sim: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    _process, env = running_sim
    placed = flexconn("place", MARKET, "buy", "0.01", "40000", env=env)
    assert placed.returncode == 0, placed.stderr
    match = re.search(r"order id (\d+)", placed.stdout)
    assert match, placed.stdout
    order_id = match.group(1)
    assert env["FLEXCONN_API_SECRET"] not in placed.stdout + placed.stderr

    listed = flexconn("orders", env=env)
    assert listed.returncode == 0, listed.stderr
    orders = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(o["orderId"], o["side"], o["price"]) for o in orders] == [
        (int(order_id), "BUY", 40000)
    ]

    modified = flexconn("modify", MARKET, order_id, "--price", "39000", env=env)
    assert modified.returncode == 0, modified.stderr
    replaced = re.search(r"replaced by order (\d+)", modified.stdout)
    assert replaced, modified.stdout

    refused = flexconn("place", MARKET, "buy", "0.01", "200000", env=env)
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "PriceBoundError" in refused.stderr

    cancelled = flexconn("cancel", "--all", env=env)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() == f"order {replaced.group(1)}: cancelled"
    assert flexconn("orders", env=env).stdout == ""


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["stream", "bogus:X"], 2, "unknown channel 'bogus'"),
        (["stream"], 2, "the following arguments are required: CHANNEL"),
        (["sim", "--port", "abc"], 2, "not a port number"),
        (["sim", "--refuse-for", "3"], 2, "--refuse-for needs --drop-every"),
        (["sim", "--market", "DOGE-USD"], 2, "unknown market 'DOGE-USD'"),
        (["demo", "--duration", "1"], 2, "--duration must be at least 3 seconds"),
        (["place", MARKET, "up", "1"], 2, "side must be buy or sell"),
        (["place", MARKET, "buy", "-1"], 2, "must be a positive number"),
        (["stream", "depth:BTC-USD", "--url", "ws://example.com/v2/websocket"], 2, "wss://"),
        (["orders", "--url", "ws://127.0.0.1:9/v2/websocket"], 2, "no credentials"),
        (["nonsense"], 2, "invalid choice: 'nonsense'"),
    ],
)
def test_bad_arguments_end_with_a_one_line_error(
    args: list[str], status: int, message: str
) -> None:
    result = flexconn(*args, env={"FLEXCONN_API_KEY": "", "FLEXCONN_API_SECRET": ""})
    assert result.returncode == status
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("flexconn")
    assert message in result.stderr


def test_an_unreachable_server_is_a_one_line_error() -> None:
    url = f"ws://127.0.0.1:{closed_port()}/v2/websocket"
    result = flexconn("stream", f"depth:{MARKET}", "--url", url, "--count", "1")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"flexconn stream: error: cannot connect to {url}")


def test_every_option_the_cli_page_names_exists() -> None:
    """docs/cli.md names options per command; each must be one that command accepts."""
    import argparse

    from flexconn.cli import build_parser

    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    helps = {name: sub.format_help() for name, sub in subparsers.choices.items()}
    helps["flexconn"] = parser.format_help()  # --version
    page = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text()
    sections = re.split(r"^## ", page, flags=re.M)
    checked = 0
    for section in sections:
        heading = section.splitlines()[0]
        commands = re.findall(r"`(?:flexconn )?(\w+)`", heading) or list(helps)
        for option in set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", section)):
            assert any(option in helps[c] for c in commands), (heading, option)
            checked += 1
    assert checked > 30


def _order_id(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    match = re.search(r"order id (\d+)", result.stdout)
    assert match, result.stdout
    return match.group(1)


def test_cancel_and_modify_of_a_filled_order_exit_1_with_the_close_reason(
    running_sim: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    _process, env = running_sim
    # A MARKET order fills at once against the simulator's resting quotes.
    order_id = _order_id(flexconn("place", MARKET, "buy", "0.001", env=env))
    for verb, args in (
        ("cancelled", ["cancel", MARKET, order_id]),
        ("modified", ["modify", MARKET, order_id, "--price", "40000"]),
    ):
        result = flexconn(*args, env=env)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert result.stdout == "", args
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith(
            f"flexconn {args[0]}: error: order {order_id} was already closed (FILLED), so it was "
            f"not {verb} (exchange code 100004: "
        ), result.stderr


def test_a_second_cancel_of_one_order_exits_1_saying_it_was_cancelled_already(
    running_sim: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    _process, env = running_sim
    order_id = _order_id(flexconn("place", MARKET, "buy", "0.01", "40000", env=env))
    first = flexconn("cancel", MARKET, order_id, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"order {order_id}: cancelled\n"
    second = flexconn("cancel", MARKET, order_id, env=env)
    assert second.returncode == 1, second.stdout
    assert second.stdout == ""
    # A fresh command line did not see the close; REST's record says how the order closed.
    assert f"order {order_id} was already closed (cancelled), so it was not cancelled" in (
        second.stderr
    )


def test_a_cancel_the_exchange_refuses_names_its_code_and_message(
    running_sim: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    _process, env = running_sim
    result = flexconn("cancel", MARKET, "12345", "23456", env=env)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 3, lines
    for order_id, line in zip(("12345", "23456"), lines, strict=False):
        assert line.startswith(f"flexconn cancel: order {order_id} was not cancelled: ")
        assert "[100005] Open order not found with id (OrderNotFoundError)" in line
    assert lines[2] == "flexconn cancel: error: 2 of 2 cancels failed (see above)"


def test_orders_is_an_error_when_rest_is_unreachable_not_an_empty_list(
    running_sim: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    _process, env = running_sim
    rest_url = f"http://127.0.0.1:{closed_port()}"
    result = flexconn("orders", env={**env, "FLEXCONN_REST_URL": rest_url})
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"cannot read the open orders from the REST origin {rest_url}" in result.stderr
    # Without any REST origin the open orders cannot be known either.
    no_rest = flexconn("orders", env={**env, "FLEXCONN_REST_URL": ""})
    assert no_rest.returncode == 2
    assert "the open orders come from REST: give --rest-url" in no_rest.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["orders", "--market", "DOGE-USD"],
        ["place", "DOGE-USD", "buy", "1", "0.1"],
        ["modify", "DOGE-USD", "1000000000001", "--price", "1"],
        ["cancel", "DOGE-USD", "1000000000001"],
        ["cancel", "DOGE-USD", "--all"],
    ],
)
def test_an_unknown_market_is_an_error_that_lists_the_valid_ones(
    running_sim: tuple[subprocess.Popen[str], dict[str, str]], args: list[str]
) -> None:
    _process, env = running_sim
    result = flexconn(*args, env=env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert "unknown market 'DOGE-USD': the exchange lists BTC-USD, ETH-USD," in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["book", "DOGE-USD", "--duration", "5"], "unknown market 'DOGE-USD': the exchange lists"),
        (
            ["stream", "trade:BTC-USD", "depth:DOGE-USD", "--count", "1"],
            "unknown market 'DOGE-USD': the exchange lists",
        ),
    ],
)
def test_book_and_stream_refuse_an_unknown_market(args: list[str], message: str) -> None:
    result = flexconn(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr


def test_an_unknown_market_the_exchange_refuses_points_at_flexconn_markets(
    running_sim: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    """Without a REST origin to check against, the exchange's own refusal is reported."""
    _process, env = running_sim
    result = flexconn("book", "DOGE-USD", "--duration", "5", "--url", env["FLEXCONN_URL"])
    assert result.returncode == 1
    assert "depthL25:DOGE-USD: marketCode is invalid" in result.stderr
    assert "flexconn markets lists the valid market codes" in result.stderr


def test_markets_lists_every_market_as_json_lines_when_piped(
    running_sim: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    _process, env = running_sim
    result = flexconn("markets", env=env)
    assert result.returncode == 0, result.stderr
    codes = [json.loads(line)["marketCode"] for line in result.stdout.splitlines()]
    assert MARKET in codes and "ETH-USD" in codes
    down = flexconn("markets", "--rest-url", f"http://127.0.0.1:{closed_port()}")
    assert down.returncode == 1
    assert "cannot read the markets from the REST origin" in down.stderr


def test_version() -> None:
    from importlib.metadata import version

    result = flexconn("--version")
    assert result.returncode == 0
    assert result.stdout == f"flexconn {version('flexconn')}\n"


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    from flexconn.cli import build_parser

    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(subparsers.choices)


def test_every_argument_of_every_command_has_help() -> None:
    for name, sub in _subcommands().items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, (name, action.dest)


def test_the_credential_help_says_what_happens_without_credentials() -> None:
    commands = _subcommands()
    for name in ("orders", "place", "modify", "cancel"):
        text = " ".join(commands[name].format_help().split())
        assert "required: without a key pair the command stops with an error" in text, name
    for name in ("stream", "book"):
        text = " ".join(commands[name].format_help().split())
        assert "the embedded simulator's demo account" in text, name
        assert "no login: public channels only" in text, name
