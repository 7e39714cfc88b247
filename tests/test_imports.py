"""``import flexconn`` loads only what a WebSocket program needs (each check in a fresh process)."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

#: Top-level packages and flexconn modules a plain ``import flexconn`` must not load: the command
#: line and its rendering (click, rich, pygments), the simulator and its server (hypercorn), and
#: the REST client with httpx.
HEAVY = ("click", "rich", "pygments", "httpx", "hypercorn")
HEAVY_FLEXCONN = ("flexconn.cli", "flexconn._cli", "flexconn.sim", "flexconn.rest")


def loaded_after(statement: str) -> list[str]:
    """The heavy modules loaded by running ``statement`` in a fresh interpreter."""
    code = (
        f"{statement}\n"
        "import sys\n"
        f"heavy = {HEAVY!r}\n"
        f"own = {HEAVY_FLEXCONN!r}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or "
        "any(m == o or m.startswith(o + '.') for o in own)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    found: list[str] = ast.literal_eval(result.stdout.strip())
    return found


def test_import_flexconn_loads_no_cli_simulator_or_rest_client() -> None:
    assert loaded_after("import flexconn") == []


def test_the_rest_client_loads_on_first_use() -> None:
    loaded = loaded_after("import flexconn; flexconn.RestClient")
    assert "flexconn.rest" in loaded
    assert "httpx" in loaded
    assert not [
        m for m in loaded if m.startswith(("flexconn.sim", "flexconn.cli", "flexconn._cli"))
    ]


def test_from_import_of_a_lazy_name_works() -> None:
    assert "flexconn.rest" in loaded_after("from flexconn import RestClient, RetryPolicy")


def test_an_unknown_attribute_is_still_an_attribute_error() -> None:
    import flexconn

    with pytest.raises(AttributeError, match="NoSuchThing"):
        _ = flexconn.NoSuchThing
