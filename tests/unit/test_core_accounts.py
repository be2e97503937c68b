"""Accounts, fees, PnL, margin and liquidation scenarios, plus determinism and snapshots."""

from __future__ import annotations

import pytest

from exchange.core import MONEY_SCALE, Exchange
from exchange.protocol import encode
from exchange.protocol.messages import (
    AccountUpdate,
    CreateAccount,
    Error,
    Liquidation,
    NewOrder,
    Revalue,
)
from tests.unit.core_helpers import Driver, fills, last_update, make_exchange, reports


def total_money(ex: Exchange) -> int:
    """Σ (cash - cost basis) over all accounts + fees collected: conserved exactly."""
    total = ex.fee_pool
    for account in ex.accounts():
        total += account.cash - sum(h.cost for h in account.holdings.values())
    return total


def deposits(ex: Exchange) -> int:
    return sum(account.deposits for account in ex.accounts())


def test_fees_rebates_and_cash() -> None:
    d = Driver(make_exchange(maker_fee=-0.0001, taker_fee=0.0003))
    d.order("a", "sell", 10, 100.0)
    out = d.order("b", "buy", 10, 100.0)
    trade = fills(out)[0]
    assert (trade.buy_fee, trade.sell_fee) == (0.3, -0.1)
    taker, maker = last_update(out, "b"), last_update(out, "a")
    assert taker.fees == 0.3 and taker.cash == 1e7 - 0.3
    assert maker.fees == -0.1 and maker.cash == 1e7 + 0.1
    assert d.ex.fee_pool == round(0.2 * MONEY_SCALE)
    assert total_money(d.ex) == deposits(d.ex)


def test_realized_pnl_on_reduction_and_flip() -> None:
    d = Driver(make_exchange())
    d.order("b", "sell", 10, 100.0)
    d.order("a", "buy", 10, 100.0)
    d.order("c", "buy", 15, 110.0)
    out = d.order("a", "sell", 15, 110.0)
    update = last_update(out, "a")
    assert update.realized_pnl == 100.0
    assert update.cash == 1e7 + 100.0
    (position,) = update.positions
    assert (position.qty, position.avg_px, position.realized_pnl) == (-5, 110.0, 100.0)
    # b short 10 @100, c long 15 @110: every position nets to zero.
    assert sum(h.qty for acct in d.ex.accounts() for h in acct.holdings.values()) == 0
    assert total_money(d.ex) == deposits(d.ex)


def test_average_entry_price_and_unrealized_at_mark() -> None:
    d = Driver(make_exchange())
    d.order("b", "sell", 10, 100.0)
    d.order("b", "sell", 30, 102.0)
    d.order("a", "buy", 40, 102.0)
    d.order("c", "buy", 1, 103.0)
    d.order("c", "sell", 1, 105.0)
    account = d.ex.account_reply("a")
    assert account is not None
    (position,) = account.positions
    assert position.avg_px == pytest.approx(101.5)
    assert position.mark_px == 104.0  # mid of 103 / 105
    assert position.unrealized_pnl == pytest.approx(40 * (104.0 - 101.5))
    assert account.equity == pytest.approx(account.cash + account.unrealized_pnl)


def test_mark_price_mid_else_last_trade_else_reference() -> None:
    d = Driver(make_exchange())
    book = d.ex.book("XYZ")
    assert book is not None
    assert book.instrument.to_price(book.mark) == 100.0  # reference
    d.order("a", "sell", 5, 101.0)
    d.order("b", "buy", 5, 101.0)
    assert book.instrument.to_price(book.mark) == 101.0  # last trade
    d.order("a", "sell", 5, 103.0)
    d.order("b", "buy", 5, 99.0)
    assert book.instrument.to_price(book.mark) == 101.0  # mid


def test_insufficient_margin_at_the_limit_and_reducing_orders_allowed() -> None:
    d = Driver(make_exchange({"weak": 1000.0, "b": 1e7}))
    d.order("b", "sell", 200, 100.0)
    out = d.order("weak", "buy", 101, 100.0)  # IM 1010 > equity 1000
    assert reports(out)[0].reject_reason == "insufficient_margin"
    out = d.order("weak", "buy", 100, 100.0)  # IM 1000 == equity: allowed
    assert fills(out)[0].qty == 100
    out = d.order("weak", "buy", 1, 90.0)
    assert reports(out)[0].reject_reason == "insufficient_margin"
    out = d.order("weak", "sell", 50, 120.0)  # reduces the worst case: allowed
    assert reports(out)[0].exec_type == "new"


def test_price_move_liquidates_and_insurance_covers_the_deficit() -> None:
    d = Driver(make_exchange({"weak": 1000.0, "b": 1e7, "c": 1e7}))
    insurance_before = d.ex.insurance.cash
    d.order("b", "sell", 100, 100.0)
    d.order("weak", "buy", 100, 100.0)
    d.order("weak", "sell", 5, 125.0)  # an open order the liquidation must cancel
    d.order("c", "buy", 30, 80.0)
    out = d.order("c", "sell", 10, 88.0)  # mid 84: equity -600 < maintenance
    weak = reports(out, "weak")
    assert weak[0].exec_type == "canceled" and weak[0].text == "liquidation"
    liq = [r for r in weak if r.liquidation]
    assert [r.exec_type for r in liq] == ["new", "trade", "expired"]
    assert liq[-1].reject_reason == "no_liquidity"
    event = next(e for e in out if isinstance(e, Liquidation))
    assert (event.account, event.side, event.qty, event.price) == ("weak", "sell", 30, 80.0)
    assert all(f.liquidation for f in fills(out))
    assert last_update(out, "weak").liquidating
    refused = d.order("weak", "buy", 1, 80.0)
    assert reports(refused)[0].reject_reason == "account_liquidating"
    out = d.order("c", "buy", 100, 79.0)  # new liquidity: the rest is closed
    assert [(f.price, f.qty, f.sell_account) for f in fills(out)] == [(79.0, 70, "weak")]
    final = last_update(out, "weak")
    assert (final.cash, final.positions[0].qty, final.liquidating) == (0.0, 0, False)
    # Lost 30 * 20 + 70 * 21 = 2070 on 1000 of cash: the fund paid 1070.
    assert d.ex.insurance.cash == insurance_before - 1070 * MONEY_SCALE
    assert total_money(d.ex) == deposits(d.ex)


def test_liquidation_with_enough_liquidity_keeps_remaining_equity() -> None:
    d = Driver(make_exchange({"weak": 1000.0, "b": 1e7, "c": 1e7}))
    insurance_before = d.ex.insurance.cash
    d.order("b", "sell", 100, 100.0)
    d.order("weak", "buy", 100, 100.0)
    out = d.order("c", "buy", 500, 94.0)  # bid only: the mark stays at the last trade
    assert not [e for e in out if isinstance(e, Liquidation)]
    out = d.order("b", "sell", 10, 94.0)  # prints 94: equity 400 < maintenance 470
    (event,) = [e for e in out if isinstance(e, Liquidation)]
    assert (event.account, event.side, event.qty, event.price) == ("weak", "sell", 100, 94.0)
    final = last_update(out, "weak")
    assert (final.cash, final.realized_pnl, final.liquidating) == (400.0, -600.0, False)
    assert d.ex.insurance.cash == insurance_before
    assert total_money(d.ex) == deposits(d.ex)
    again = d.order("weak", "buy", 1, 94.5)
    assert reports(again)[0].exec_type == "new"  # trading again once flat


def test_a_rising_mark_liquidates_a_short_with_nothing_below_it() -> None:
    """The margin watch keeps only the side of a band that can hurt: a short position's
    upper bound. It must fire on its own, with no lower bound recorded in that symbol."""
    d = Driver(make_exchange({"weak": 1000.0, "b": 1e7, "c": 1e7}))
    d.order("b", "buy", 100, 100.0)
    d.order("weak", "sell", 100, 100.0)
    out = d.order("c", "sell", 500, 106.0)  # ask only: the mark stays at the last trade
    assert not [e for e in out if isinstance(e, Liquidation)]
    out = d.order("b", "buy", 10, 106.0)  # prints 106: equity 400 < maintenance 530
    (event,) = [e for e in out if isinstance(e, Liquidation)]
    assert (event.account, event.side, event.qty, event.price) == ("weak", "buy", 100, 106.0)
    assert total_money(d.ex) == deposits(d.ex)


def test_a_liquidation_takes_only_what_lies_within_the_price_band() -> None:
    """A liquidation is an IOC market order limited like any other to the band around the
    last trade: it does not sweep a thin book to any price. What is left is retried once per
    later command, within the band of that moment."""
    d = Driver(make_exchange({"weak": 1000.0, "b": 1e7, "c": 1e7}, price_band=0.1))
    d.order("b", "sell", 100, 100.0)
    d.order("weak", "buy", 100, 100.0)  # last trade 100: band [90, 110]
    d.order("c", "buy", 60, 90.0)
    d.order("b", "sell", 1, 104.0)
    d.order("c", "buy", 1, 104.0)  # last trade 104: band [93.6, 114.4], the 90 bid is outside
    d.order("c", "buy", 39, 94.0)
    out = d.order("b", "sell", 10, 95.0)  # mid 94.5: weak's equity 450 < maintenance 472.5
    (event,) = [e for e in out if isinstance(e, Liquidation)]
    assert (event.qty, event.price) == (39, 94.0)  # the 90 bid lies beyond the band
    liq = [r for r in reports(out, "weak") if r.liquidation]
    assert [r.exec_type for r in liq] == ["new", "trade", "expired"]
    assert liq[-1].reject_reason == "no_liquidity"
    assert d.ladder()[0] == [(90.0, 60)]
    assert last_update(out, "weak").liquidating
    out = d.order("b", "sell", 5, 99.0)  # any command: retry in the band around 94
    assert [(f.price, f.qty) for f in fills(out)] == [(90.0, 60)]
    assert last_update(out, "weak").liquidating  # one lot left, no bid within [81, 99]
    out = d.order("c", "buy", 5, 85.0)
    assert [(f.price, f.qty, f.sell_account) for f in fills(out)] == [(85.0, 1, "weak")]
    final = last_update(out, "weak")
    assert (final.cash, final.positions[0].qty, final.liquidating) == (151.0, 0, False)
    assert total_money(d.ex) == deposits(d.ex)


def test_revalue_publishes_mark_to_market_once() -> None:
    d = Driver(make_exchange())
    d.order("b", "sell", 10, 100.0)
    d.order("a", "buy", 10, 100.0)
    d.order("c", "buy", 1, 104.0)
    d.order("c", "sell", 1, 106.0)  # mark 105
    out = d.send("", Revalue())
    updated = {e.account: e for e in out if isinstance(e, AccountUpdate)}
    assert set(updated) == {"a", "b"}
    assert updated["a"].unrealized_pnl == 50.0 and updated["b"].unrealized_pnl == -50.0
    assert d.send("", Revalue()) == []


def test_create_account_and_api_keys() -> None:
    d = Driver(make_exchange())
    out = d.send("", CreateAccount(account="bot7", cash=5000.0, api_key="k7"))
    assert last_update(out, "bot7").cash == 5000.0
    assert d.ex.account_for_key("k7") == "bot7"
    again = d.send("", CreateAccount(account="bot7", cash=1.0, api_key="k8"))
    assert isinstance(again[0], Error)
    assert d.ex.account_for_key("k8") is None


@pytest.mark.parametrize("name", ["", "two words", "new\nline", "x" * 65, "semi;colon"])
def test_account_names_must_be_plain_identifiers(name: str) -> None:
    d = Driver(make_exchange())
    out = d.send("", CreateAccount(account=name, cash=10.0))
    assert isinstance(out[0], Error) and d.ex.account(name) is None


def test_unknown_account_is_an_error_not_a_crash() -> None:
    d = Driver(make_exchange())
    out = d.order("nobody", "buy", 1, 100.0)
    assert isinstance(out[0], Error) and d.ex.last_seq == 0


def _mixed_commands() -> list[tuple[str, NewOrder]]:
    commands = []
    for i in range(300):
        side = "buy" if i % 3 else "sell"
        price = 100.0 + ((i * 7) % 11 - 5) * 0.5
        commands.append(
            ("abc"[i % 3], NewOrder(symbol="XYZ", side=side, qty=1 + i % 7, price=price))
        )
    return commands


def test_same_commands_give_byte_identical_events() -> None:
    runs = []
    for _ in range(2):
        d = Driver(make_exchange())
        for account, command in _mixed_commands():
            d.send(account, command)
        runs.append((encode(d.events), d.ex.state_hash()))
    assert runs[0] == runs[1]
    assert fills(Driver(make_exchange()).events) == []


def test_snapshot_restore_continues_identically() -> None:
    commands = _mixed_commands()
    original = Driver(make_exchange())
    for account, command in commands[:150]:
        original.send(account, command)
    restored = Driver(Exchange.restore(original.ex.config, original.ex.snapshot()))
    restored.ts = original.ts
    assert restored.ex.state_hash() == original.ex.state_hash()
    original.events.clear()
    for account, command in commands[150:]:
        original.send(account, command)
        restored.send(account, command)
    assert encode(original.events) == encode(restored.events)
    assert restored.ex.state_hash() == original.ex.state_hash()


def test_restore_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a core snapshot"):
        Exchange.restore(make_exchange().config, b"\x00garbage")
