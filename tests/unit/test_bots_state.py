"""The bot's local view: book chains and gaps, own orders from reports, account."""

from __future__ import annotations

from typing import Any

from bots.api import Amend, Cancel, CancelAll, Context, LimitOrder
from bots.state import BotState
from exchange.protocol.messages import (
    AccountUpdate,
    BookSnapshot,
    BookUpdate,
    CancelReject,
    Error,
    ExecutionReport,
    NewOrder,
    OrderInfo,
    Orders,
)


def make_state(symbols: tuple[str, ...] = ("X",)) -> BotState:
    return BotState(Context(account="me", symbols=symbols, depth=5))


def snapshot(seq: int, bids: Any = ((100.0, 1),), asks: Any = ((101.0, 1),)) -> BookSnapshot:
    return BookSnapshot(symbol="X", seq=seq, ts=seq, bids=list(bids), asks=list(asks))


def update(seq: int, prev: int, bids: Any = (), asks: Any = ()) -> BookUpdate:
    return BookUpdate(symbol="X", seq=seq, prev_seq=prev, ts=seq, bids=list(bids), asks=list(asks))


def report(exec_type: str, status: str, **kw: Any) -> ExecutionReport:
    fields: dict[str, Any] = dict(
        exec_type=exec_type, status=status, order_id=1, client_order_id="c1", account="me",
        symbol="X", side="buy", order_type="limit", tif="gtc", price=100.0, qty=5,
        cum_qty=0, leaves_qty=5, avg_px=0.0,
    )  # fmt: skip
    fields.update(kw)
    return ExecutionReport(**fields)


def test_books_follow_the_prev_seq_chain() -> None:
    state = make_state()
    assert not state.books_synced
    state.book_snapshot(snapshot(10))
    assert state.books_synced
    book = state.book_update(update(12, 10, bids=[(100.0, 4)]))
    assert book is not None and book.best_bid == (100.0, 4)
    assert state.take_resubscribe() == []


def test_a_gap_marks_the_book_stale_until_a_new_snapshot() -> None:
    state = make_state()
    state.book_snapshot(snapshot(10))
    assert state.book_update(update(15, 13)) is None
    assert state.out_of_sync == {"X"}
    assert state.take_resubscribe() == ["X"]
    assert state.book_update(update(16, 15)) is None  # ignored while stale
    assert state.take_resubscribe() == []  # asked once
    state.book_snapshot(snapshot(20, bids=[(99.0, 2)]))
    assert state.books_synced and state.context.book().best_bid == (99.0, 2)
    assert state.book_update(update(21, 20)) is not None


def test_an_update_already_in_the_snapshot_is_ignored_without_resync() -> None:
    state = make_state()
    state.book_snapshot(snapshot(10))
    assert state.book_update(update(9, 7)) is None
    assert state.books_synced


def test_order_lifecycle_from_intent_to_fill() -> None:
    state = make_state()
    orders = state.context.orders
    request = state.request_for(LimitOrder("buy", 100.0, 5), "c1")
    assert isinstance(request, NewOrder) and request.client_order_id == "c1"
    assert orders["c1"].status == "pending_new"
    state.execution(report("new", "new"))
    assert orders["c1"].status == "new" and orders["c1"].order_id == 1
    state.execution(report("trade", "partially_filled", cum_qty=2, leaves_qty=3))
    assert (orders["c1"].status, orders["c1"].leaves_qty) == ("partially_filled", 3)
    state.execution(report("trade", "filled", cum_qty=5, leaves_qty=0))
    assert orders == {}


def test_cancel_and_amend_mark_pending_and_reject_reverts() -> None:
    state = make_state()
    state.request_for(LimitOrder("buy", 100.0, 5), "c1")
    state.execution(report("new", "new"))
    assert state.request_for(Cancel(client_order_id="c1"), "") is not None
    assert state.context.orders["c1"].status == "pending_cancel"
    state.execution(report("trade", "partially_filled", cum_qty=1, leaves_qty=4))
    assert state.context.orders["c1"].status == "pending_cancel"
    state.cancel_reject(
        CancelReject(
            request="cancel",
            order_id=1,
            client_order_id="c1",
            reject_reason="unknown_order",
            text="",
            status="partially_filled",
            account="me",
        )
    )
    assert state.context.orders["c1"].status == "partially_filled"
    state.request_for(Amend(order_id=1, price=99.0), "")
    assert state.context.orders["c1"].status == "pending_replace"
    state.execution(report("replaced", "partially_filled", price=99.0, cum_qty=1, leaves_qty=4))
    assert state.context.orders["c1"].price == 99.0
    assert state.context.orders["c1"].status == "partially_filled"


def test_pointless_intents_and_errors() -> None:
    state = make_state()
    assert state.request_for(Cancel(order_id=5), "") is None
    state.request_for(LimitOrder("sell", 101.0, 1), "c9")
    state.error(Error(code="invalid_message", text="bad", ref="c9"))
    assert state.context.orders == {}
    state.request_for(LimitOrder("sell", 101.0, 1, client_order_id="mine"), "c10")
    assert "mine" in state.context.orders
    state.execution(report("rejected", "rejected", order_id=None, client_order_id="mine"))
    assert state.context.orders == {}


def test_cancel_all_marks_orders_of_its_symbol() -> None:
    state = make_state(("X", "Y"))
    state.request_for(LimitOrder("buy", 1.0, 1), "a")
    state.request_for(LimitOrder("buy", 1.0, 1, symbol="Y"), "b")
    state.request_for(CancelAll(symbol="Y"), "")
    assert state.context.orders["a"].status == "pending_new"
    assert state.context.orders["b"].status == "pending_cancel"


def test_orders_answer_replaces_the_table_and_ignores_other_symbols() -> None:
    state = make_state()
    state.request_for(LimitOrder("buy", 1.0, 1), "lost")
    info = dict(
        client_order_id=None, side="sell", order_type="limit", tif="gtc", price=101.0,
        qty=2, cum_qty=0, leaves_qty=2, avg_px=0.0, status="new",
    )  # fmt: skip
    state.orders(
        Orders(
            orders=[
                OrderInfo(order_id=3, symbol="X", **info),
                OrderInfo(order_id=4, symbol="Z", **info),
            ]
        )
    )
    assert list(state.context.orders) == ["#3"]
    state.execution(
        report("trade", "filled", order_id=3, client_order_id=None, cum_qty=2, leaves_qty=0)
    )
    assert state.context.orders == {}


def test_reports_of_other_bots_on_the_same_account_are_ignored() -> None:
    state = make_state()
    state.execution(report("new", "new", symbol="ELSEWHERE"))
    assert state.context.orders == {}


def test_account_updates_keep_the_latest() -> None:
    state = make_state()

    def acct(seq: int, cash: float, account: str = "me") -> AccountUpdate:
        return AccountUpdate(
            account=account, cash=cash, equity=cash, realized_pnl=0, unrealized_pnl=0, fees=0,
            initial_margin=0, maintenance_margin=0, available=cash, positions=[], seq=seq,
        )  # fmt: skip

    assert state.account(acct(5, 10.0))
    assert not state.account(acct(4, 99.0))
    assert not state.account(acct(6, 99.0, account="other"))
    assert state.context.cash == 10.0
