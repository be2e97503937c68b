"""The built-in ``news_trader``: trades headlines about its symbol, then gets out."""

from __future__ import annotations

from bots.api import Context, LimitOrder, News, RoundStarted, as_intents
from bots.strategies.news_trader import NewsTrader, NewsTraderConfig


def news(sentiment: float, symbols: tuple[str, ...] = ("TEST",)) -> News:
    return News(
        news_id=1, headline="h", body=None, symbols=list(symbols), sentiment=sentiment,
        shock=None, ts=1, seq=1,
    )  # fmt: skip


def book(position: int = 0) -> Context:
    return Context.for_test(bids=[(99.9, 500)], asks=[(100.1, 500)], position=position)


def test_good_news_buys_bad_news_sells_sized_by_sentiment() -> None:
    trader = NewsTrader(NewsTraderConfig(order_notional=10_000.0, max_slippage_bps=20.0))
    (buy,) = as_intents(trader.on_news(book(), news(0.5)))
    assert isinstance(buy, LimitOrder) and buy.side == "buy" and buy.tif == "ioc"
    assert buy.qty == 50 and 100.1 <= buy.price <= 100.1 * 1.002
    (sell,) = as_intents(NewsTrader().on_news(book(), news(-1.0)))
    assert isinstance(sell, LimitOrder) and sell.side == "sell" and sell.price <= 99.9


def test_weak_or_unrelated_news_is_ignored() -> None:
    trader = NewsTrader()
    assert trader.on_news(book(), news(0.1)) is None
    assert trader.on_news(book(), news(0.9, ("OTHER",))) is None


def test_it_exits_after_the_holding_time_and_on_contrary_news() -> None:
    trader = NewsTrader(NewsTraderConfig(hold_s=10.0))
    ctx = book()
    assert trader.on_news(ctx, news(0.8)) is not None
    held = book(position=40)
    held.now_ns = ctx.now_ns + 5 * 10**9
    assert trader.on_timer(held) is None  # within the holding time, price unchanged
    held.now_ns = ctx.now_ns + 11 * 10**9
    (close,) = as_intents(trader.on_timer(held))
    assert isinstance(close, LimitOrder) and (close.side, close.qty) == ("sell", 40)
    (out,) = as_intents(trader.on_news(held, news(-0.9)))
    assert isinstance(out, LimitOrder) and (out.side, out.qty) == ("sell", 40)
    assert trader.on_news(held, news(0.9)) is None  # already long: nothing more


def test_a_new_round_forgets_the_trade() -> None:
    trader = NewsTrader()
    trader.on_news(book(), news(0.8))
    trader.on_round(book(), RoundStarted(round=2, name="", cash=1e5, ts=1, seq=2))
    assert trader.on_timer(book(position=40)) is None
