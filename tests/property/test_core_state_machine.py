"""Hypothesis state machines over random multi-account command streams into the matching core.

Four accounts (a fifth is created mid-run) trade two symbols on small tick grids around their
reference prices, so orders cross often: limit and market orders with every time-in-force,
post-only, client order ids, every self-trade-prevention mode; cancels by id or client id
(including unknown ids and other accounts' ids); amends of qty up and down and of price;
cancel-all; revalue; account creation; long queues and level churn behind the touch; and
malformed orders that must come back as one ``rejected`` report or an ``error``.

After every step both machines check:

- the book is never crossed, each level's qty equals the sum of its live orders' leaves, and
  each holding's open-order exposure equals its live orders;
- the L2 book rebuilt from ``book_delta`` events equals the core's book; the last ``bbo`` event
  equals its top;
- Σ positions per symbol is 0; money is conserved exactly in integer units: Σ over all accounts
  (incl. the insurance fund) of (cash - cost basis of every holding) + fee pool == deposits;
- execution reports: ``new`` first, then trades (and replaces), then at most one terminal
  report, nothing after it; ``qty == cum_qty + leaves_qty`` while live, leaves 0 when done,
  ``avg_px`` 0 until the first fill and the fill-weighted average after; a refused order gets
  exactly one ``rejected`` report and nothing else; every fill has one taker and one maker
  trade report with the right price, qty and fee;
- ``seq`` is strictly +1 and gapless across all events, each event carries the input ``ts``;
  ``error`` consumes no ``seq``; account updates come last, one per account, and every account
  whose cash or position changed gets one with its new cash and positions;
- at teardown, determinism: the same commands into a fresh core give byte-identical encoded
  events and the same state hash.

The generous machine (ample cash, so margin never interferes) also compares every command with
``Model``, a deliberately naive reference written in this file: a plain list of resting
orders, sorted by (price, time) on every match. Reports (id, type, status, price, qty, cum,
leaves, reason), fills (price, qty, buy/sell order ids, trade id), cancel rejects, positions and
the full L2 ladders must be equal; each account's fees equal the sum of its fills' fees, and
its cash equals deposit + realized PnL - fees.

The tight machine gives most accounts little cash at 25x leverage (and has a rule that thins
the books), so ``insufficient_margin`` rejects, liquidations and insurance-fund payouts happen.
It checks all invariants above plus: no account that is not being liquidated has equity below
its maintenance margin; every ``insufficient_margin`` reject is justified and every accepted
order that raises initial margin fits within equity (initial margin per symbol: IM rate x
the worse of |position + open buys| and |position - open sells| at the mark).
"""

from __future__ import annotations

import copy
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from exchange.core import MONEY_SCALE, AccountSpec, CoreConfig, Exchange, InstrumentSpec
from exchange.protocol import encode
from exchange.protocol.messages import (
    AccountUpdate,
    AmendOrder,
    Bbo,
    BookDelta,
    CancelAll,
    CancelAllDone,
    CancelOrder,
    CancelReject,
    CreateAccount,
    Error,
    ExecutionReport,
    Fill,
    Liquidation,
    NewOrder,
    Revalue,
)

ACCOUNTS = ("a", "b", "c", "d")
LATE_ACCOUNT = "e"  # created by a rule; commands for it before that are errors
TRADERS = (*ACCOUNTS, LATE_ACCOUNT)
INSURANCE = "insurance_fund"
CLIENT_IDS = (None, None, None, None, "x", "y")
MAX_OPEN_ORDERS = {"a": 4, "b": 4, "c": 40, "d": 40, LATE_ACCOUNT: 4}
MAX_ORDER_QTY = 20
MAX_POSITION = 50
PRICE_BAND_PERCENT = 20
MAKER_FEE_E8 = -10_001  # -0.00010001: a rebate (odd, so fees get truncated)
TAKER_FEE_E8 = 50_001  # 0.00050001
STP_MODES = ("expire_taker", "expire_maker", "expire_both")
TERMINAL = frozenset({"filled", "canceled", "expired"})


@dataclass(frozen=True)
class Grid:
    """A symbol's tick grid: prices are ``ticks / per_unit``; orders use reference ± 3 ticks."""

    symbol: str
    tick_size: float
    per_unit: int
    reference_ticks: int
    tick_value: int  # money units (1e-8) of one tick on one lot

    def price(self, offset: int) -> float:
        return (self.reference_ticks + offset) / self.per_unit

    def ticks(self, price: float) -> int:
        return round(price * self.per_unit)

    def is_valid(self, price: float | None) -> bool:
        return price is not None and price > 0 and self.ticks(price) == price * self.per_unit


GRIDS = {
    "AAA": Grid("AAA", 0.5, 2, 200, 50_000_000),  # 100.00 ± 1.50
    "BBB": Grid("BBB", 0.25, 4, 80, 25_000_000),  # 20.00 ± 0.75
}


def make_config(tight: bool) -> CoreConfig:
    """Fees on (makers get a rebate); a price band much wider than the grid."""
    margin = {"initial_margin": 0.05, "maintenance_margin": 0.04} if tight else {}
    instruments = [
        InstrumentSpec(
            symbol=grid.symbol,
            tick_size=grid.tick_size,
            reference_price=grid.reference_ticks / grid.per_unit,
            price_band=PRICE_BAND_PERCENT / 100,
            max_order_qty=MAX_ORDER_QTY,
            max_position=MAX_POSITION,
            maker_fee=MAKER_FEE_E8 / 10**8,
            taker_fee=TAKER_FEE_E8 / 10**8,
            **margin,
        )
        for grid in GRIDS.values()
    ]
    cash = (30.0, 60.0, 120.0, 1e6) if tight else (1e7,) * 4
    return CoreConfig(
        instruments=instruments,
        accounts=[
            AccountSpec(name=name, cash=amount, max_open_orders=MAX_OPEN_ORDERS[name])
            for name, amount in zip(ACCOUNTS, cash, strict=True)
        ],
        insurance_account=INSURANCE,
        insurance_fund_cash=500.0,
    )


def fee(ticks: int, qty: int, tick_value: int, rate_e8: int) -> int:
    """A fee in money units, truncated toward zero."""
    notional = ticks * qty * tick_value
    magnitude = notional * abs(rate_e8) // 10**8
    return magnitude if rate_e8 >= 0 else -magnitude


# ====================================================================== the reference model


@dataclass(eq=False)
class ModelOrder:
    order_id: int
    account: str
    symbol: str
    is_buy: bool
    price: int | None  # ticks; None for a market order
    qty: int
    leaves: int
    client_order_id: str | None
    order_type: str
    tif: str
    post_only: bool
    stp: str
    time: int = 0  # priority: when it (re)joined the book
    cum: int = 0


def _reaches(is_buy: bool, limit: int, price: int) -> bool:
    """Whether a resting order at ``price`` is within the limit of a taker on ``is_buy``."""
    return price <= limit if is_buy else price >= limit


class Model:
    """The naive reference: the rules of PROTOCOL.md and DESIGN.md written as plainly as
    possible, with no care for speed. ``apply`` returns the projection (see ``project``) of
    the events the core should emit for a command."""

    def __init__(self) -> None:
        self.accounts = set(ACCOUNTS)
        self.resting: list[ModelOrder] = []
        self.done: dict[int, tuple[str, str, str | None]] = {}  # id -> account, status, cid
        self.done_cids: dict[tuple[str, str], int] = {}
        self.positions: Counter[tuple[str, str]] = Counter()
        self.last_trade: dict[str, int] = {}
        self.next_order_id = 1
        self.next_trade_id = 1
        self.clock = 0
        self.out: list[tuple[Any, ...]] = []

    # ------------------------------------------------------------------ views

    def live(self, account: str) -> list[ModelOrder]:
        """The account's live orders in order of acceptance."""
        return sorted((o for o in self.resting if o.account == account), key=lambda o: o.order_id)

    def ladder(self, symbol: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        bids: Counter[int] = Counter()
        asks: Counter[int] = Counter()
        for order in self.resting:
            if order.symbol == symbol:
                assert order.price is not None
                (bids if order.is_buy else asks)[order.price] += order.leaves
        return sorted(bids.items(), reverse=True), sorted(asks.items())

    def _status(self, order: ModelOrder) -> str:
        if order.leaves == 0:
            return "filled"
        return "partially_filled" if order.cum else "new"

    def _band(self, symbol: str) -> tuple[int, int]:
        """Lowest and highest acceptable price (ticks) around the last trade, else reference."""
        reference = self.last_trade.get(symbol, GRIDS[symbol].reference_ticks)
        width = reference * PRICE_BAND_PERCENT // 100
        return max(1, reference - width), reference + width

    def _worst_position(self, account: str, symbol: str, is_buy: bool, added: int) -> int:
        position = self.positions[(account, symbol)]
        mine = [o for o in self.resting if o.account == account and o.symbol == symbol]
        if is_buy:
            return position + sum(o.leaves for o in mine if o.is_buy) + added
        return -(position - sum(o.leaves for o in mine if not o.is_buy) - added)

    def _would_cross(self, symbol: str, is_buy: bool, price: int) -> bool:
        return any(
            o.symbol == symbol and o.is_buy != is_buy and _reaches(is_buy, price, o.price)  # type: ignore[arg-type]
            for o in self.resting
        )

    # ------------------------------------------------------------------ outputs

    def _report(self, order: ModelOrder, exec_type: str, status: str, reason: str | None) -> None:
        grid = GRIDS[order.symbol]
        self.out.append(
            (
                "report",
                order.order_id,
                exec_type,
                status,
                order.account,
                "buy" if order.is_buy else "sell",
                order.tif,
                order.price / grid.per_unit if order.price is not None else None,
                order.qty,
                order.cum,
                order.leaves,
                order.client_order_id,
                reason,
            )
        )

    def _reject(self, account: str, cmd: NewOrder, reason: str) -> None:
        self.out.append(
            (
                "report",
                None,
                "rejected",
                "rejected",
                account,
                cmd.side,
                cmd.tif,
                cmd.price,
                cmd.qty,
                0,
                0,
                cmd.client_order_id,
                reason,
            )
        )

    def _finish(self, order: ModelOrder, status: str) -> None:
        if order in self.resting:
            self.resting.remove(order)
        self.done[order.order_id] = (order.account, status, order.client_order_id)
        if order.client_order_id is not None:
            self.done_cids[(order.account, order.client_order_id)] = order.order_id

    def _cancel(self, order: ModelOrder, reason: str | None) -> None:
        order.leaves = 0
        self._report(order, "canceled", "canceled", reason)
        self._finish(order, "canceled")

    def _expire(self, order: ModelOrder, reason: str | None) -> None:
        order.leaves = 0
        self._report(order, "expired", "expired", reason)
        self._finish(order, "expired")

    # ------------------------------------------------------------------ matching

    def _match(self, taker: ModelOrder, limit: int) -> bool:
        """Trade ``taker`` against the book up to ``limit``; True if self-trade prevention
        stopped it."""
        while taker.leaves:
            makers = [
                o
                for o in self.resting
                if o.symbol == taker.symbol
                and o.is_buy != taker.is_buy
                and _reaches(taker.is_buy, limit, o.price)  # type: ignore[arg-type]
            ]
            if not makers:
                return False
            makers.sort(key=lambda o: (-o.price if o.is_buy else o.price, o.time))  # type: ignore[operator]
            maker = makers[0]
            if maker.account == taker.account:
                if taker.stp == "expire_taker":
                    return True
                self._cancel(maker, "self_trade")
                if taker.stp == "expire_both":
                    return True
                continue
            qty = min(taker.leaves, maker.leaves)
            price = maker.price
            assert price is not None
            for order in (taker, maker):
                order.leaves -= qty
                order.cum += qty
            self.last_trade[taker.symbol] = price
            buy, sell = (taker, maker) if taker.is_buy else (maker, taker)
            self.positions[(buy.account, buy.symbol)] += qty
            self.positions[(sell.account, sell.symbol)] -= qty
            self.out.append(
                (
                    "fill",
                    taker.symbol,
                    price,
                    qty,
                    buy.order_id,
                    sell.order_id,
                    "buy" if taker.is_buy else "sell",
                    self.next_trade_id,
                )
            )
            self.next_trade_id += 1
            self._report(taker, "trade", self._status(taker), None)
            self._report(maker, "trade", self._status(maker), None)
            if maker.leaves == 0:
                self._finish(maker, "filled")
        return False

    def _fok_fillable(self, order: ModelOrder, limit: int) -> bool:
        """Decided by trying: match copies of the order and the whole model."""
        trial = copy.deepcopy(self)
        trial_order = copy.deepcopy(order)
        trial._match(trial_order, limit)
        return trial_order.leaves == 0

    def _execute(self, order: ModelOrder, limit: int, rests: bool) -> None:
        if order.tif == "fok" and not self._fok_fillable(order, limit):
            self._expire(order, "fok_unfilled")
            return
        stopped = self._match(order, limit)
        if order.leaves == 0:
            self._finish(order, "filled")
        elif stopped:
            self._expire(order, "self_trade")
        elif rests:
            self.clock += 1
            order.time = self.clock
            self.resting.append(order)
        else:
            self._expire(order, "no_liquidity" if order.order_type == "market" else None)

    # ------------------------------------------------------------------ commands

    def apply(self, account: str, command: Any) -> list[tuple[Any, ...]]:
        self.out = []
        if isinstance(command, CreateAccount):
            if command.account in self.accounts or command.account == INSURANCE:
                self.out.append(("error",))
            else:
                self.accounts.add(command.account)
            return self.out
        if isinstance(command, Revalue):
            return self.out
        if account not in self.accounts:
            self.out.append(("error",))
        elif isinstance(command, NewOrder):
            self._new_order(account, command)
        elif isinstance(command, CancelOrder):
            order = self._find(account, command.order_id, command.client_order_id)
            if order is None:
                self._not_found(account, "cancel", command.order_id, command.client_order_id)
            else:
                self._cancel(order, None)
        elif isinstance(command, AmendOrder):
            self._amend(account, command)
        elif isinstance(command, CancelAll):
            if command.symbol is not None and command.symbol not in GRIDS:
                self.out.append(("error",))
            else:
                victims = [
                    o
                    for o in self.live(account)
                    if command.symbol is None or o.symbol == command.symbol
                ]
                for order in victims:
                    self._cancel(order, None)
                self.out.append(("cancel_all_done", len(victims)))
        return self.out

    def _new_order(self, account: str, cmd: NewOrder) -> None:
        grid = GRIDS.get(cmd.symbol)
        if grid is None:
            self._reject(account, cmd, "unknown_symbol")
            return
        is_market = cmd.order_type == "market"
        tif = cmd.tif
        if is_market:
            if cmd.price is not None:
                self.out.append(("error",))
                return
            tif = "ioc" if tif == "gtc" else tif
        if cmd.post_only and (is_market or tif != "gtc"):
            self.out.append(("error",))
            return
        if cmd.qty <= 0:
            self._reject(account, cmd, "invalid_qty")
            return
        if not is_market and not grid.is_valid(cmd.price):
            self._reject(account, cmd, "invalid_price")
            return
        if cmd.qty > MAX_ORDER_QTY:
            self._reject(account, cmd, "max_order_qty")
            return
        low, high = self._band(cmd.symbol)
        price = None if is_market else grid.ticks(cmd.price)  # type: ignore[arg-type]
        if price is not None and not low <= price <= high:
            self._reject(account, cmd, "price_band")
            return
        cid = cmd.client_order_id
        if cid is not None and any(o.client_order_id == cid for o in self.live(account)):
            self._reject(account, cmd, "duplicate_client_order_id")
            return
        rests = not is_market and tif == "gtc"
        if rests and len(self.live(account)) >= MAX_OPEN_ORDERS[account]:
            self._reject(account, cmd, "max_open_orders")
            return
        is_buy = cmd.side == "buy"
        if self._worst_position(account, cmd.symbol, is_buy, cmd.qty) > MAX_POSITION:
            self._reject(account, cmd, "max_position")
            return
        if cmd.post_only and price is not None and self._would_cross(cmd.symbol, is_buy, price):
            self._reject(account, cmd, "post_only_would_cross")
            return
        order = ModelOrder(
            order_id=self.next_order_id,
            account=account,
            symbol=cmd.symbol,
            is_buy=is_buy,
            price=price,
            qty=cmd.qty,
            leaves=cmd.qty,
            client_order_id=cid,
            order_type=cmd.order_type,
            tif=tif,
            post_only=cmd.post_only,
            stp=cmd.stp,
        )
        self.next_order_id += 1
        self._report(order, "new", "new", None)
        if price is None:  # a market order may trade up to the edge of the band
            price = high if is_buy else low
        self._execute(order, price, rests)

    def _find(self, account: str, order_id: int | None, cid: str | None) -> ModelOrder | None:
        if order_id is not None:
            found = [o for o in self.resting if o.order_id == order_id]
            if not found or found[0].account != account:
                return None
            if cid is not None and found[0].client_order_id != cid:
                return None
            return found[0]
        if cid is not None:
            found = [o for o in self.live(account) if o.client_order_id == cid]
            return found[0] if found else None
        return None

    def _not_found(self, account: str, request: str, order_id: int | None, cid: str | None) -> None:
        """too_late for an order of ours that is done (with its final status); otherwise
        unknown_order, exactly as for an order that never existed."""
        done_id = order_id
        if done_id is None and cid is not None:
            done_id = self.done_cids.get((account, cid))
        done = self.done.get(done_id) if done_id is not None else None
        if done is not None and done[0] == account and (cid is None or cid == done[2]):
            self.out.append(("cancel_reject", request, done_id, done[2], "too_late", done[1]))
        else:
            self.out.append(("cancel_reject", request, order_id, cid, "unknown_order", None))

    def _amend_reject(self, order: ModelOrder, reason: str) -> None:
        self.out.append(
            (
                "cancel_reject",
                "amend",
                order.order_id,
                order.client_order_id,
                reason,
                self._status(order),
            )
        )

    def _amend(self, account: str, cmd: AmendOrder) -> None:
        order = self._find(account, cmd.order_id, cmd.client_order_id)
        if order is None:
            self._not_found(account, "amend", cmd.order_id, cmd.client_order_id)
            return
        grid = GRIDS[order.symbol]
        if cmd.qty is None and cmd.price is None:
            self._amend_reject(order, "invalid_qty")
            return
        new_qty = order.qty if cmd.qty is None else cmd.qty
        if new_qty <= 0:
            self._amend_reject(order, "invalid_qty")
            return
        if cmd.price is not None and not grid.is_valid(cmd.price):
            self._amend_reject(order, "invalid_price")
            return
        new_price = order.price if cmd.price is None else grid.ticks(cmd.price)
        assert new_price is not None
        if new_qty > MAX_ORDER_QTY:
            self._amend_reject(order, "max_order_qty")
            return
        low, high = self._band(order.symbol)
        if new_price != order.price and not low <= new_price <= high:
            self._amend_reject(order, "price_band")
            return
        if new_qty == order.cum:  # FIX C.3.b: done, filled at the new qty
            order.qty, order.leaves = new_qty, 0
            self._report(order, "replaced", "filled", None)
            self._finish(order, "filled")
            return
        if new_qty < order.cum:
            self._cancel(order, None)  # nothing left to trade
            return
        new_leaves = new_qty - order.cum
        added = new_leaves - order.leaves
        if (
            added > 0
            and self._worst_position(account, order.symbol, order.is_buy, added) > MAX_POSITION
        ):
            self._amend_reject(order, "max_position")
            return
        if order.post_only and self._would_cross(order.symbol, order.is_buy, new_price):
            self._amend_reject(order, "post_only_would_cross")
            return
        if new_price == order.price and new_leaves <= order.leaves:
            order.qty, order.leaves = new_qty, new_leaves  # keeps its time priority
            self._report(order, "replaced", self._status(order), None)
            return
        self.resting.remove(order)
        order.qty, order.leaves, order.price = new_qty, new_leaves, new_price
        self._report(order, "replaced", self._status(order), None)
        self._execute(order, new_price, True)


def project(events: list[Any]) -> list[tuple[Any, ...]]:
    """The parts of the core's events the model predicts (book deltas, BBOs and account
    updates are checked against the core's own state instead)."""
    out: list[tuple[Any, ...]] = []
    for event in events:
        kind = type(event)
        if kind is ExecutionReport:
            out.append(
                (
                    "report",
                    event.order_id,
                    event.exec_type,
                    event.status,
                    event.account,
                    event.side,
                    event.tif,
                    event.price,
                    event.qty,
                    event.cum_qty,
                    event.leaves_qty,
                    event.client_order_id,
                    event.reject_reason,
                )
            )
        elif kind is Fill:
            out.append(
                (
                    "fill",
                    event.symbol,
                    GRIDS[event.symbol].ticks(event.price),
                    event.qty,
                    event.buy_order_id,
                    event.sell_order_id,
                    event.aggressor,
                    event.trade_id,
                )
            )
        elif kind is CancelReject:
            out.append(
                (
                    "cancel_reject",
                    event.request,
                    event.order_id,
                    event.client_order_id,
                    event.reject_reason,
                    event.status,
                )
            )
        elif kind is CancelAllDone:
            out.append(("cancel_all_done", event.canceled))
        elif kind is Error:
            out.append(("error",))
    return out


# ====================================================================== the machines


@dataclass
class Tracked:
    """What the report stream has told us about one order so far."""

    cum: int = 0
    cost: float = 0.0  # Σ last_px x last_qty
    done: bool = False


@dataclass
class Stats:
    """Which paths the runs reached, so a test can prove they were exercised."""

    counts: Counter[str] = field(default_factory=Counter)


BAD_ORDERS: dict[str, dict[str, Any]] = {
    "invalid_qty": {"qty": 0},
    "invalid_qty#negative": {"qty": -3},
    "invalid_price": {"price": 100.1},
    "invalid_price#zero": {"price": 0.0},
    "invalid_price#missing": {"price": None},
    "max_order_qty": {"qty": MAX_ORDER_QTY + 1},
    "price_band": {"price": 150.0},
    "unknown_symbol": {"symbol": "ZZZ"},
    "error#market_with_price": {"order_type": "market"},
    "error#post_only_ioc": {"tif": "ioc", "post_only": True},
    "error#post_only_market": {"order_type": "market", "price": None, "post_only": True},
    "error#insurance_account": {"account": INSURANCE},
    "error#unknown_account": {"account": "nobody"},
}
"""Orders refused up front (the key names the reject reason) or malformed (``error``)."""
amend_prices = st.one_of(st.none(), st.integers(-3, 3), st.sampled_from(["off_grid", "zero"]))
amend_quantities = st.one_of(st.none(), st.integers(1, 12), st.sampled_from([0, -1, 21]))


class CoreMachine(RuleBasedStateMachine):
    """Random command streams with ample cash, compared with the reference model."""

    TIGHT = False
    stats = Stats()

    def __init__(self) -> None:
        super().__init__()
        self.config = make_config(self.TIGHT)
        self.ex = Exchange(self.config)
        self.model: Model | None = None if self.TIGHT else Model()
        self.deposits = round(self.config.insurance_fund_cash * MONEY_SCALE) + sum(
            round(spec.cash * MONEY_SCALE) for spec in self.config.accounts
        )
        self.ts = 1_700_000_000_000_000_000
        self.seq = 0
        self.journal: list[tuple[str, Any, int]] = []
        self.encoded: list[bytes] = []
        self.orders: dict[int, Tracked] = {}
        self.order_ids: list[int] = []
        self.last_trade: dict[str, int] = {}
        self.fees_paid: Counter[str] = Counter()  # money units, from the fills
        self.l2: dict[str, tuple[dict[float, int], dict[float, int]]] = {s: ({}, {}) for s in GRIDS}
        self.bbo: dict[str, tuple[float | None, int, float | None, int]] = {
            s: (None, 0, None, 0) for s in GRIDS
        }

    # ------------------------------------------------------------------ submitting

    def _account_states(self) -> dict[str, tuple[int, dict[str, int]]]:
        return {
            a.name: (a.cash, {s: h.qty for s, h in a.holdings.items() if h.qty})
            for a in self.ex.accounts()
        }

    def submit(self, account: str, command: Any) -> list[Any]:
        """Submit one command; check its events, and against the model if there is one."""
        self.ts += 1_000
        self.stats.counts["command"] += 1
        before = self._account_states()
        verdict = None
        if self.TIGHT and isinstance(command, NewOrder) and command.symbol in GRIDS:
            verdict = self.margin_verdict(account, command)
        events = self.ex.submit(account, command, self.ts)
        self.journal.append((account, command, self.ts))
        self.encoded.append(encode(events))
        self.check_events(command, events, before)
        if verdict is not None and events and type(events[0]) is ExecutionReport:
            raises, required, equity = verdict
            if events[0].reject_reason == "insufficient_margin":
                self.stats.counts["margin_checked"] += 1
                assert raises and required > equity * (1 + 1e-12), (command, verdict)
            elif events[0].exec_type == "new":
                assert not raises or required <= equity * (1 + 1e-12), (command, verdict)
        if self.model is not None:
            expected = self.model.apply(account, command)
            assert project(events) == expected, (command, events)
        return events

    def marks(self) -> dict[str, float]:
        """Mark price (ticks) per symbol: BBO mid, else the last trade, else the reference."""
        marks = {}
        for symbol, grid in GRIDS.items():
            book = self.ex.book(symbol)
            assert book is not None
            bids, asks = book.depth(1)
            if bids and asks:
                marks[symbol] = (bids[0][0] + asks[0][0]) / 2
            else:
                marks[symbol] = float(self.last_trade.get(symbol, grid.reference_ticks))
        return marks

    def margin_verdict(self, name: str, cmd: NewOrder) -> tuple[bool, float, float] | None:
        """Before ``cmd`` runs: whether it raises the account's initial margin, the initial
        margin with it, and the equity (money units). Initial margin per symbol is the IM rate
        times the worst of |position + all open buys| and |position - all open sells|, valued
        at the mark (open orders at their limit price; a market order at the band's edge)."""
        account = self.ex.account(name)
        if account is None or account.liquidating or cmd.qty <= 0:
            return None
        grid = GRIDS[cmd.symbol]
        is_buy = cmd.side == "buy"
        if cmd.order_type == "market":
            reference = self.last_trade.get(cmd.symbol, grid.reference_ticks)
            width = reference * PRICE_BAND_PERCENT // 100
            ticks = reference + width if is_buy else max(1, reference - width)
        elif grid.is_valid(cmd.price):
            ticks = grid.ticks(cmd.price)  # type: ignore[arg-type]
        else:
            return None
        marks = self.marks()
        exposure: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for info in self.ex.open_orders(name):
            assert info.price is not None
            side = 0 if info.side == "buy" else 1
            exposure[info.symbol][side] += info.leaves_qty * GRIDS[info.symbol].ticks(info.price)
        equity = float(account.cash)
        required = 0.0
        raises = False
        for symbol, grid_of in GRIDS.items():
            holding = account.holdings.get(symbol)
            qty, cost = (holding.qty, holding.cost) if holding else (0, 0)
            value = qty * marks[symbol]
            buys, sells = exposure[symbol]
            worst = max(abs(value + buys), abs(value - sells))
            if symbol == cmd.symbol:
                if is_buy:
                    buys += cmd.qty * ticks
                else:
                    sells += cmd.qty * ticks
                after = max(abs(value + buys), abs(value - sells))
                raises = after > worst
                worst = after
            required += worst * grid_of.tick_value * 0.05
            equity += value * grid_of.tick_value - cost
        return raises, required, equity

    def check_events(
        self, command: Any, events: list[Any], before: dict[str, tuple[int, dict[str, int]]]
    ) -> None:
        """seq and ts, event order, report lifecycle, fills, deltas, BBOs, account updates."""
        counts = self.stats.counts
        reports = [e for e in events if type(e) is ExecutionReport]
        if isinstance(command, NewOrder) and reports:
            if reports[0].exec_type == "rejected":
                counts[f"rejected:{reports[0].reject_reason}"] += 1
                assert events == reports[:1], events
            else:
                assert events[0] is reports[0] and reports[0].exec_type == "new", events
        if any(type(e) is Error for e in events):
            counts["error"] += 1
            assert len(events) == 1, events
            return
        updated: list[str] = []
        published = False
        for event in events:
            self.seq += 1
            assert event.seq == self.seq, (event, self.seq)
            assert event.ts == self.ts, event
            kind = type(event)
            if updated:
                assert kind is AccountUpdate, ("account updates come last", events)
            if kind in (BookDelta, Bbo):
                published = True
            elif published and not self.TIGHT:  # only liquidations trade after publishing
                assert kind is AccountUpdate, ("own reports before book events", events)
            if kind is ExecutionReport:
                self.check_report(event)
            elif kind is Fill:
                self.check_fill(event, events)
            elif kind is BookDelta:
                self.apply_delta(event)
            elif kind is Bbo:
                top = (event.bid, event.bid_qty, event.ask, event.ask_qty)
                assert top != self.bbo[event.symbol], ("bbo without a change", event)
                self.bbo[event.symbol] = top
            elif kind is Liquidation:
                counts["liquidation"] += 1
            elif kind is AccountUpdate:
                assert event.account not in updated, ("two updates for one account", events)
                updated.append(event.account)
                self.check_account_update(event)
        assert self.ex.last_seq == self.seq
        if not self.TIGHT:
            symbols = [e.symbol for e in events if type(e) is BookDelta]
            assert len(symbols) == len(set(symbols)), ("one book_delta per book", events)
        after = self._account_states()
        for name, state in after.items():
            if state != before.get(name, (None, {})):
                assert name in updated, (f"{name} changed without an account_update", events)
                if name == INSURANCE:
                    counts["insurance_fund_used"] += 1

    def check_report(self, report: ExecutionReport) -> None:
        exec_type, status = report.exec_type, report.status
        if exec_type == "rejected":
            assert status == "rejected" and report.order_id is None
            assert (report.cum_qty, report.leaves_qty, report.avg_px) == (0, 0, 0.0)
            assert report.reject_reason is not None
            return
        order_id = report.order_id
        assert order_id is not None
        if exec_type == "new":
            assert order_id not in self.orders, ("two new reports", report)
            assert status == "new" and report.cum_qty == 0 and report.leaves_qty == report.qty
            self.orders[order_id] = Tracked()
            self.order_ids.append(order_id)
        tracked = self.orders.get(order_id)
        assert tracked is not None, ("no new report first", report)
        assert not tracked.done, ("report after the terminal one", report)
        if exec_type == "trade":
            assert report.last_qty and report.last_qty > 0 and report.last_px
            assert report.liquidity in ("maker", "taker") and report.trade_id
            assert report.cum_qty == tracked.cum + report.last_qty, report
            tracked.cost += report.last_px * report.last_qty
        else:
            assert report.cum_qty == tracked.cum, report
            assert report.last_qty is None and report.trade_id is None
        tracked.cum = report.cum_qty
        if exec_type == "replaced":
            assert status in ("new", "partially_filled"), report
        if exec_type in ("canceled", "expired"):
            assert status == exec_type, report
            self.stats.counts[f"{exec_type}:{report.reject_reason}"] += 1
        if status in TERMINAL:
            assert report.leaves_qty == 0, report
            tracked.done = True
            if status == "filled":
                assert report.cum_qty == report.qty, report
        else:
            assert status == ("partially_filled" if report.cum_qty else "new"), report
            assert report.leaves_qty > 0, report
            assert report.qty == report.cum_qty + report.leaves_qty, report
        if report.cum_qty == 0:
            assert report.avg_px == 0.0, report
        else:
            expected = tracked.cost / report.cum_qty
            assert abs(report.avg_px - expected) <= 1e-9 * expected, (report, expected)

    def check_fill(self, fill: Fill, events: list[Any]) -> None:
        """A taker and a maker trade report per fill; price, qty and fees agree."""
        self.stats.counts["fill"] += 1
        assert fill.qty > 0 and fill.buy_account != fill.sell_account
        grid = GRIDS[fill.symbol]
        ticks = grid.ticks(fill.price)
        self.last_trade[fill.symbol] = ticks
        taker_units = fee(ticks, fill.qty, grid.tick_value, TAKER_FEE_E8)
        maker_units = fee(ticks, fill.qty, grid.tick_value, MAKER_FEE_E8)
        taker_fee, maker_fee = taker_units / MONEY_SCALE, maker_units / MONEY_SCALE
        buyer_takes = fill.aggressor == "buy"
        buyer, seller = fill.buy_account, fill.sell_account
        self.fees_paid[buyer] += taker_units if buyer_takes else maker_units
        self.fees_paid[seller] += maker_units if buyer_takes else taker_units
        assert (fill.buy_fee, fill.sell_fee) == (
            (taker_fee, maker_fee) if buyer_takes else (maker_fee, taker_fee)
        ), fill
        trades = {
            e.liquidity: e
            for e in events
            if type(e) is ExecutionReport and e.exec_type == "trade" and e.trade_id == fill.trade_id
        }
        assert set(trades) == {"maker", "taker"}, (fill, events)
        for liquidity, report in trades.items():
            is_buyer = (liquidity == "taker") == buyer_takes
            assert report.order_id == (fill.buy_order_id if is_buyer else fill.sell_order_id)
            assert report.account == (fill.buy_account if is_buyer else fill.sell_account)
            assert report.side == ("buy" if is_buyer else "sell")
            assert (report.last_px, report.last_qty) == (fill.price, fill.qty)
            assert report.fee == (taker_fee if liquidity == "taker" else maker_fee)

    def apply_delta(self, delta: BookDelta) -> None:
        assert delta.bids or delta.asks, delta
        assert [p for p, _ in delta.bids] == sorted({p for p, _ in delta.bids}, reverse=True)
        assert [p for p, _ in delta.asks] == sorted({p for p, _ in delta.asks}), delta
        bids, asks = self.l2[delta.symbol]
        for side, levels in ((bids, delta.bids), (asks, delta.asks)):
            for price, qty in levels:
                assert qty >= 0, delta
                if qty:
                    side[price] = qty
                else:
                    side.pop(price, None)

    def check_account_update(self, update: AccountUpdate) -> None:
        account = self.ex.account(update.account)
        assert account is not None
        assert update.cash == account.cash / MONEY_SCALE, update
        positions = {p.symbol: p.qty for p in update.positions if p.qty}
        held = {s: h.qty for s, h in account.holdings.items() if h.qty}
        assert positions == held, update

    # ------------------------------------------------------------------ order rules

    @rule(
        account=st.sampled_from(TRADERS),
        symbol=st.sampled_from(list(GRIDS)),
        side=st.sampled_from(["buy", "sell"]),
        offset=st.integers(-3, 3),
        qty=st.integers(1, 8),
        tif=st.sampled_from(["gtc", "gtc", "gtc", "ioc", "fok"]),
        post_only=st.booleans(),
        cid=st.sampled_from(CLIENT_IDS),
        stp=st.sampled_from(STP_MODES),
    )
    def limit_order(
        self,
        account: str,
        symbol: str,
        side: str,
        offset: int,
        qty: int,
        tif: str,
        post_only: bool,
        cid: str | None,
        stp: str,
    ) -> None:
        self.submit(
            account,
            NewOrder(
                symbol=symbol,
                side=side,  # type: ignore[arg-type]
                qty=qty,
                price=GRIDS[symbol].price(offset),
                tif=tif,  # type: ignore[arg-type]
                post_only=post_only and tif == "gtc",
                client_order_id=cid,
                stp=stp,  # type: ignore[arg-type]
            ),
        )

    @rule(
        account=st.sampled_from(ACCOUNTS),
        symbol=st.sampled_from(list(GRIDS)),
        side=st.sampled_from(["buy", "sell"]),
        through=st.integers(0, 6),
        qty=st.integers(1, MAX_ORDER_QTY),
        tif=st.sampled_from(["gtc", "gtc", "ioc", "fok"]),
        cid=st.sampled_from(CLIENT_IDS),
        stp=st.sampled_from(STP_MODES),
    )
    def aggressive_limit_order(
        self,
        account: str,
        symbol: str,
        side: str,
        through: int,
        qty: int,
        tif: str,
        cid: str | None,
        stp: str,
    ) -> None:
        """A limit order priced ``through`` ticks beyond the opposite touch (if there is one)."""
        book = self.ex.book(symbol)
        assert book is not None
        bids, asks = book.depth(1)
        grid = GRIDS[symbol]
        if side == "buy":
            ticks = (asks[0][0] if asks else grid.reference_ticks) + through
        else:
            ticks = (bids[0][0] if bids else grid.reference_ticks) - through
        self.submit(
            account,
            NewOrder(
                symbol=symbol,
                side=side,  # type: ignore[arg-type]
                qty=qty,
                price=ticks / grid.per_unit,
                tif=tif,  # type: ignore[arg-type]
                client_order_id=cid,
                stp=stp,  # type: ignore[arg-type]
            ),
        )

    @rule(
        account=st.sampled_from(ACCOUNTS),
        symbol=st.sampled_from(list(GRIDS)),
        side=st.sampled_from(["buy", "sell"]),
        qty=st.integers(1, 8),
        tif=st.sampled_from(["gtc", "ioc", "fok"]),
        cid=st.sampled_from(CLIENT_IDS),
        stp=st.sampled_from(STP_MODES),
    )
    def market_order(
        self, account: str, symbol: str, side: str, qty: int, tif: str, cid: str | None, stp: str
    ) -> None:
        self.submit(
            account,
            NewOrder(
                symbol=symbol,
                side=side,  # type: ignore[arg-type]
                qty=qty,
                order_type="market",
                tif=tif,  # type: ignore[arg-type]
                client_order_id=cid,
                stp=stp,  # type: ignore[arg-type]
            ),
        )

    @rule(account=st.sampled_from(ACCOUNTS), kind=st.sampled_from(sorted(BAD_ORDERS)))
    def bad_order(self, account: str, kind: str) -> None:
        """Refused up front (exactly one ``rejected`` report) or malformed (one ``error``, no
        seq); either way nothing else happens."""
        fields: dict[str, Any] = {"symbol": "AAA", "side": "buy", "qty": 1, "price": 100.0}
        fields.update(BAD_ORDERS[kind])
        account = fields.pop("account", account)
        state = self.ex.account(account)
        reason = kind.split("#")[0]
        if state is not None and state.liquidating and reason not in ("error", "unknown_symbol"):
            reason = "account_liquidating"
        events = self.submit(account, NewOrder(**fields))
        if reason == "error":
            assert [type(e) for e in events] == [Error], events
        else:
            assert [(e.exec_type, e.reject_reason) for e in events] == [("rejected", reason)]

    # ------------------------------------------------------------------ queue churn

    def _behind_touch(self, symbol: str, is_buy: bool, depth: int) -> int:
        """A passive price ``depth`` ticks behind the own side's touch (or the reference)."""
        grid = GRIDS[symbol]
        book = self.ex.book(symbol)
        assert book is not None
        bids, asks = book.depth(1)
        if is_buy:
            start = bids[0][0] if bids else grid.reference_ticks
            return min(start - depth, asks[0][0] - 1 if asks else start)
        start = asks[0][0] if asks else grid.reference_ticks
        return max(start + depth, bids[0][0] + 1 if bids else start)

    def _place_passive(self, account: str, symbol: str, is_buy: bool, ticks: int) -> int | None:
        events = self.submit(
            account,
            NewOrder(
                symbol=symbol,
                side="buy" if is_buy else "sell",
                qty=1,
                price=ticks / GRIDS[symbol].per_unit,
                post_only=True,
            ),
        )
        return events[0].order_id if events[0].exec_type == "new" else None

    @rule(
        account=st.sampled_from(["c", "d"]),
        symbol=st.sampled_from(list(GRIDS)),
        is_buy=st.booleans(),
        deep=st.booleans(),
        data=st.data(),
    )
    def churn(
        self, account: str, symbol: str, is_buy: bool, deep: bool, data: st.DataObject
    ) -> None:
        """Either a long queue at one price cancelled in random order (dead queue entries pile
        up until the level compacts them), or rounds of one order on each of several prices
        behind the touch, all cancelled (levels come and go away from the best: lazy heap
        entries and heap rebuilds)."""
        if deep:
            ticks = self._behind_touch(symbol, is_buy, data.draw(st.integers(0, 2)))
            size = data.draw(st.integers(34, 38))
            queue = [self._place_passive(account, symbol, is_buy, ticks) for _ in range(size)]
            for order_id in data.draw(st.permutations([i for i in queue if i is not None])):
                self.submit(account, CancelOrder(order_id=order_id))
            return
        width = data.draw(st.integers(8, 14))
        for _ in range(data.draw(st.integers(2, 4))):
            base = self._behind_touch(symbol, is_buy, 1)
            step = -1 if is_buy else 1
            placed = [
                self._place_passive(account, symbol, is_buy, base + i * step) for i in range(width)
            ]
            for placed_id in placed:
                if placed_id is not None:
                    self.submit(account, CancelOrder(order_id=placed_id))

    # ------------------------------------------------------------------ cancel, amend, others

    def _target(self, data: st.DataObject) -> tuple[int | None, str | None]:
        """An order reference: an id (any account's, live or done, or unknown), a client id,
        both, or neither."""
        order_id = data.draw(
            st.one_of(st.sampled_from(self.order_ids or [1]), st.just(10**6), st.none())
        )
        cid = data.draw(st.sampled_from([None, None, None, "x", "y", "z"]))
        return order_id, cid

    @rule(account=st.sampled_from(TRADERS), data=st.data())
    def cancel(self, account: str, data: st.DataObject) -> None:
        order_id, cid = self._target(data)
        self.submit(account, CancelOrder(order_id=order_id, client_order_id=cid))

    @rule(
        account=st.sampled_from(ACCOUNTS),
        data=st.data(),
        qty=amend_quantities,
        price=amend_prices,
    )
    def amend(
        self, account: str, data: st.DataObject, qty: int | None, price: int | str | None
    ) -> None:
        """Amend qty and/or price; prices come from the named order's grid when the id is
        live, else from AAA's (a BBB order then gets a price far outside its band)."""
        order_id, cid = self._target(data)
        info = self.ex.order_info(order_id) if order_id is not None else None
        grid = GRIDS[info.symbol if info is not None else "AAA"]
        raw: float | None
        if price is None:
            raw = None
        elif price == "zero":
            raw = 0.0
        elif price == "off_grid":
            raw = grid.price(0) + grid.tick_size / 3
        else:
            assert isinstance(price, int)
            raw = grid.price(price)
        self.submit(account, AmendOrder(order_id=order_id, client_order_id=cid, qty=qty, price=raw))

    @rule(
        account=st.sampled_from(TRADERS),
        kind=st.sampled_from(["all", "AAA", "BBB", "ZZZ", "revalue", "create", "create_again"]),
    )
    def housekeeping(self, account: str, kind: str) -> None:
        """cancel_all (every symbol, one, or an unknown one: an error), the engine's revalue
        timer, or opening an account (again: an error)."""
        if kind == "revalue":
            self.submit(account, Revalue())
        elif kind.startswith("create"):
            name = LATE_ACCOUNT if kind == "create" else "a"
            cash = 50.0 if self.TIGHT else 1e7
            command = CreateAccount(account=name, cash=cash, max_open_orders=4)
            events = self.submit("a", command)
            if any(type(e) is AccountUpdate and e.account == name for e in events):
                self.deposits += round(cash * MONEY_SCALE)
            else:
                assert [type(e) for e in events] == [Error], events
        else:
            symbol = None if kind == "all" else kind
            events = self.submit(account, CancelAll(symbol=symbol))
            if symbol == "ZZZ" or self.ex.account(account) is None:
                assert [type(e) for e in events] == [Error], events
            else:
                done = [e for e in events if type(e) is CancelAllDone]
                assert len(done) == 1 and done[0].account == account, events

    # ------------------------------------------------------------------ invariants

    @invariant()
    def books_are_consistent(self) -> None:
        """Uncrossed books whose levels hold exactly the live orders; exposure per holding
        equals its live orders; the books rebuilt from events equal the core's."""
        live: dict[tuple[str, bool, int], int] = defaultdict(int)
        exposure: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for account in self.ex.accounts():
            for info in self.ex.open_orders(account.name):
                assert info.price is not None and info.leaves_qty > 0, info
                ticks = GRIDS[info.symbol].ticks(info.price)
                live[(info.symbol, info.side == "buy", ticks)] += info.leaves_qty
                totals = exposure[(account.name, info.symbol)]
                index = 0 if info.side == "buy" else 2
                totals[index] += info.leaves_qty
                totals[index + 1] += info.leaves_qty * ticks
            for symbol, holding in account.holdings.items():
                assert [
                    holding.open_buy_qty,
                    holding.open_buy_value,
                    holding.open_sell_qty,
                    holding.open_sell_value,
                ] == exposure[(account.name, symbol)], (account.name, symbol)
        for symbol, grid in GRIDS.items():
            book = self.ex.book(symbol)
            assert book is not None
            bids, asks = book.depth()
            if bids and asks:
                assert bids[0][0] < asks[0][0], ("crossed book", symbol, bids[0], asks[0])
            assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
            for is_buy, levels in ((True, bids), (False, asks)):
                for ticks, qty in levels:
                    assert qty > 0 and qty == live.pop((symbol, is_buy, ticks), 0), (symbol, ticks)
            mirror_bids, mirror_asks = self.l2[symbol]
            assert sorted(mirror_bids.items(), reverse=True) == [
                (p / grid.per_unit, q) for p, q in bids
            ], symbol
            assert sorted(mirror_asks.items()) == [(p / grid.per_unit, q) for p, q in asks]
            top = (
                bids[0][0] / grid.per_unit if bids else None,
                bids[0][1] if bids else 0,
                asks[0][0] / grid.per_unit if asks else None,
                asks[0][1] if asks else 0,
            )
            assert self.bbo[symbol] == top, symbol
            if self.model is not None:
                assert self.model.ladder(symbol) == (bids, asks), symbol
        assert not live, f"live orders outside any level: {live}"

    @invariant()
    def positions_net_to_zero_and_money_is_conserved(self) -> None:
        net: Counter[str] = Counter()
        total = self.ex.fee_pool
        for account in self.ex.accounts():
            total += account.cash
            for symbol, holding in account.holdings.items():
                net[symbol] += holding.qty
                total -= holding.cost
                if self.model is not None:
                    assert holding.qty == self.model.positions[(account.name, symbol)]
        assert all(qty == 0 for qty in net.values()), net
        assert total == self.deposits, (total - self.deposits, "money created or destroyed")
        if self.model is not None:  # nobody is liquidated: cash moves only by PnL and fees
            for account in self.ex.accounts():
                assert account.fees == self.fees_paid[account.name], account.name
                assert account.cash == account.deposits + account.realized - account.fees

    @invariant()
    def nobody_below_maintenance_margin(self) -> None:
        """An account whose equity is below its maintenance margin is being liquidated (the
        mark is the BBO mid, else the last trade, else the reference)."""
        marks = self.marks()
        mm_rate = 0.04 if self.TIGHT else 0.05
        for account in self.ex.accounts():
            if account.name == INSURANCE or account.liquidating:
                continue
            cushion = float(account.cash)
            for symbol, holding in account.holdings.items():
                value = holding.qty * marks[symbol] * GRIDS[symbol].tick_value
                cushion += value - holding.cost - abs(value) * mm_rate
            assert cushion >= -1e-6 * MONEY_SCALE, (account.name, cushion / MONEY_SCALE)

    def teardown(self) -> None:
        """Determinism: the same commands into a fresh core give byte-identical events."""
        fresh = Exchange(self.config)
        for (account, command, ts), encoded in zip(self.journal, self.encoded, strict=True):
            assert encode(fresh.submit(account, command, ts)) == encoded, command
        assert fresh.state_hash() == self.ex.state_hash()


class TightMachine(CoreMachine):
    """Little cash at 25x leverage: margin rejects and liquidations happen; no model."""

    TIGHT = True
    stats = Stats()

    @rule(symbol=st.sampled_from(list(GRIDS)), is_buy=st.booleans(), distance=st.integers(4, 12))
    def gap(self, symbol: str, is_buy: bool, distance: int) -> None:
        """The deep-pocketed account pulls its quotes in a symbol and leaves one far away:
        thin books, big mark moves, and liquidations that close at a loss beyond the
        account's equity, which the insurance fund pays."""
        self.submit("d", CancelAll(symbol=symbol))
        grid = GRIDS[symbol]
        ticks = grid.reference_ticks + (-distance if is_buy else distance)
        self.submit(
            "d",
            NewOrder(
                symbol=symbol,
                side="buy" if is_buy else "sell",
                qty=MAX_ORDER_QTY,
                price=ticks / grid.per_unit,
            ),
        )


SETTINGS = settings(
    max_examples=300,
    stateful_step_count=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.slow
def test_core_matches_the_naive_model_and_keeps_every_invariant() -> None:
    """Ample cash: margin never interferes, so every command's reports, fills and cancel
    rejects, every position and every L2 ladder equal the naive reference model's, and every
    invariant holds. Also proves the interesting paths were reached: fills, self-trade
    prevention in all modes, FOK kills, market orders without liquidity, every reject."""
    CoreMachine.stats = Stats()
    run_state_machine_as_test(CoreMachine, settings=SETTINGS)
    counts = CoreMachine.stats.counts
    assert counts["fill"] > 500 and counts["error"] > 0, counts
    assert counts["rejected:insufficient_margin"] == 0 and counts["liquidation"] == 0
    for path in (
        "canceled:self_trade",
        "expired:self_trade",
        "expired:fok_unfilled",
        "expired:no_liquidity",
        "expired:None",
        *(f"rejected:{reason.split('#')[0]}" for reason in BAD_ORDERS if "error" not in reason),
        "rejected:duplicate_client_order_id",
        "rejected:post_only_would_cross",
        "rejected:max_open_orders",
        "rejected:max_position",
    ):
        assert counts[path] > 0, (path, counts)


@pytest.mark.slow
def test_core_keeps_every_invariant_under_margin_pressure() -> None:
    """Tight cash at 25x leverage: insufficient_margin rejects and liquidations happen, and
    every invariant (money conserved incl. the insurance fund, report lifecycle, seq,
    nobody left below maintenance margin, determinism) holds throughout."""
    TightMachine.stats = Stats()
    run_state_machine_as_test(TightMachine, settings=SETTINGS)
    counts = TightMachine.stats.counts
    assert counts["rejected:insufficient_margin"] > 0, counts
    assert counts["liquidation"] > 0 and counts["rejected:account_liquidating"] > 0, counts
    assert counts["insurance_fund_used"] > 0, counts
