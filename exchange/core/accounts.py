"""Accounts: cash, positions, fees, realized PnL, and the margin arithmetic.

Money is integer units (1e-8). A position keeps a signed quantity and a signed cost basis
(the sum of signed entry notionals), so ``avg_px = cost / qty`` and reductions realize PnL
exactly: whatever is removed from the cost basis is what the realized PnL is measured
against. Hence ``sum(cash - cost) + fees collected + insurance fund`` is conserved exactly.

Marks are whole or half ticks (the mid of the BBO), held as floats; the margin checks use
float equity and margins (derived values, recomputed on demand). What accounts publish is
exact: ``_numbers`` computes in integers (half money units where a half-tick mark enters)
and rounds half-even to 8 decimals only at the edge (``exchange.core.instruments``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from exchange.core.instruments import (
    RATE_SCALE,
    half_money_to_float,
    money_ratio_to_float,
    money_to_float,
)
from exchange.protocol.messages import Account, AccountUpdate, Position

if TYPE_CHECKING:
    from exchange.core.book import Order, OrderBook


class Holding:
    """One account's stake in one symbol: position, cost basis, and open-order exposure."""

    __slots__ = (
        "book",
        "cost",
        "open_buy_qty",
        "open_buy_value",
        "open_sell_qty",
        "open_sell_value",
        "qty",
        "realized",
    )

    def __init__(self, book: OrderBook) -> None:
        self.book = book
        self.qty = 0  # signed lots
        self.cost = 0  # signed money units of the open position's entry notional
        self.realized = 0  # money units, gross of fees
        self.open_buy_qty = 0
        self.open_sell_qty = 0
        self.open_buy_value = 0  # sum of leaves x price (ticks x lots) of resting buys
        self.open_sell_value = 0

    def initial_margin(self, extra_buy: int = 0, extra_sell: int = 0) -> float:
        """Worst-case initial margin (money units) of the position plus all open orders.

        ``extra_buy``/``extra_sell`` add a prospective order's value (ticks x lots).
        """
        book = self.book
        position_value = self.qty * book.mark
        worst = max(
            abs(position_value + self.open_buy_value + extra_buy),
            abs(position_value - self.open_sell_value - extra_sell),
        )
        instrument = book.instrument
        return worst * instrument.tick_value * instrument.im_rate / RATE_SCALE

    def expose(self, is_buy: bool, qty: int, ticks: int) -> None:
        """Add ``qty`` lots (negative: remove them) valued at ``ticks`` to the open exposure of
        one side: what every order that rests, waits, trades or shrinks does to its holding."""
        if is_buy:
            self.open_buy_qty += qty
            self.open_buy_value += qty * ticks
        else:
            self.open_sell_qty += qty
            self.open_sell_value += qty * ticks

    def unrealized(self) -> float:
        """Unrealized PnL in money units at the book's mark."""
        return self.qty * self.book.mark * self.book.instrument.tick_value - self.cost

    def maintenance_margin(self) -> float:
        instrument = self.book.instrument
        return (
            abs(self.qty)
            * self.book.mark
            * instrument.tick_value
            * instrument.mm_rate
            / (RATE_SCALE)
        )


class AccountState:
    """Everything the core knows about one account."""

    __slots__ = (
        "api_key",
        "by_client_id",
        "cash",
        "deposits",
        "fees",
        "fills",
        "holdings",
        "liquidating",
        "liquidations",
        "max_drawdown",
        "max_open_orders",
        "name",
        "orders",
        "peak_equity",
        "realized",
        "system",
    )

    def __init__(
        self,
        name: str,
        cash: int,
        api_key: str | None,
        max_open_orders: int,
        system: bool = False,
    ) -> None:
        self.name = name
        self.api_key = api_key
        self.cash = cash
        self.deposits = cash
        self.fees = 0
        self.realized = 0
        self.liquidating = False
        self.max_open_orders = max_open_orders
        self.system = system
        """A system account (the insurance fund, ``system = true`` in the config): rounds
        leave it alone and the leaderboard omits it."""
        self.holdings: dict[str, Holding] = {}
        self.orders: dict[int, Order] = {}  # live orders by id, in order of acceptance
        self.by_client_id: dict[str, Order] = {}
        # The round's statistics (``operators``): fills and liquidations since the round
        # began, and the peak and largest drop of the equity the leaderboards saw (half
        # money units; the peak starts at the round's cash).
        self.fills = 0
        self.liquidations = 0
        self.peak_equity = 2 * cash
        self.max_drawdown = 0

    def holding(self, book: OrderBook) -> Holding:
        """The holding for ``book``'s symbol, created empty on first use."""
        holding = self.holdings.get(book.symbol)
        if holding is None:
            holding = self.holdings[book.symbol] = Holding(book)
        return holding

    def equity(self) -> float:
        """Cash plus unrealized PnL, in money units."""
        equity = float(self.cash)
        for holding in self.holdings.values():
            if holding.qty:
                equity += holding.unrealized()
        return equity

    def equity_twice(self) -> int:
        """Cash plus unrealized PnL in half money units, exactly (marks are half ticks)."""
        twice = 2 * self.cash
        for holding in self.holdings.values():
            qty = holding.qty
            if qty:
                book = holding.book
                value = qty * int(book.mark * 2.0) * book.instrument.tick_value
                twice += value - 2 * holding.cost
        return twice

    def display_equity(self) -> float:
        """The ``equity`` an account message shows now (exact, rounded half-even to 1e-8)."""
        return half_money_to_float(self.equity_twice())

    def initial_margin(self) -> float:
        return sum(h.initial_margin() for h in self.holdings.values())

    def maintenance_margin(self) -> float:
        return sum(h.maintenance_margin() for h in self.holdings.values() if h.qty)

    def cushion(self) -> float:
        """Equity minus maintenance margin; the account is liquidated when this is negative."""
        cushion = float(self.cash)
        for holding in self.holdings.values():
            qty = holding.qty
            if qty:
                book = holding.book
                instrument = book.instrument
                value = qty * book.mark * instrument.tick_value
                cushion += value - holding.cost - abs(value) * instrument.mm_rate / RATE_SCALE
        return cushion

    def has_position(self) -> bool:
        return any(h.qty for h in self.holdings.values())

    def view(self, ts: int, seq: int) -> AccountUpdate:
        """The ``account_update`` message of this account as of now."""
        return AccountUpdate(*self._numbers(), ts=ts, seq=seq)

    def reply(self, ts: int | None, seq: int, req_id: str | int | None) -> Account:
        """The ``account`` reply to ``get_account``."""
        return Account(*self._numbers(), ts=ts, seq=seq, req_id=req_id)

    def _numbers(
        self,
    ) -> tuple[str, float, float, float, float, float, float, float, float, list[Position], bool]:
        """The fields of an account message, in declaration order, in one pass.

        Exact in integers: values at the mark in half money units (a mark may be a half
        tick), margins as fractions of half money units over a common denominator (the
        instruments' margin factors, usually 1). Each field is rounded half-even to 1e-8
        once, at the end; ``available`` is the rounded exact ``equity - initial_margin``.
        """
        positions = []
        unrealized = 0  # half money units
        initial = 0  # half money units x initial_den
        initial_den = 1
        maintenance = 0  # half money units x maintenance_den
        maintenance_den = 1
        for symbol, holding in self.holdings.items():
            book = holding.book
            instrument = book.instrument
            mark = book.mark
            qty = holding.qty
            position_value = qty * int(mark * 2.0)  # half ticks x lots
            worst = max(
                abs(position_value + 2 * holding.open_buy_value),
                abs(position_value - 2 * holding.open_sell_value),
            )
            if worst:
                den = instrument.im_den
                if den == initial_den:
                    initial += worst * instrument.im_num
                else:
                    initial = initial * den + worst * instrument.im_num * initial_den
                    initial_den *= den
            if not qty:
                if holding.realized:
                    positions.append(
                        Position(
                            symbol,
                            0,
                            0.0,
                            instrument.mark_price(mark),
                            money_to_float(holding.realized),
                            0.0,
                        )
                    )
                continue
            pnl = position_value * instrument.tick_value - 2 * holding.cost  # half money units
            unrealized += pnl
            den = instrument.mm_den
            exposure = position_value if position_value >= 0 else -position_value
            if den == maintenance_den:
                maintenance += exposure * instrument.mm_num
            else:
                maintenance = maintenance * den + exposure * instrument.mm_num * maintenance_den
                maintenance_den *= den
            positions.append(
                Position(
                    symbol,
                    qty,
                    instrument.position_price(holding.cost, qty),
                    instrument.mark_price(mark),
                    money_to_float(holding.realized),
                    half_money_to_float(pnl),
                )
            )
        equity = 2 * self.cash + unrealized  # half money units
        if initial_den == 1:
            initial_margin = half_money_to_float(initial)
            available = half_money_to_float(equity - initial)
        else:
            initial_margin = money_ratio_to_float(initial, 2 * initial_den)
            available = money_ratio_to_float(equity * initial_den - initial, 2 * initial_den)
        return (
            self.name,
            money_to_float(self.cash),
            half_money_to_float(equity),
            money_to_float(self.realized),
            half_money_to_float(unrealized),
            money_to_float(self.fees),
            initial_margin,
            half_money_to_float(maintenance)
            if maintenance_den == 1
            else money_ratio_to_float(maintenance, 2 * maintenance_den),
            available,
            positions,
            self.liquidating,
        )


def apply_fill(account: AccountState, holding: Holding, is_buy: bool, qty: int, ticks: int) -> None:
    """Move ``qty`` lots at ``ticks`` into the position; realize PnL on any reduction."""
    tick_value = holding.book.instrument.tick_value
    account.fills += 1
    position = holding.qty
    if position == 0 or (position > 0) == is_buy:
        notional = ticks * qty * tick_value
        holding.cost += notional if is_buy else -notional
        holding.qty = position + qty if is_buy else position - qty
        return
    size = -position if position < 0 else position
    closing = qty if qty < size else size
    cost = holding.cost
    removed = cost * closing // size if cost >= 0 else -((-cost) * closing // size)
    exit_value = ticks * closing * tick_value
    realized = (exit_value if position > 0 else -exit_value) - removed
    holding.cost = cost - removed
    holding.realized += realized
    account.realized += realized
    account.cash += realized
    position = position + closing if is_buy else position - closing
    opening = qty - closing
    if opening:
        notional = ticks * opening * tick_value
        holding.cost = notional if is_buy else -notional
        position = opening if is_buy else -opening
    holding.qty = position
