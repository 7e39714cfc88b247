"""Private REST handlers that read the account: info, balances, positions, trades, orders."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flexconn.models import rest as m
from flexconn.models.enums import OrderStatus
from flexconn.sim.exchange import SimExchange
from flexconn.sim.orders import Order
from flexconn.sim.rest.request import Request, int_param, lookup_market, window

__all__ = [
    "account_info",
    "balance",
    "balances",
    "open_orders",
    "orders_v21",
    "position",
    "positions",
    "trades",
]


def account_info(exchange: SimExchange, request: Request, now: int) -> object:
    info = exchange.engine.account_info(request.account_id)
    entry = m.AccountInfo(
        account_id=info.account_id,
        trade_type="LINEAR",
        margin_currency=info.margin_currency,
        total_balance=info.total_balance,
        collateral_balance=info.collateral_balance,
        available_balance=info.available_balance,
        portfolio_var_margin=info.portfolio_var_margin,
        risk_ratio=info.risk_ratio,
        timestamp=info.timestamp,
    )
    return m.AccountInfoReply(timestamp=now, account_id=request.account_id, data=(entry,))


def _balances(
    exchange: SimExchange, request: Request, now: int, event: str, only: str | None
) -> object:
    balances = exchange.engine.balances(request.account_id)
    data = tuple(
        m.Balance(
            instrument_id=b.instrument,
            total=b.total,
            available=b.available,
            reserved=b.reserved,
            quantity_last_updated=b.updated,
        )
        for name, b in balances.items()
        if only is None or name == only
    )
    return m.BalancesReply(
        event=event,
        timestamp=now,
        account_id=request.account_id,
        trade_type="LINEAR",
        data=data,
    )


def balances(exchange: SimExchange, request: Request, now: int) -> object:
    return _balances(exchange, request, now, "balances", None)


def balance(exchange: SimExchange, request: Request, now: int) -> object:
    return _balances(exchange, request, now, "balancesById", request.params[0])


def _positions(
    exchange: SimExchange, request: Request, now: int, event: str, only: str | None
) -> object:
    positions = exchange.engine.positions(request.account_id)
    data = tuple(
        m.Position(
            instrument_id=p.market_code,
            quantity=p.quantity,
            last_updated=p.updated,
            contract_val_currency=p.contract_val_currency or exchange.markets[p.market_code].base,
            entry_price=p.entry_price,
            position_pnl=p.position_pnl,
            est_liquidation_price=max(p.est_liquidation_price, Decimal(0)),
        )
        for code, p in positions.items()
        if p.quantity != 0 and (only is None or code == only)
    )
    return m.PositionsReply(event=event, timestamp=now, account_id=request.account_id, data=data)


def positions(exchange: SimExchange, request: Request, now: int) -> object:
    return _positions(exchange, request, now, "positions", None)


def position(exchange: SimExchange, request: Request, now: int) -> object:
    return _positions(exchange, request, now, "positionsById", request.params[0])


def trades(exchange: SimExchange, request: Request, now: int) -> object:
    (code,) = request.params
    lookup_market(exchange, code)
    limit, start, end = window(request.query, m.ACCOUNT_TRADES_PAGE, now)
    trades = exchange.engine.account_trades(
        request.account_id, code, limit=limit, start_ms=start, end_ms=end
    )
    data = tuple(
        m.AccountTrade(
            match_id=t.match_id,
            match_timestamp=t.timestamp,
            market_code=t.market_code,
            match_quantity=t.quantity,
            match_price=t.price,
            total=t.price * t.quantity,
            order_match_type=t.match_type,
            fees=t.fees,
            fee_instrument_id=t.fee_instrument,
            order_id=t.order_id,
            side=t.side,
            client_order_id=t.client_order_id,
        )
        for t in reversed(trades)
    )
    return m.AccountTradesReply(timestamp=now, account_id=request.account_id, data=data)


def open_orders(exchange: SimExchange, request: Request, now: int) -> object:
    data = tuple(
        m.OpenOrder(
            order_id=o.order_id,
            market_code=o.market_code,
            client_order_id=o.client_order_id,
            side=o.side,
            order_type=o.order_type,
            quantity=o.quantity,
            remaining_quantity=o.remaining,
            price=o.price,
            stop_price=o.stop_price,
            limit_price=o.limit_price,
            order_created=o.created,
            last_modified=o.timestamp,
            last_trade_timestamp=o.timestamp if o.filled > 0 else None,
            time_in_force=o.time_in_force,
        )
        for o in exchange.engine.open_orders(request.account_id)
    )
    return m.OpenOrdersReply(timestamp=now, account_id=request.account_id, data=data)


def orders_v21(exchange: SimExchange, request: Request, now: int) -> object:
    query = request.query
    market = query.get("marketCode") or None
    if market is not None:
        lookup_market(exchange, market)
    order_id = int_param(query, "orderId")
    client_order_id = int_param(query, "clientOrderId")
    limit, start, end = window(query, m.ORDERS_V21_PAGE, now)
    engine = exchange.engine
    account = request.account_id
    orders = [
        *engine.order_history(account, market),
        *(o for o in engine.open_orders(account) if market is None or o.market_code == market),
    ]
    picked = [
        o
        for o in orders
        if start <= o.timestamp <= end
        and (order_id is None or o.order_id == order_id)
        and (client_order_id is None or o.client_order_id == client_order_id)
    ]
    picked.sort(key=lambda o: (o.timestamp, o.order_id), reverse=True)
    fills: dict[int, list[Any]] = {}
    if picked:
        wanted = {o.order_id for o in picked[:limit]}
        for trade in engine.account_trades(account, market):
            if trade.order_id in wanted:
                fills.setdefault(trade.order_id, []).append(trade)
    data = tuple(_order_record(o, fills.get(o.order_id, [])) for o in picked[:limit])
    return m.OrderRecordsReply(timestamp=now, account_id=account, data=data)


def _order_record(order: Order, fills: list[Any]) -> m.OrderRecord:
    if order.is_open:
        status = (
            m.OrderRecordStatus.PARTIALLY_MATCHED
            if order.filled > 0
            else m.OrderRecordStatus.OPENED
        )
    elif order.status is OrderStatus.FILLED:
        status = m.OrderRecordStatus.MATCHED
    else:
        status = m.OrderRecordStatus.CLOSED
    fees: dict[str, Decimal] = {}
    for fill in fills:
        fees[fill.fee_instrument] = fees.get(fill.fee_instrument, Decimal(0)) + fill.fees
    matches = tuple(
        m.OrderMatch(
            match_id=f.match_id,
            match_quantity=f.quantity,
            match_price=f.price,
            timestamp=f.timestamp,
            order_match_type=f.match_type,
        )
        for f in fills
    )
    return m.OrderRecord(
        status=status,
        order_id=order.order_id,
        client_order_id=order.client_order_id,
        market_code=order.market_code,
        side=order.side,
        order_type=order.order_type,
        price=order.price,
        last_traded_price=fills[-1].price if fills else None,
        avg_fill_price=order.avg_fill_price,
        stop_price=order.stop_price,
        limit_price=order.limit_price,
        quantity=order.quantity,
        filled_quantity=order.filled if order.filled > 0 else None,
        remain_quantity=order.remaining,
        match_ids=matches or None,
        fees=fees or None,
        time_in_force=order.time_in_force,
        is_triggered=order.triggered,
        order_opened_timestamp=order.created if order.is_open else None,
        order_closed_timestamp=None if order.is_open else order.timestamp,
    )
