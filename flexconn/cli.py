"""The ``flexconn`` command line: one entry point, one module per subcommand.

``flexconn sim`` runs the simulator standalone, ``stream`` prints typed messages as JSON lines,
``book`` shows a live order book, ``markets`` lists the exchange's markets,
``orders``/``place``/``modify``/``cancel`` manage an account and ``demo`` plays a scripted session
against an in-process simulator. The subcommands live in
:mod:`flexconn._cli`; this module only builds the parser and turns failures into one-line
errors. The command line may print and configure logging; the library never does.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from flexconn._cli import book, demo, markets, orders, sim, stream
from flexconn._cli.common import CliError, Parser, fail, run

__all__ = ["build_parser", "main"]

_COMMANDS = (sim, stream, book, markets, orders, demo)


def build_parser() -> Parser:
    """The ``flexconn`` parser with every subcommand registered."""
    parser = Parser(
        prog="flexconn",
        description="CoinFLEX v2 connector and exchange simulator.",
    )
    parser.add_argument("--version", action="version", version=f"flexconn {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    subparsers.required = True
    for module in _COMMANDS:
        module.register(subparsers)
    return parser


def _version() -> str:
    try:
        return version("flexconn")
    except PackageNotFoundError:  # pragma: no cover - running from a tree that was not installed
        return "(not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except CliError as exc:
        return fail(args.command, str(exc), exc.status)
    except KeyboardInterrupt:
        # A second Ctrl-C while shutting down: leave without a traceback.
        return 130


if __name__ == "__main__":  # pragma: no cover - python -m flexconn is the supported spelling
    sys.exit(main())
