"""Public REST handlers: markets, assets, ticker, trades, depth, candles and funding."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import attrs

from flexconn.models import rest as m
from flexconn.models.enums import CandleGranularity
from flexconn.sim.exchange import SimExchange
from flexconn.sim.rest.request import (
    Request,
    int_param,
    invalid,
    lookup_market,
    lookup_perpetual,
    window,
)

__all__ = [
    "assets",
    "candles",
    "depth",
    "funding_rates",
    "markets",
    "ping",
    "public_funding",
    "public_trades",
    "ticker",
]

_MAX_DEPTH_LEVEL: Final = 1000


def ping(exchange: SimExchange, request: Request, now: int) -> object:
    return m.Ping(success=True)


def markets(exchange: SimExchange, request: Request, now: int) -> object:
    engine = exchange.engine
    data = tuple(
        m.Market(
            market_id=int(spec.market_id) if spec.market_id.isdigit() else None,
            market_code=spec.market_code,
            name=spec.name,
            reference_pair=spec.reference_pair,
            base=spec.base,
            counter=spec.counter,
            type=spec.type,
            tick_size=spec.tick_size,
            qty_increment=spec.qty_increment,
            listing_date=spec.listing_date_ms,
            end_date=spec.expiry_ms or 0,
            margin_currency=spec.margin_currency,
            contract_val_currency=spec.contract_val_currency,
            upper_price_bound=spec.upper_price_bound,
            lower_price_bound=spec.lower_price_bound,
            market_price=engine.mark_price(spec.market_code),
            market_price_last_updated=now,
        )
        for spec in exchange.markets.values()
    )
    return m.MarketsReply(timestamp=now, data=data)


def assets(exchange: SimExchange, request: Request, now: int) -> object:
    coins: dict[str, None] = {}
    contracts: list[m.Asset] = []
    for spec in exchange.markets.values():
        coins.setdefault(spec.base)
        coins.setdefault(spec.counter)
        if spec.is_derivative:
            contracts.append(
                m.Asset(
                    instrument_id=spec.market_code,
                    name=spec.name,
                    base=spec.base,
                    counter=spec.counter,
                    type=spec.type,
                    margin_currency=spec.margin_currency,
                    contract_val_currency=spec.contract_val_currency,
                )
            )
    spot = [m.Asset(instrument_id=coin, name=coin, type="SPOT") for coin in coins]
    return m.AssetsReply(timestamp=now, data=(*contracts, *spot))


def ticker(exchange: SimExchange, request: Request, now: int) -> object:
    data = []
    for code in exchange.markets:
        t = exchange.engine.ticker(code)
        data.append(
            m.Ticker(
                market_code=code,
                last=t.last,
                mark_price=t.mark_price,
                open24h=t.open24h,
                volume24h=t.volume24h,
                currency_volume24h=t.currency_volume24h,
                high24h=t.high24h,
                low24h=t.low24h,
                open_interest=t.open_interest,
                last_qty=t.last_qty,
            )
        )
    return m.TickerReply(timestamp=now, data=tuple(data))


def public_trades(exchange: SimExchange, request: Request, now: int) -> object:
    (code,) = request.params
    lookup_market(exchange, code)
    limit, start, end = window(request.query, m.PUBLIC_TRADES_PAGE, now)
    trades = exchange.engine.public_trades(code, limit=limit, start_ms=start, end_ms=end)
    data = tuple(
        m.PublicTrade(
            match_id=t.trade_id,
            match_quantity=t.quantity,
            match_price=t.price,
            side=t.side,
            match_timestamp=t.timestamp,
        )
        for t in reversed(trades)
    )
    return m.PublicTradesReply(timestamp=now, market_code=code, data=data)


def depth(exchange: SimExchange, request: Request, now: int) -> object:
    code, level_text = request.params
    lookup_market(exchange, code)
    if not level_text.isdigit() or not 1 <= int(level_text) <= _MAX_DEPTH_LEVEL:
        raise invalid(f"level must be between 1 and {_MAX_DEPTH_LEVEL}")
    level = int(level_text)
    book = exchange.engine.book(code, level)
    snapshot = m.DepthSnapshot(asks=book.asks, bids=book.bids, market_code=code, timestamp=now)
    return m.DepthReply(event=f"depthL{level}", timestamp=now, data=(snapshot,))


def candles(exchange: SimExchange, request: Request, now: int) -> object:
    (code,) = request.params
    lookup_market(exchange, code)
    try:
        timeframe = CandleGranularity(request.query.get("timeframe", "3600s"))
    except ValueError:
        raise invalid("timeframe is not a supported granularity") from None
    limit = int_param(request.query, "limit")
    limit = m.CANDLES_PAGE.default if limit is None else limit
    rule = attrs.evolve(m.CANDLES_PAGE, default_span_ms=limit * timeframe.seconds * 1000)
    limit, start, end = window(request.query, rule, now)
    candles = exchange.engine.candles(code, timeframe.seconds, limit, start_ms=start, end_ms=end)
    data = tuple(
        m.Candle(
            timestamp=c.start_ms,
            open=c.open,
            high=c.high,
            low=c.low,
            close=c.close,
            volume24h=c.volume,
            currency_volume24h=c.currency_volume,
        )
        for c in candles
    )
    return m.CandlesReply(timestamp=now, timeframe=timeframe, data=data)


def funding_rates(exchange: SimExchange, request: Request, now: int) -> object:
    (code,) = request.params
    lookup_perpetual(exchange, code)
    limit, start, end = window(request.query, m.FUNDING_RATES_PAGE, now)
    picked = [
        m.FundingRate(
            funding_rate=f.rate,
            index=f.index,
            mark_price=f.mark_price,
            market_code=f.market_code,
            timestamp=f.timestamp,
        )
        for f in exchange.funding.history(now, code, start, end)[:limit]
    ]
    return m.FundingRatesReply(timestamp=now, data=tuple(picked))


def public_funding(exchange: SimExchange, request: Request, now: int) -> object:
    query = dict(request.query)
    for name in ("startTime", "endTime"):
        if name in query and not query[name].isdigit():
            try:
                stamp = datetime.strptime(query[name], "%Y-%m-%d %H:%M:%S")
            except ValueError:
                raise invalid(f"{name} must be like 2021-12-08 08:00:00") from None
            query[name] = str(int(stamp.replace(tzinfo=UTC).timestamp()) * 1000)
    limit, start, end = window(query, m.PUBLIC_FUNDING_PAGE, now)
    instrument = query.get("instrumentId")
    if instrument:
        lookup_perpetual(exchange, instrument)
    records = exchange.funding.history(now, instrument or None, start, end)
    return tuple(
        m.PublicFunding(timestamp=f.timestamp, instrument_id=f.market_code, funding_rate=f.rate)
        for f in records[:limit]
    )
