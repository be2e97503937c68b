"""The matching core: a plain object, command in, list of events out (sans-I/O).

``Exchange.submit(account, command, ts)`` applies one command at input time ``ts`` and returns
the events it caused, each stamped with the engine-wide gapless ``seq`` and that ``ts``. No
clock, randomness, I/O or logging: the same commands always give the same events.

Per command the order of events is: the execution reports and fills of the command itself,
then per touched book one ``book_delta`` and (if it moved) one ``bbo``, then any liquidations
those moves caused (with their own reports, fills, deltas), then one ``account_update`` per
account whose cash or position changed.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Literal

from exchange.core.accounts import AccountState, Holding, apply_fill
from exchange.core.book import Order, OrderBook
from exchange.core.config import CoreConfig
from exchange.core.instruments import MONEY_SCALE, RATE_SCALE, Instrument, money_to_float
from exchange.core.margin_watch import MarginWatch
from exchange.protocol.bounds import MAX_QTY, echo_int
from exchange.protocol.messages import (
    Account,
    AmendOrder,
    Bbo,
    BookDelta,
    CancelAll,
    CancelAllDone,
    CancelOrder,
    CancelReject,
    CreateAccount,
    Error,
    ExecType,
    ExecutionReport,
    Fill,
    InstrumentInfo,
    Liquidation,
    Liquidity,
    NewOrder,
    OrderInfo,
    OrderStatus,
    RejectReason,
    Revalue,
    Side,
)
from exchange.protocol.names import ACCOUNT_NAME, ACCOUNT_NAME_TEXT

_NO_LIMIT_BUY = 1 << 62


def _fee(notional: int, rate: int) -> int:
    """Fee in money units, truncated toward zero (the venue keeps sub-unit dust)."""
    if rate >= 0:
        return notional * rate // RATE_SCALE
    return -(notional * -rate // RATE_SCALE)


def _status(order: Order) -> OrderStatus:
    if order.leaves == 0:
        return "filled"
    return "partially_filled" if order.cum_qty else "new"


class Exchange:
    """All exchange state and the rules that change it. Not thread-safe; one caller at a time."""

    def __init__(self, config: CoreConfig) -> None:
        self.config = config
        self._books: dict[str, OrderBook] = {}
        for instrument_spec in config.instruments:
            if instrument_spec.symbol in self._books:
                raise ValueError(f"duplicate instrument {instrument_spec.symbol}")
            self._books[instrument_spec.symbol] = OrderBook(Instrument(instrument_spec))
        self._accounts: dict[str, AccountState] = {}
        self._account_order: dict[str, int] = {}
        self._api_keys: dict[str, AccountState] = {}
        self._done: dict[int, tuple[str, OrderStatus, str | None]] = {}
        self._done_fifo: deque[int] = deque()
        self._done_cids: dict[tuple[str, str], int] = {}
        self._done_limit = config.done_order_memory
        self._reported_equity: dict[str, float] = {}
        self._liquidating: dict[str, AccountState] = {}
        self._watch = MarginWatch()
        self._seq = 0
        self._next_order_id = 1
        self._next_trade_id = 1
        self._fee_pool = 0
        self._ts = 0
        self._events: list[Any] = []
        self._touched_books: dict[str, OrderBook] = {}
        self._touched_accounts: dict[str, AccountState] = {}
        self._handlers: dict[type, Any] = {
            NewOrder: self._new_order,
            CancelOrder: self._cancel,
            AmendOrder: self._amend,
            CancelAll: self._cancel_all,
        }
        self.insurance = self._open_account(
            config.insurance_account, round(config.insurance_fund_cash * MONEY_SCALE), None, 0
        )
        for spec in config.accounts:
            self._open_account(
                spec.name,
                round(spec.cash * MONEY_SCALE),
                spec.api_key,
                spec.max_open_orders or config.max_open_orders,
            )

    # ================================================================== queries

    @property
    def last_seq(self) -> int:
        """The ``seq`` of the last event emitted (0 before any)."""
        return self._seq

    @property
    def last_ts(self) -> int:
        """The input time of the last command applied (0 before any)."""
        return self._ts

    @property
    def fee_pool(self) -> int:
        """Fees collected by the venue, in money units (rebates paid are subtracted)."""
        return self._fee_pool

    def symbols(self) -> list[str]:
        return list(self._books)

    def book(self, symbol: str) -> OrderBook | None:
        return self._books.get(symbol)

    def instruments(self) -> list[InstrumentInfo]:
        return [book.instrument.info for book in self._books.values()]

    def accounts(self) -> list[AccountState]:
        return list(self._accounts.values())

    def account(self, name: str) -> AccountState | None:
        return self._accounts.get(name)

    def account_for_key(self, api_key: str) -> str | None:
        """The account an API key logs into, or None."""
        account = self._api_keys.get(api_key)
        return account.name if account else None

    def account_reply(self, name: str, req_id: str | int | None = None) -> Account | None:
        """``get_account``'s answer for ``name`` as of ``last_seq`` (None: no such account)."""
        account = self._accounts.get(name)
        return account.reply(self._ts or None, self._seq, req_id) if account else None

    def open_orders(self, name: str, symbol: str | None = None) -> list[OrderInfo]:
        """``get_orders``: the account's live orders in order of acceptance."""
        account = self._accounts.get(name)
        if account is None:
            return []
        return [
            self._order_info(order)
            for order in account.orders.values()
            if symbol is None or order.book.symbol == symbol
        ]

    def order_info(self, order_id: int) -> OrderInfo | None:
        """A live order by id, whoever owns it (a scan: for tools and tests, not hot paths)."""
        for account in self._accounts.values():
            order = account.orders.get(order_id)
            if order is not None:
                return self._order_info(order)
        return None

    # ================================================================== state

    def snapshot(self) -> bytes:
        """The complete state as bytes (msgpack); ``Exchange.restore`` rebuilds it."""
        from exchange.core.state import snapshot_bytes

        return snapshot_bytes(self)

    @classmethod
    def restore(cls, config: CoreConfig, data: bytes) -> Exchange:
        """A core equal in every observable way to the one ``data`` was taken from."""
        from exchange.core.state import restore

        return restore(config, data)

    def state_hash(self) -> str:
        """A digest of the whole state: equal for cores that processed the same commands."""
        from exchange.core.state import state_hash

        return state_hash(self)

    # ================================================================== commands

    def submit(self, account: str, command: Any, ts: int) -> list[Any]:
        """Apply ``command`` for ``account`` at time ``ts``; return the events it caused.

        Never raises for any command value: unknown accounts and malformed combinations
        come back as an ``Error`` event (which consumes no ``seq``).
        """
        self._ts = ts
        events: list[Any] = []
        self._events = events
        handler = self._handlers.get(type(command))
        if handler is not None:
            owner = self._accounts.get(account)
            if owner is None or owner is self.insurance:
                req_id = getattr(command, "req_id", None)
                text = f"unknown account {account!r}"
                events.append(Error(code="invalid_message", text=text, ref=None, req_id=req_id))
                return events
            handler(owner, command)
        elif type(command) is CreateAccount:
            self._create_account(command)
        elif type(command) is Revalue:
            self._revalue()
        else:
            events.append(
                Error(
                    code="invalid_message",
                    text=f"not a core command: {type(command).__name__}",
                    ref=getattr(command, "req_id", None),
                    req_id=getattr(command, "req_id", None),
                )
            )
            return events
        if self._touched_books or self._touched_accounts or self._liquidating:
            self._finish()
        return events

    # ------------------------------------------------------------------ new order

    def _new_order(self, account: AccountState, cmd: NewOrder) -> None:
        book = self._books.get(cmd.symbol)
        if book is None:
            self._reject(account, cmd, "unknown_symbol", f"unknown symbol {cmd.symbol!r}")
            return
        instrument = book.instrument
        is_market = cmd.order_type == "market"
        tif = cmd.tif
        if is_market:
            if cmd.price is not None:
                self._error(cmd, "market orders carry no price")
                return
            if tif == "gtc":
                tif = "ioc"
        if cmd.post_only and (is_market or tif != "gtc"):
            self._error(cmd, "post_only needs a gtc limit order")
            return
        if account.liquidating:
            self._reject(account, cmd, "account_liquidating", "account is being liquidated")
            return
        qty = cmd.qty
        if qty <= 0 or qty > MAX_QTY:
            self._reject(account, cmd, "invalid_qty", "qty must be a positive whole number of lots")
            return
        if is_market:
            price = 0
        else:
            if cmd.price is None:
                self._reject(account, cmd, "invalid_price", "a limit order needs a price")
                return
            ticks = instrument.to_ticks(cmd.price)
            if ticks is None:
                self._reject(
                    account,
                    cmd,
                    "invalid_price",
                    f"price must be a positive multiple of {instrument.tick_size}",
                )
                return
            price = ticks
        if qty > instrument.max_order_qty:
            self._reject(
                account, cmd, "max_order_qty", f"qty above max_order_qty {instrument.max_order_qty}"
            )
            return
        band = instrument.band_e8
        if band:
            reference = book.last_trade or instrument.reference_ticks
            width = reference * band // RATE_SCALE
            low = reference - width
            if low < 1:
                low = 1
            high = reference + width
        else:
            low, high = 1, _NO_LIMIT_BUY
        if not is_market and (price < low or price > high):
            self._reject(
                account,
                cmd,
                "price_band",
                f"price outside the band [{instrument.to_price(low)}, {instrument.to_price(high)}]",
            )
            return
        cid = cmd.client_order_id
        if cid is not None and cid in account.by_client_id:
            self._reject(account, cmd, "duplicate_client_order_id", f"live order has id {cid!r}")
            return
        rests = not is_market and tif == "gtc"
        if rests and len(account.orders) >= account.max_open_orders:
            self._reject(
                account, cmd, "max_open_orders", f"at most {account.max_open_orders} open orders"
            )
            return
        is_buy = cmd.side == "buy"
        holding = account.holdings.get(book.symbol)
        if holding is None:
            holding = account.holdings[book.symbol] = Holding(book)
        if is_buy:
            worst_position = holding.qty + holding.open_buy_qty + qty
        else:
            worst_position = -(holding.qty - holding.open_sell_qty - qty)
        if worst_position > instrument.max_position:
            self._reject(
                account, cmd, "max_position", f"position could exceed {instrument.max_position}"
            )
            return
        if is_market:
            if high == _NO_LIMIT_BUY:  # no band: assume the market order could pay twice the mark
                value = int(qty * book.mark * 2)
            else:
                value = qty * (high if is_buy else low)
        else:
            value = qty * price
        if not self._margin_allows(account, holding, is_buy, value):
            self._reject(account, cmd, "insufficient_margin", "initial margin would exceed equity")
            return
        if cmd.post_only and (
            (book.best_ask and price >= book.best_ask)
            if is_buy
            else (book.best_bid and price <= book.best_bid)
        ):
            self._reject(account, cmd, "post_only_would_cross", "post-only order would cross")
            return

        order_id = self._next_order_id
        self._next_order_id = order_id + 1
        order = Order(
            order_id=order_id,
            account=account,
            book=book,
            is_buy=is_buy,
            price=price,
            qty=qty,
            leaves=qty,
            client_order_id=cid,
            order_type=cmd.order_type,
            tif=tif,
            post_only=cmd.post_only,
            stp=cmd.stp,
        )
        self._seq += 1
        self._events.append(
            ExecutionReport(
                "new",  # exec_type
                "new",  # status
                order_id,  # order_id
                cid,  # client_order_id
                account.name,  # account
                book.symbol,  # symbol
                cmd.side,  # side
                cmd.order_type,  # order_type
                tif,  # tif
                cmd.price,  # price
                qty,  # qty
                0,  # cum_qty
                qty,  # leaves_qty
                0.0,  # avg_px
                None,  # trade_id
                None,  # last_px
                None,  # last_qty
                None,  # liquidity
                None,  # fee
                None,  # reject_reason
                None,  # text
                cmd.post_only,  # post_only
                False,  # liquidation
                None,  # retry_after_ms
                cmd.req_id,  # req_id
                self._ts,  # ts
                self._seq,  # seq
            )
        )
        if is_market:
            self._execute(order, high if is_buy else low, False)
        elif rests and not (
            (book.best_ask and price >= book.best_ask)
            if is_buy
            else (book.best_bid and price <= book.best_bid)
        ):
            self._rest(order)  # the common case: a passive order joins the book
        else:
            self._execute(order, price, rests)

    def _execute(self, order: Order, limit: int, rests: bool) -> None:
        """Match an accepted (or re-priced) order, then rest or expire what is left."""
        book = order.book
        if order.tif == "fok" and not self._fok_fillable(order, limit):
            self._expire(order, "fok_unfilled", "not enough liquidity to fill the whole order")
            return
        stop = None
        if order.is_buy:
            if book.best_ask and book.best_ask <= limit:
                stop = self._match(order, limit)
        elif book.best_bid and book.best_bid >= limit:
            stop = self._match(order, limit)
        if order.leaves == 0:
            self._unlist(order)
            self._remember_done(order, "filled")
        elif stop is not None:
            self._unlist(order)
            self._expire(order, "self_trade", "self-trade prevented")
        elif rests:
            self._rest(order)
        elif order.order_type == "market":
            self._expire(order, "no_liquidity", "no more liquidity within the price band")
        else:
            self._expire(order, None, None)

    def _margin_allows(
        self, account: AccountState, holding: Holding, is_buy: bool, value: int
    ) -> bool:
        """True if adding an order worth ``value`` (ticks x lots) keeps initial margin <= equity,
        or does not raise initial margin at all (reducing orders are always allowed)."""
        book = holding.book
        position_value = holding.qty * book.mark
        long_side = position_value + holding.open_buy_value
        short_side = position_value - holding.open_sell_value
        if long_side < 0:
            long_side = -long_side
        if short_side < 0:
            short_side = -short_side
        before = long_side if long_side > short_side else short_side
        if is_buy:
            long_side = position_value + holding.open_buy_value + value
            if long_side < 0:
                long_side = -long_side
        else:
            short_side = position_value - holding.open_sell_value - value
            if short_side < 0:
                short_side = -short_side
        after = long_side if long_side > short_side else short_side
        if after <= before:
            return True
        instrument = book.instrument
        total = (after - before) * instrument.tick_value * instrument.im_rate
        equity = float(account.cash * RATE_SCALE)
        for other in account.holdings.values():
            other_book = other.book
            other_instrument = other_book.instrument
            mark = other_book.mark
            qty = other.qty
            position_value = qty * mark
            worst = max(
                abs(position_value + other.open_buy_value),
                abs(position_value - other.open_sell_value),
            )
            tick_value = other_instrument.tick_value
            total += worst * tick_value * other_instrument.im_rate
            if qty:
                equity += (position_value * tick_value - other.cost) * RATE_SCALE
        return total <= equity

    def _fok_fillable(self, order: Order, limit: int) -> bool:
        """Whether ``order`` could fill completely now, honouring its self-trade mode."""
        book = order.book
        if order.is_buy:
            prices = sorted(p for p in book.asks if p <= limit)
        else:
            prices = sorted((p for p in book.bids if p >= limit), reverse=True)
        needed = order.leaves
        skip_own = order.stp == "expire_maker"
        for maker in book.iter_orders(not order.is_buy, prices):
            if maker.account is order.account:
                if skip_own:
                    continue
                return False
            needed -= maker.leaves
            if needed <= 0:
                return True
        return False

    # ------------------------------------------------------------------ matching

    def _match(self, taker: Order, limit: int) -> str | None:
        """Trade ``taker`` against the opposite side up to ``limit``; returns "self_trade" if
        self-trade prevention stopped it, else None. Trades print at the resting price."""
        book = taker.book
        symbol = book.symbol
        instrument = book.instrument
        tick_value = instrument.tick_value
        maker_rate = instrument.maker_fee
        taker_rate = instrument.taker_fee
        to_price = instrument.to_price
        is_buy = taker.is_buy
        levels = book.asks if is_buy else book.bids
        changed = book.changed_asks if is_buy else book.changed_bids
        taker_account = taker.account
        taker_holding = taker_account.holdings.get(symbol)
        if taker_holding is None:
            taker_holding = taker_account.holdings[symbol] = Holding(book)
        events = self._events
        ts = self._ts
        touched = self._touched_accounts
        touched[taker_account.name] = taker_account
        self._touched_books[symbol] = book
        aggressor: Side = "buy" if is_buy else "sell"
        liquidation = taker.liquidation
        while taker.leaves:
            best = book.best_ask if is_buy else book.best_bid
            if not best or (best > limit if is_buy else best < limit):
                return None
            level = levels[best]
            changed.add(best)
            while True:
                orders = level.orders
                maker = orders[0]
                if not maker.live:
                    orders.popleft()
                    level.dead -= 1
                    continue
                maker_account = maker.account
                if maker_account is taker_account:
                    stp = taker.stp
                    if stp == "expire_taker":
                        return "self_trade"
                    self._cancel_resting(maker, None, "self_trade", "self-trade prevented")
                    if stp == "expire_both":
                        return "self_trade"
                    if best not in levels:
                        break
                    continue
                qty = taker.leaves if taker.leaves < maker.leaves else maker.leaves
                notional = best * qty * tick_value
                maker_fee = _fee(notional, maker_rate)
                taker_fee = _fee(notional, taker_rate)
                maker.leaves -= qty
                maker.cum_qty += qty
                maker.cum_cost += best * qty
                taker.leaves -= qty
                taker.cum_qty += qty
                taker.cum_cost += best * qty
                level.qty -= qty
                maker_holding = maker_account.holdings[symbol]
                if maker.is_buy:
                    maker_holding.open_buy_qty -= qty
                    maker_holding.open_buy_value -= qty * best
                else:
                    maker_holding.open_sell_qty -= qty
                    maker_holding.open_sell_value -= qty * best
                apply_fill(maker_account, maker_holding, not is_buy, qty, best)
                apply_fill(taker_account, taker_holding, is_buy, qty, best)
                maker_account.cash -= maker_fee
                maker_account.fees += maker_fee
                taker_account.cash -= taker_fee
                taker_account.fees += taker_fee
                self._fee_pool += maker_fee + taker_fee
                book.last_trade = best
                touched[maker_account.name] = maker_account
                trade_id = self._next_trade_id
                self._next_trade_id = trade_id + 1
                px = to_price(best)
                seq = self._seq
                if is_buy:
                    buyer, seller, buyer_fee, seller_fee = taker, maker, taker_fee, maker_fee
                else:
                    buyer, seller, buyer_fee, seller_fee = maker, taker, maker_fee, taker_fee
                events.append(
                    Fill(
                        symbol,  # symbol
                        trade_id,  # trade_id
                        px,  # price
                        qty,  # qty
                        aggressor,  # aggressor
                        buyer.account.name,  # buy_account
                        seller.account.name,  # sell_account
                        buyer.order_id,  # buy_order_id
                        seller.order_id,  # sell_order_id
                        money_to_float(buyer_fee),  # buy_fee
                        money_to_float(seller_fee),  # sell_fee
                        liquidation,  # liquidation
                        ts,  # ts
                        seq + 1,  # seq
                    )
                )
                self._seq = seq + 1
                self._trade_report(taker, trade_id, px, qty, "taker", taker_fee)
                self._trade_report(maker, trade_id, px, qty, "maker", maker_fee)
                if maker.leaves == 0:
                    orders.popleft()
                    maker.live = False
                    self._unlist(maker)
                    self._remember_done(maker, "filled")
                if level.qty == 0:
                    book.drop_level(not is_buy, best)
                    break
                if not taker.leaves:
                    return None
        return None

    # ------------------------------------------------------------------ cancel / amend

    def _find(self, account: AccountState, order_id: int | None, cid: str | None) -> Order | None:
        """The account's live order named by id (preferred) or client id; None otherwise."""
        if order_id is not None:
            order = account.orders.get(order_id)
            if order is None:
                return None
            if cid is not None and order.client_order_id != cid:
                return None
            return order
        if cid is not None:
            return account.by_client_id.get(cid)
        return None

    def _cancel(self, account: AccountState, cmd: CancelOrder) -> None:
        order = self._find(account, cmd.order_id, cmd.client_order_id)
        if order is None:
            self._not_found(account, "cancel", cmd.order_id, cmd.client_order_id, cmd.req_id)
            return
        self._cancel_resting(order, cmd.req_id, None, None)

    def _cancel_all(self, account: AccountState, cmd: CancelAll) -> None:
        if cmd.symbol is not None and cmd.symbol not in self._books:
            self._error(cmd, f"unknown symbol {cmd.symbol!r}")
            return
        victims = [
            order
            for order in account.orders.values()
            if cmd.symbol is None or order.book.symbol == cmd.symbol
        ]
        for order in victims:
            self._cancel_resting(order, cmd.req_id, None, None)
        self._seq += 1
        self._events.append(
            CancelAllDone(
                canceled=len(victims),
                account=account.name,
                symbol=cmd.symbol,
                req_id=cmd.req_id,
                ts=self._ts,
                seq=self._seq,
            )
        )

    def _amend(self, account: AccountState, cmd: AmendOrder) -> None:
        order = self._find(account, cmd.order_id, cmd.client_order_id)
        if order is None:
            self._not_found(account, "amend", cmd.order_id, cmd.client_order_id, cmd.req_id)
            return
        book = order.book
        instrument = book.instrument
        if cmd.qty is None and cmd.price is None:
            self._amend_reject(order, cmd, "invalid_qty", "amend needs a new qty and/or price")
            return
        new_qty = order.qty if cmd.qty is None else cmd.qty
        if new_qty <= 0 or new_qty > MAX_QTY:
            self._amend_reject(order, cmd, "invalid_qty", "qty must be a positive whole number")
            return
        if cmd.price is None:
            new_price = order.price
        else:
            ticks = instrument.to_ticks(cmd.price)
            if ticks is None:
                self._amend_reject(
                    order,
                    cmd,
                    "invalid_price",
                    f"price must be a positive multiple of {instrument.tick_size}",
                )
                return
            new_price = ticks
        if new_qty > instrument.max_order_qty:
            self._amend_reject(order, cmd, "max_order_qty", "qty above max_order_qty")
            return
        if new_price != order.price:
            low, high = instrument.band_limits(book.band_reference())
            if new_price < low or new_price > high:
                self._amend_reject(order, cmd, "price_band", "price outside the band")
                return
        if new_qty == order.cum_qty:
            # Amended to exactly what filled: the order is done, filled at its new qty
            # (FIX 4.4 Appendix D C.3.b: a replace report with OrdStatus Filled).
            self._unrest(order)
            self._unlist(order)
            order.leaves = 0
            order.qty = new_qty
            self._report(order, "replaced", "filled", req_id=cmd.req_id)
            self._remember_done(order, "filled")
            return
        if new_qty < order.cum_qty:
            # Reducing below what already filled cancels the rest; qty stays as it was.
            self._cancel_resting(order, cmd.req_id, None, "qty amended below the filled qty")
            return
        new_leaves = new_qty - order.cum_qty
        holding = account.holdings[book.symbol]
        is_buy = order.is_buy
        added = new_leaves - order.leaves
        if added > 0:
            worst = (
                holding.qty + holding.open_buy_qty + added
                if is_buy
                else -(holding.qty - holding.open_sell_qty - added)
            )
            if worst > instrument.max_position:
                self._amend_reject(order, cmd, "max_position", "position limit")
                return
        value_delta = new_leaves * new_price - order.leaves * order.price
        if value_delta > 0 and not self._margin_allows(account, holding, is_buy, value_delta):
            self._amend_reject(
                order, cmd, "insufficient_margin", "initial margin would exceed equity"
            )
            return
        crosses = (
            (book.best_ask and new_price >= book.best_ask)
            if is_buy
            else (book.best_bid and new_price <= book.best_bid)
        )
        if crosses and order.post_only:
            self._amend_reject(order, cmd, "post_only_would_cross", "post-only order would cross")
            return
        self._touched_books[book.symbol] = book
        if new_price == order.price and new_leaves <= order.leaves:
            # Same price, lower quantity: keeps time priority.
            reduce_by = order.leaves - new_leaves
            if reduce_by:
                book.reduce(order, reduce_by)
                if is_buy:
                    holding.open_buy_qty -= reduce_by
                    holding.open_buy_value -= reduce_by * order.price
                else:
                    holding.open_sell_qty -= reduce_by
                    holding.open_sell_value -= reduce_by * order.price
            order.qty = new_qty
            self._report(order, "replaced", _status(order), req_id=cmd.req_id)
            return
        # New price or more quantity: loses time priority (out and back in at the back).
        self._unrest(order, purge=True)
        order.qty = new_qty
        order.leaves = new_leaves
        order.price = new_price
        self._report(order, "replaced", _status(order), req_id=cmd.req_id)
        self._execute(order, new_price, True)

    def _not_found(
        self,
        account: AccountState,
        request: Literal["cancel", "amend"],
        order_id: int | None,
        cid: str | None,
        req_id: str | int | None,
    ) -> None:
        """cancel_reject for an order that is not live: too_late if it is ours and remembered."""
        done_id = order_id
        if done_id is None and cid is not None:
            done_id = self._done_cids.get((account.name, cid))
        done = self._done.get(done_id) if done_id is not None else None
        reason: RejectReason
        status: OrderStatus | None
        if done is not None and done[0] == account.name and (cid is None or cid == done[2]):
            reason, status, text = "too_late", done[1], f"order is already {done[1]}"
            order_id, cid = done_id, done[2]
        else:
            reason, status, text = "unknown_order", None, "no such live order"
        self._seq += 1
        self._events.append(
            CancelReject(
                request=request,
                order_id=order_id,
                client_order_id=cid,
                reject_reason=reason,
                text=text
                if order_id is not None or cid is not None
                else "order_id or client_order_id required",
                status=status,
                account=account.name,
                req_id=req_id,
                ts=self._ts,
                seq=self._seq,
            )
        )

    def _amend_reject(self, order: Order, cmd: AmendOrder, reason: RejectReason, text: str) -> None:
        self._seq += 1
        self._events.append(
            CancelReject(
                request="amend",
                order_id=order.order_id,
                client_order_id=order.client_order_id,
                reject_reason=reason,
                text=text,
                status=_status(order),
                account=order.account.name,
                req_id=cmd.req_id,
                ts=self._ts,
                seq=self._seq,
            )
        )

    # ------------------------------------------------------------------ order lifecycle

    def _rest(self, order: Order) -> None:
        """Put a live remainder in the book and account for its exposure."""
        book = order.book
        book.add(order)
        self._touched_books[book.symbol] = book
        account = order.account
        holding = account.holdings[book.symbol]
        if order.is_buy:
            holding.open_buy_qty += order.leaves
            holding.open_buy_value += order.leaves * order.price
        else:
            holding.open_sell_qty += order.leaves
            holding.open_sell_value += order.leaves * order.price
        if order.order_id not in account.orders:
            account.orders[order.order_id] = order
            if order.client_order_id is not None:
                account.by_client_id[order.client_order_id] = order

    def _unrest(self, order: Order, purge: bool = False) -> None:
        """Take a resting order out of the book and out of its holding's exposure."""
        book = order.book
        book.remove(order, purge)
        self._touched_books[book.symbol] = book
        holding = order.account.holdings[book.symbol]
        if order.is_buy:
            holding.open_buy_qty -= order.leaves
            holding.open_buy_value -= order.leaves * order.price
        else:
            holding.open_sell_qty -= order.leaves
            holding.open_sell_value -= order.leaves * order.price

    def _unlist(self, order: Order) -> None:
        """Forget a finished order in the live-order indexes."""
        account = order.account
        if (
            account.orders.pop(order.order_id, None) is not None
            and order.client_order_id is not None
        ):
            account.by_client_id.pop(order.client_order_id, None)

    def _cancel_resting(
        self,
        order: Order,
        req_id: str | int | None,
        reason: RejectReason | None,
        text: str | None,
    ) -> None:
        self._unrest(order)
        self._unlist(order)
        order.leaves = 0
        self._report(order, "canceled", "canceled", req_id=req_id, reason=reason, text=text)
        self._remember_done(order, "canceled")

    def _expire(self, order: Order, reason: RejectReason | None, text: str | None) -> None:
        order.leaves = 0
        self._report(order, "expired", "expired", reason=reason, text=text)
        self._remember_done(order, "expired")

    def _remember_done(self, order: Order, status: OrderStatus) -> None:
        order_id = order.order_id
        cid = order.client_order_id
        name = order.account.name
        self._done[order_id] = (name, status, cid)
        if cid is not None:
            self._done_cids[(name, cid)] = order_id
        fifo = self._done_fifo
        fifo.append(order_id)
        if len(fifo) > self._done_limit:
            old = fifo.popleft()
            entry = self._done.pop(old, None)
            if entry is not None and entry[2] is not None:
                key = (entry[0], entry[2])
                if self._done_cids.get(key) == old:
                    del self._done_cids[key]

    # ------------------------------------------------------------------ reports

    def _report(
        self,
        order: Order,
        exec_type: ExecType,
        status: OrderStatus,
        req_id: str | int | None = None,
        reason: RejectReason | None = None,
        text: str | None = None,
    ) -> None:
        instrument = order.book.instrument
        cum = order.cum_qty
        self._seq += 1
        self._events.append(
            ExecutionReport(
                exec_type,  # exec_type
                status,  # status
                order.order_id,  # order_id
                order.client_order_id,  # client_order_id
                order.account.name,  # account
                order.book.symbol,  # symbol
                "buy" if order.is_buy else "sell",  # side
                order.order_type,  # order_type
                order.tif,  # tif
                instrument.to_price(order.price) if order.price else None,  # price
                order.qty,  # qty
                cum,  # cum_qty
                order.leaves,  # leaves_qty
                instrument.avg_price(order.cum_cost, cum) if cum else 0.0,  # avg_px
                None,  # trade_id
                None,  # last_px
                None,  # last_qty
                None,  # liquidity
                None,  # fee
                reason,  # reject_reason
                text,  # text
                order.post_only,  # post_only
                order.liquidation,  # liquidation
                None,  # retry_after_ms
                req_id,  # req_id
                self._ts,  # ts
                self._seq,  # seq
            )
        )

    def _trade_report(
        self, order: Order, trade_id: int, px: float, qty: int, liquidity: Liquidity, fee: int
    ) -> None:
        instrument = order.book.instrument
        cum = order.cum_qty
        self._seq += 1
        self._events.append(
            ExecutionReport(
                "trade",  # exec_type
                "filled" if order.leaves == 0 else "partially_filled",  # status
                order.order_id,  # order_id
                order.client_order_id,  # client_order_id
                order.account.name,  # account
                order.book.symbol,  # symbol
                "buy" if order.is_buy else "sell",  # side
                order.order_type,  # order_type
                order.tif,  # tif
                instrument.to_price(order.price) if order.price else None,  # price
                order.qty,  # qty
                cum,  # cum_qty
                order.leaves,  # leaves_qty
                instrument.avg_price(order.cum_cost, cum),  # avg_px
                trade_id,  # trade_id
                px,  # last_px
                qty,  # last_qty
                liquidity,  # liquidity
                money_to_float(fee),  # fee
                None,  # reject_reason
                None,  # text
                order.post_only,  # post_only
                order.liquidation,  # liquidation
                None,  # retry_after_ms
                None,  # req_id
                self._ts,  # ts
                self._seq,  # seq
            )
        )

    def _reject(
        self, account: AccountState, cmd: NewOrder, reason: RejectReason, text: str
    ) -> None:
        """An order refused up front: one ``rejected`` report, no order id, nothing changes."""
        self._seq += 1
        self._events.append(
            ExecutionReport(
                "rejected",  # exec_type
                "rejected",  # status
                None,  # order_id
                cmd.client_order_id,  # client_order_id
                account.name,  # account
                cmd.symbol,  # symbol
                cmd.side,  # side
                cmd.order_type,  # order_type
                cmd.tif,  # tif
                cmd.price,  # price
                echo_int(cmd.qty),  # qty
                0,  # cum_qty
                0,  # leaves_qty
                0.0,  # avg_px
                None,  # trade_id
                None,  # last_px
                None,  # last_qty
                None,  # liquidity
                None,  # fee
                reason,  # reject_reason
                text,  # text
                cmd.post_only,  # post_only
                False,  # liquidation
                None,  # retry_after_ms
                cmd.req_id,  # req_id
                self._ts,  # ts
                self._seq,  # seq
            )
        )

    def _error(self, cmd: Any, text: str) -> None:
        ref = getattr(cmd, "client_order_id", None)
        if ref is None:
            ref = getattr(cmd, "req_id", None)
        req_id = getattr(cmd, "req_id", None)
        self._events.append(Error(code="invalid_message", text=text, ref=ref, req_id=req_id))

    def _order_info(self, order: Order) -> OrderInfo:
        instrument = order.book.instrument
        cum = order.cum_qty
        return OrderInfo(
            order_id=order.order_id,
            client_order_id=order.client_order_id,
            symbol=order.book.symbol,
            side="buy" if order.is_buy else "sell",
            order_type=order.order_type,
            tif=order.tif,
            price=instrument.to_price(order.price) if order.price else None,
            qty=order.qty,
            cum_qty=cum,
            leaves_qty=order.leaves,
            avg_px=instrument.avg_price(order.cum_cost, cum) if cum else 0.0,
            status=_status(order),
            post_only=order.post_only,
        )

    # ------------------------------------------------------------------ accounts

    def _open_account(
        self, name: str, cash: int, api_key: str | None, max_open_orders: int
    ) -> AccountState:
        account = AccountState(name, cash, api_key, max_open_orders)
        self._account_order[name] = len(self._accounts)
        self._accounts[name] = account
        if api_key is not None:
            self._api_keys[api_key] = account
        return account

    def _create_account(self, cmd: CreateAccount) -> None:
        if cmd.account in self._accounts:
            self._error(cmd, f"account {cmd.account!r} exists")
            return
        if cmd.api_key is not None and cmd.api_key in self._api_keys:
            self._error(cmd, "api key already in use")
            return
        if not ACCOUNT_NAME.fullmatch(cmd.account):
            self._error(cmd, ACCOUNT_NAME_TEXT)
            return
        if not cmd.cash >= 0:
            self._error(cmd, "an account needs cash >= 0")
            return
        account = self._open_account(
            cmd.account,
            round(cmd.cash * MONEY_SCALE),
            cmd.api_key,
            cmd.max_open_orders or self.config.max_open_orders,
        )
        self._touched_accounts[account.name] = account

    def _revalue(self) -> None:
        reported = self._reported_equity
        for name, account in self._accounts.items():
            if account.has_position():
                equity = account.display_equity()
                if reported.get(name) != equity:
                    self._touched_accounts[name] = account

    # ------------------------------------------------------------------ end of command

    def _finish(self) -> None:
        """Publish book changes, run liquidation checks, publish account updates."""
        touched_accounts = self._touched_accounts
        waiting = list(self._liquidating.values()) if self._liquidating else None
        retried = False
        while True:
            moved = self._publish_books()
            suspects = touched_accounts
            for book in moved:
                breached = self._watch.breached(book.symbol, book.mark)
                if breached:
                    if suspects is touched_accounts:
                        suspects = dict(touched_accounts)
                    for name in breached:
                        suspects[name] = self._accounts[name]
            if suspects:
                for account in self._check_accounts(suspects):
                    self._liquidate(account)
            if waiting and not retried:
                retried = True
                self._retry_liquidations(waiting)
            if not self._touched_books:
                break
        if touched_accounts:
            events = self._events
            ts = self._ts
            reported = self._reported_equity
            for name, account in touched_accounts.items():
                self._seq += 1
                update = account.view(ts, self._seq)
                events.append(update)
                reported[name] = update.equity
            touched_accounts.clear()

    def _publish_books(self) -> list[OrderBook]:
        """One ``book_delta`` and (if it moved) one ``bbo`` per touched book; returns the books
        whose mark price moved."""
        events = self._events
        ts = self._ts
        moved: list[OrderBook] = []
        for book in self._touched_books.values():
            if book.changed_bids or book.changed_asks:
                bids, asks = book.take_changes()
                self._seq += 1
                events.append(BookDelta(book.symbol, bids, asks, ts, self._seq))
            bid = book.best_bid
            ask = book.best_ask
            bbo = (bid, book.bids[bid].qty if bid else 0, ask, book.asks[ask].qty if ask else 0)
            if bbo != book.last_bbo:
                book.last_bbo = bbo
                to_price = book.instrument.to_price
                self._seq += 1
                events.append(
                    Bbo(
                        book.symbol,  # symbol
                        to_price(bid) if bid else None,  # bid
                        bbo[1],  # bid_qty
                        to_price(ask) if ask else None,  # ask
                        bbo[3],  # ask_qty
                        ts,  # ts
                        self._seq,  # seq
                    )
                )
            if bid and ask:
                mark = (bid + ask) / 2
            elif book.last_trade:
                mark = float(book.last_trade)
            else:
                mark = float(book.instrument.reference_ticks)
            if mark != book.mark:
                book.mark = mark
                moved.append(book)
        self._touched_books.clear()
        return moved

    def _check_accounts(self, suspects: dict[str, AccountState]) -> list[AccountState]:
        """Exact margin check of ``suspects``; arms the safe ones, returns those to liquidate
        (in account creation order, so the outcome never depends on the watch's state)."""
        doomed = []
        for account in suspects.values():
            if account is self.insurance or account.name in self._liquidating:
                continue
            cushion = account.cushion()
            if cushion < 0:
                doomed.append(account)
            else:
                self._watch.arm(account, cushion)
        if len(doomed) > 1:
            order = self._account_order
            doomed.sort(key=lambda a: order[a.name])
        return doomed

    def _liquidate(self, account: AccountState) -> None:
        """Cancel the account's orders and close its positions against the book."""
        account.liquidating = True
        self._watch.disarm(account)
        self._liquidating[account.name] = account
        self._touched_accounts[account.name] = account
        for order in list(account.orders.values()):
            self._cancel_resting(order, None, None, "liquidation")
        self._close_positions(account)

    def _close_positions(self, account: AccountState) -> None:
        """Close what ``account`` holds with IOC market orders flagged ``liquidation``, limited
        like any market order to the price band around the last trade: a liquidation takes
        what the book offers within the band, never sweeps it away. What is left waits (the
        account stays liquidating) until liquidity appears within the band."""
        for holding in list(account.holdings.values()):
            if not holding.qty:
                continue
            book = holding.book
            is_buy = holding.qty < 0
            limit = _liquidation_limit(book, is_buy)
            if limit is None:
                continue
            size = -holding.qty if is_buy else holding.qty
            order_id = self._next_order_id
            self._next_order_id = order_id + 1
            order = Order(
                order_id=order_id,
                account=account,
                book=book,
                is_buy=is_buy,
                price=0,
                qty=size,
                leaves=size,
                order_type="market",
                tif="ioc",
                liquidation=True,
            )
            self._report(order, "new", "new")
            self._match(order, limit)
            if order.cum_qty:
                self._seq += 1
                self._events.append(
                    Liquidation(
                        account=account.name,
                        symbol=book.symbol,
                        side="buy" if is_buy else "sell",
                        qty=order.cum_qty,
                        price=book.instrument.avg_price(order.cum_cost, order.cum_qty),
                        ts=self._ts,
                        seq=self._seq,
                    )
                )
            if order.leaves:
                self._expire(
                    order, "no_liquidity", "liquidation found no more liquidity within the band"
                )
            else:
                self._remember_done(order, "filled")
        if not account.has_position():
            self._settle(account)

    def _settle(self, account: AccountState) -> None:
        """A liquidated account is flat: the insurance fund absorbs any negative cash."""
        if account.cash < 0:
            self.insurance.cash += account.cash
            self._touched_accounts[self.insurance.name] = self.insurance
            account.cash = 0
        account.liquidating = False
        del self._liquidating[account.name]
        self._touched_accounts[account.name] = account

    def _retry_liquidations(self, waiting: list[AccountState]) -> None:
        """Try again to close what ``waiting`` (accounts that were liquidating before this
        command) still hold, where there is liquidity within the band. One attempt per
        account and command: a liquidation moves the band with its own trades, so it can walk
        the price at most one band per command, never down a whole thin book at once."""
        for account in waiting:
            if not account.liquidating:
                continue
            for holding in account.holdings.values():
                if holding.qty and _liquidation_limit(holding.book, holding.qty < 0) is not None:
                    self._close_positions(account)
                    break


def _liquidation_limit(book: OrderBook, is_buy: bool) -> int | None:
    """The limit (ticks) of a liquidation order on ``book``: the edge of the price band
    around the last trade; None when the best opposite price lies beyond it (or there is
    none), so there is nothing a liquidation may take now."""
    low, high = book.instrument.band_limits(book.band_reference())
    if is_buy:
        best = book.best_ask
        return high if best and best <= high else None
    best = book.best_bid
    return low if best and best >= low else None
