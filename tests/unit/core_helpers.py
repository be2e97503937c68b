"""Small helpers for driving the core in scenario tests."""

from __future__ import annotations

from typing import Any

from exchange.core import AccountSpec, CoreConfig, Exchange, InstrumentSpec
from exchange.core.invariants import violations
from exchange.protocol.messages import (
    AccountUpdate,
    AmendOrder,
    CancelOrder,
    ExecutionReport,
    Fill,
    NewOrder,
)

SYMBOL = "XYZ"


def make_exchange(accounts: dict[str, float] | None = None, **instrument: Any) -> Exchange:
    """A core with one symbol XYZ (tick 0.01, reference 100.00, no fees, no band limits that
    matter) and accounts a, b, c with ample cash unless given."""
    spec: dict[str, Any] = {
        "symbol": SYMBOL,
        "tick_size": 0.01,
        "reference_price": 100.0,
        "price_band": 0.5,
        "max_order_qty": 10_000,
        "max_position": 100_000,
    }
    spec.update(instrument)
    cash = accounts or {"a": 1e7, "b": 1e7, "c": 1e7}
    return Exchange(
        CoreConfig(
            instruments=[InstrumentSpec(**spec)],
            accounts=[AccountSpec(name=n, cash=c, max_open_orders=50) for n, c in cash.items()],
        )
    )


class Driver:
    """Sends commands with increasing ts and keeps every event."""

    def __init__(self, exchange: Exchange) -> None:
        self.ex = exchange
        self.ts = 1_000
        self.events: list[Any] = []

    def send(self, account: str, command: Any) -> list[Any]:
        """Submit ``command``; then every internal invariant must hold (``violations``)."""
        self.ts += 1
        out = self.ex.submit(account, command, self.ts)
        self.events.extend(out)
        problems = violations(self.ex.venue)
        assert not problems, problems
        return out

    def order(
        self, account: str, side: str, qty: int, price: float | None = None, **kw: Any
    ) -> list[Any]:
        if price is None and "order_type" not in kw:
            kw["order_type"] = "market"
        return self.send(account, NewOrder(symbol=SYMBOL, side=side, qty=qty, price=price, **kw))

    def cancel(self, account: str, **kw: Any) -> list[Any]:
        return self.send(account, CancelOrder(**kw))

    def amend(self, account: str, **kw: Any) -> list[Any]:
        return self.send(account, AmendOrder(**kw))

    def ladder(self, depth: int = 10) -> tuple[list[tuple[float, int]], list[tuple[float, int]]]:
        book = self.ex.book(SYMBOL)
        assert book is not None
        bids, asks = book.depth(depth)
        to_price = book.instrument.to_price
        return [(to_price(p), q) for p, q in bids], [(to_price(p), q) for p, q in asks]


def reports(events: list[Any], account: str | None = None) -> list[ExecutionReport]:
    return [
        e
        for e in events
        if isinstance(e, ExecutionReport) and (account is None or e.account == account)
    ]


def fills(events: list[Any]) -> list[Fill]:
    return [e for e in events if isinstance(e, Fill)]


def kinds(events: list[Any]) -> list[str]:
    """``exec_type/status`` of each execution report, for compact sequence assertions."""
    return [f"{r.exec_type}/{r.status}" for r in reports(events)]


def order_id(events: list[Any]) -> int:
    """The id assigned by the ``new`` report among ``events``."""
    for report in reports(events):
        if report.exec_type == "new" and report.order_id is not None:
            return report.order_id
    raise AssertionError(f"no new report in {events}")


def last_update(events: list[Any], account: str) -> AccountUpdate:
    updates = [e for e in events if isinstance(e, AccountUpdate) and e.account == account]
    assert updates, f"no account_update for {account}"
    return updates[-1]
