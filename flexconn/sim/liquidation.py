"""The simulated exchange's liquidation engine and its public ``liquidationRFQ`` channel.

The later WebSocket document: the exchange publishes a ``liquidationRFQ`` message 50 ms before a
liquidation event is due, naming the market, so that others can quote for it. Here the event is
real: every ``interval`` seconds (:attr:`Cadences.liquidation
<flexconn.sim.ws_channels.Cadences.liquidation>`, 0.1 s by default) the liquidator asks the engine
which positions have reached their liquidation price (:meth:`Engine.liquidatable
<flexconn.sim.engine.Engine.liquidatable>`: account equity down to the maintenance margin at the
mark price, the point the position channel's ``estLiquidationPrice`` shows). Each newly due
position is announced at once on ``liquidationRFQ`` (one frame per scan, one item per market,
``{"marketCode", "timestamp"}`` as the document shows) and liquidated ``lead`` seconds (50 ms)
later with :meth:`Engine.liquidate <flexconn.sim.engine.Engine.liquidate>`: the account's orders
in that market are cancelled (``CANCELED_BY_USER``) and a MARKET IOC order sweeps the book for the
whole position. The owner sees the usual order, position and balance messages. A position the book
could not fully absorb is announced and liquidated again on a later scan.

Only traded positions are liquidated; the document's other events (auto-borrow and repayment in
repo books) are not modelled. The synthetic participants are funded far beyond any liquidation,
so in a quiet simulator the channel stays silent until some account over-leverages (a test, or a
user of the demo) and the book moves against it. All timing uses ``trio.current_time`` through
``trio.sleep``, so ``MockClock`` governs it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

import trio

from flexconn.models.liquidation import LIQUIDATION_RFQ
from flexconn.sim import ws_messages as msg
from flexconn.sim.orders import EngineReject
from flexconn.sim.wire import Frame

if TYPE_CHECKING:
    from flexconn.sim.exchange import SimExchange

__all__ = ["LIQUIDATION_LEAD", "Liquidator"]

logger = logging.getLogger("flexconn.sim.liquidation")

#: Seconds between the ``liquidationRFQ`` message and the liquidation (the documented 50 ms).
LIQUIDATION_LEAD: Final = 0.05


class Liquidator:
    """Finds positions due for liquidation, announces them, and liquidates them.

    Args:
        exchange: the exchange whose engine and fan-out it uses.
        lead: seconds between the announcement and the liquidation.
    """

    def __init__(self, exchange: SimExchange, *, lead: float = LIQUIDATION_LEAD) -> None:
        if lead < 0:
            raise ValueError("lead must not be negative")
        self._exchange = exchange
        self._lead = lead
        self._pending: set[tuple[str, str]] = set()
        #: How many liquidations were announced, and how many carried out.
        self.announced = 0
        self.liquidated = 0

    @property
    def pending(self) -> frozenset[tuple[str, str]]:
        """``(account, market)`` pairs announced and not yet liquidated."""
        return frozenset(self._pending)

    def scan(self) -> list[tuple[str, str]]:
        """Announce every newly due position on ``liquidationRFQ``; returns them (the caller
        liquidates each after the lead time)."""
        exchange = self._exchange
        fresh = [due for due in exchange.engine.liquidatable() if due not in self._pending]
        if not fresh:
            return fresh
        self._pending.update(fresh)
        self.announced += len(fresh)
        subs = exchange.fanout.public(LIQUIDATION_RFQ).get("")
        if subs:
            stamp = str(exchange.now_ms())
            markets = dict.fromkeys(market for _, market in fresh)
            items = [{"marketCode": market, "timestamp": stamp} for market in markets]
            exchange.fanout.send(subs, Frame(msg.dumps(msg.table(LIQUIDATION_RFQ, items))))
        for account, market in fresh:
            logger.info("liquidation due: account %s in %s", account, market)
        return fresh

    def liquidate(self, account_id: str, market_code: str) -> None:
        """Carry out one announced liquidation now and push what it did."""
        exchange = self._exchange
        try:
            order = exchange.engine.liquidate(account_id, market_code)
        except EngineReject as exc:  # the market went away (expired) meanwhile
            logger.info("liquidation of %s in %s refused: %s", account_id, market_code, exc)
        else:
            if order is not None:
                self.liquidated += 1
        finally:
            self._pending.discard((account_id, market_code))
        exchange.flush()

    async def run(
        self,
        interval: float = 0.1,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Scan every ``interval`` seconds until cancelled."""
        if not interval > 0:
            raise ValueError("interval must be positive")
        async with trio.open_nursery() as nursery:
            task_status.started()
            deadline = trio.current_time()
            while True:
                deadline += interval
                await trio.sleep_until(deadline)
                for account, market in self.scan():
                    nursery.start_soon(self._later, account, market)
                deadline = max(deadline, trio.current_time() - interval)

    async def _later(self, account_id: str, market_code: str) -> None:
        await trio.sleep(self._lead)
        self.liquidate(account_id, market_code)
