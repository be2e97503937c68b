"""The matching core: a plain object, command in, list of events out (sans-I/O).

``Exchange.submit(account, command, ts)`` applies one command at input time ``ts`` and returns
the events it caused, each stamped with the engine-wide gapless ``seq`` and that ``ts``. No
clock, randomness, I/O or logging: the same commands always give the same events.

Per command the order of events is: the execution reports and fills of the command itself,
then per touched book one ``book_delta`` and (if it moved) one ``bbo``, then any liquidations
those moves caused (with their own reports, fills, deltas), then one ``account_update`` per
account whose cash or position changed.

``Exchange`` is the sequencer of the stages, each a module with one job: ``risk`` (pre-trade
checks), ``matching`` (execute, fill-or-kill, match), ``orders`` (an order's life in the
book), ``liquidation``, ``reports`` (event builders) and ``done`` (the done-order memory),
over one ``Venue`` (the state).
"""

from __future__ import annotations

from typing import Literal

from exchange.core.accounts import AccountState
from exchange.core.book import AUCTION, Order, OrderBook
from exchange.core.clock import expire_due, next_deadline
from exchange.core.config import CoreConfig
from exchange.core.instruments import MONEY_SCALE
from exchange.core.intake import new_order
from exchange.core.liquidation import check_accounts, liquidate, retry_liquidations
from exchange.core.matching import execute
from exchange.core.operators import leaderboard, publish_news, start_round
from exchange.core.orders import (
    cancel_resting,
    remember_done,
    report,
    unlist,
    unrest,
)
from exchange.core.persistence import capture, restore
from exchange.core.publication import publish_accounts, publish_books
from exchange.core.reports import (
    cancel_reject,
    invalid,
    order_info,
    status_of,
)
from exchange.core.risk import (
    check_amend,
    check_amend_exposure,
    reducible,
)
from exchange.core.state import CoreState, decode, encode, state_hash
from exchange.core.status import advance as advance_status
from exchange.core.status import check_breakers, set_status
from exchange.core.status import next_deadline as status_deadline
from exchange.core.status import touched as auction_touched
from exchange.core.triggers import amend_pending
from exchange.core.triggers import run as run_triggers
from exchange.core.venue import Venue
from exchange.protocol.bounds import MAX_QTY
from exchange.protocol.messages import (
    Account,
    AdvanceTime,
    AmendOrder,
    CancelAll,
    CancelAllDone,
    CancelOrder,
    CoreCommand,
    CreateAccount,
    EngineEvent,
    Fill,
    InstrumentInfo,
    Leaderboard,
    MarketStatus,
    NewOrder,
    OrderInfo,
    OrderStatus,
    PublishNews,
    RankAccounts,
    RejectReason,
    Revalue,
    SetStatus,
    StartRound,
)
from exchange.protocol.names import ACCOUNT_NAME, ACCOUNT_NAME_TEXT, SCENARIO


class Exchange:
    """All exchange state and the rules that change it. Not thread-safe; one caller at a time."""

    def __init__(self, config: CoreConfig) -> None:
        self.config = config
        self.venue = Venue(config)

    @property
    def insurance(self) -> AccountState:
        """The insurance fund's account (a system account: it never trades)."""
        return self.venue.insurance

    # ================================================================== queries

    @property
    def last_seq(self) -> int:
        """The ``seq`` of the last event emitted (0 before any)."""
        return self.venue.seq

    @property
    def last_ts(self) -> int:
        """The input time of the last command applied (0 before any)."""
        return self.venue.ts

    @property
    def fee_pool(self) -> int:
        """Fees collected by the venue, in money units (rebates paid are subtracted)."""
        return self.venue.fee_pool

    @property
    def round(self) -> int:
        """The current round (0 before the first ``start_round``)."""
        return self.venue.round

    def market_statuses(self, ts: int, seq: int) -> list[MarketStatus]:
        """Every symbol's trading status now, as ``market_status`` messages stamped ``ts`` and
        ``seq`` (for snapshots of the event stream)."""
        venue = self.venue
        return [
            MarketStatus(
                symbol=symbol,
                status=book.state,  # type: ignore[arg-type]
                reason=venue.controls[symbol].reason,
                until=venue.controls[symbol].until,
                ts=ts,
                seq=seq,
            )
            for symbol, book in venue.books.items()
        ]

    def leaderboard(self) -> Leaderboard | None:
        """The last ``leaderboard`` published (None before the first since start-up)."""
        return self.venue.standings

    def next_deadline(self) -> int | None:
        """The earliest ``expire_at`` of a live GTD order, ``activate_at`` of a scheduled
        order, or end of a halt or auction, or postponed ``auction`` event (None: none): when
        the engine should next submit ``AdvanceTime``."""
        orders = next_deadline(self.venue)
        status = status_deadline(self.venue)
        if orders is None or (status is not None and status < orders):
            return status
        return orders

    def symbols(self) -> list[str]:
        return list(self.venue.books)

    def book(self, symbol: str) -> OrderBook | None:
        return self.venue.books.get(symbol)

    def instruments(self) -> list[InstrumentInfo]:
        return [book.instrument.info for book in self.venue.books.values()]

    def accounts(self) -> list[AccountState]:
        return list(self.venue.accounts.values())

    def account(self, name: str) -> AccountState | None:
        return self.venue.accounts.get(name)

    def account_for_key(self, api_key: str) -> str | None:
        """The account an API key logs into, or None."""
        account = self.venue.api_keys.get(api_key)
        return account.name if account else None

    def account_reply(self, name: str, req_id: str | int | None = None) -> Account | None:
        """``get_account``'s answer for ``name`` as of ``last_seq`` (None: no such account)."""
        venue = self.venue
        account = venue.accounts.get(name)
        return account.reply(venue.ts or None, venue.seq, req_id) if account else None

    def open_orders(self, name: str, symbol: str | None = None) -> list[OrderInfo]:
        """``get_orders``: the account's live orders in order of acceptance."""
        account = self.venue.accounts.get(name)
        if account is None:
            return []
        return [
            order_info(order)
            for order in account.orders.values()
            if symbol is None or order.book.symbol == symbol
        ]

    def order_info(self, order_id: int) -> OrderInfo | None:
        """A live order by id, whoever owns it (a scan: for tools and tests, not hot paths)."""
        for account in self.venue.accounts.values():
            order = account.orders.get(order_id)
            if order is not None:
                return order_info(order)
        return None

    # ================================================================== state

    def snapshot(self) -> bytes:
        """The complete state as bytes (msgpack); ``Exchange.restore`` rebuilds it."""
        return encode(self.capture())

    def state_hash(self) -> str:
        """A digest of the whole state: equal for cores that processed the same commands."""
        return state_hash(self)

    def capture(self) -> CoreState:
        """The canonical state of this core (what a snapshot holds)."""
        return capture(self.venue)

    @classmethod
    def restore(cls, config: CoreConfig, data: bytes) -> Exchange:
        """A core equal in every observable way to the one ``data`` was taken from.

        Raises ValueError if ``data`` is not a snapshot of this version or does not fit
        ``config``.
        """
        exchange = cls(config)
        restore(exchange.venue, decode(data))
        return exchange

    # ================================================================== commands

    def submit(self, account: str, command: CoreCommand, ts: int) -> list[EngineEvent]:
        """Apply ``command`` for ``account`` at time ``ts``; return the events it caused.

        Never raises for any command value: unknown accounts and malformed combinations
        come back as an ``Error`` event (which consumes no ``seq``).
        """
        venue = self.venue
        venue.ts = ts
        events: list[EngineEvent] = []
        venue.events = events
        match command:
            case NewOrder() | CancelOrder() | AmendOrder() | CancelAll():
                owner = venue.accounts.get(account)
                if owner is None or owner is venue.insurance:
                    events.append(invalid(command, f"unknown account {account!r}"))
                    return events
                if type(command) is NewOrder:
                    new_order(venue, owner, command)
                elif type(command) is CancelOrder:
                    self._cancel(owner, command)
                elif type(command) is AmendOrder:
                    self._amend(owner, command)
                else:
                    self._cancel_all(owner, command)  # type: ignore[arg-type]
            case CreateAccount():
                self._create_account(command)
            case Revalue():
                self._revalue()
            case AdvanceTime():
                expire_due(venue, ts)
                advance_status(venue, ts)
            case SetStatus():
                set_status(venue, command, "schedule" if account == SCENARIO else "admin")
            case PublishNews():
                publish_news(venue, command)
            case StartRound():
                start_round(venue, command)
            case RankAccounts():
                # Mark to market first: the leaderboard at seq L then agrees with each
                # account's last account_update before L.
                self._revalue()
                if venue.touched_accounts or venue.liquidating:
                    self._finish()
                leaderboard(venue)
                return events
            case _:
                text = f"not a core command: {type(command).__name__}"
                events.append(invalid(command, text))
                return events
        if venue.touched_books or venue.touched_accounts or venue.liquidating:
            self._finish()
        return events

    # ------------------------------------------------------------------ cancel / amend

    @staticmethod
    def _find(account: AccountState, order_id: int | None, cid: str | None) -> Order | None:
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
        cancel_resting(self.venue, order, cmd.req_id, None, None)

    def _cancel_all(self, account: AccountState, cmd: CancelAll) -> None:
        venue = self.venue
        if cmd.symbol is not None and cmd.symbol not in venue.books:
            venue.events.append(invalid(cmd, f"unknown symbol {cmd.symbol!r}"))
            return
        victims = [
            order
            for order in account.orders.values()
            if cmd.symbol is None or order.book.symbol == cmd.symbol
        ]
        for order in victims:
            cancel_resting(venue, order, cmd.req_id, None, None)
        venue.seq += 1
        venue.events.append(
            CancelAllDone(
                canceled=len(victims),
                account=account.name,
                symbol=cmd.symbol,
                req_id=cmd.req_id,
                ts=venue.ts,
                seq=venue.seq,
            )
        )

    def _amend(self, account: AccountState, cmd: AmendOrder) -> None:
        venue = self.venue
        order = self._find(account, cmd.order_id, cmd.client_order_id)
        if order is None:
            self._not_found(account, "amend", cmd.order_id, cmd.client_order_id, cmd.req_id)
            return
        book = order.book
        instrument = book.instrument
        if cmd.qty is None and cmd.price is None and cmd.trigger_price is None:
            text = "amend needs a new qty, price and/or trigger_price"
            self._amend_reject(order, cmd, "invalid_qty", text)
            return
        if cmd.price is not None and not order.price:
            text = f"a {order.order_type} order has no price to amend"
            self._amend_reject(order, cmd, "invalid_order", text)
            return
        new_trigger = order.trigger
        if cmd.trigger_price is not None:
            if not order.pending or not order.trigger:
                text = "trigger_price can only be amended on a conditional order before it fires"
                self._amend_reject(order, cmd, "invalid_order", text)
                return
            ticks = instrument.to_ticks(cmd.trigger_price)
            if ticks is None:
                text = f"trigger_price must be a positive multiple of {instrument.tick_size}"
                self._amend_reject(order, cmd, "invalid_price", text)
                return
            new_trigger = ticks
        new_qty = order.qty if cmd.qty is None else cmd.qty
        if new_qty <= 0 or new_qty > MAX_QTY:
            self._amend_reject(order, cmd, "invalid_qty", "qty must be a positive whole number")
            return
        if cmd.price is None:
            new_price = order.price
        else:
            ticks = instrument.to_ticks(cmd.price)
            if ticks is None:
                text = f"price must be a positive multiple of {instrument.tick_size}"
                self._amend_reject(order, cmd, "invalid_price", text)
                return
            new_price = ticks
        if order.pending:
            start = len(venue.events)
            refusal = amend_pending(venue, order, new_qty, new_price, new_trigger, cmd.req_id)
            if refusal is not None:
                self._amend_reject(order, cmd, refusal[0], refusal[1])
            elif venue.firing:
                run_triggers(venue, start)
            return
        refusal = check_amend(order, new_qty, new_price)
        if refusal is not None:
            self._amend_reject(order, cmd, refusal[0], refusal[1])
            return
        if new_qty == order.cum_qty:
            # Amended to exactly what filled: the order is done, filled at its new qty
            # (FIX 4.4 Appendix D C.3.b: a replace report with OrdStatus Filled).
            unrest(venue, order)
            unlist(order)
            order.leaves = 0
            order.qty = new_qty
            report(venue, order, "replaced", "filled", cmd.req_id)
            remember_done(venue, order, "filled")
            return
        if new_qty < order.cum_qty:
            # Reducing below what already filled cancels the rest; qty stays as it was.
            cancel_resting(venue, order, cmd.req_id, None, "qty amended below the filled qty")
            return
        new_leaves = new_qty - order.cum_qty
        if order.reduce_only and new_leaves > reducible(account.holding(book), order.is_buy):
            text = "reduce_only: qty above the position it reduces"
            self._amend_reject(order, cmd, "reduce_only", text)
            return
        refusal = check_amend_exposure(account, order, new_leaves, new_price)
        if refusal is not None:
            self._amend_reject(order, cmd, refusal[0], refusal[1])
            return
        venue.touched_books[book.symbol] = book
        if new_price == order.price and new_leaves <= order.leaves:
            # Same price, lower quantity: keeps time priority.
            reduce_by = order.leaves - new_leaves
            if reduce_by:
                book.reduce(order, reduce_by)
                account.holdings[book.symbol].expose(order.is_buy, -reduce_by, order.price)
            order.qty = new_qty
            report(venue, order, "replaced", status_of(order), cmd.req_id)
            return
        # New price or more quantity: loses time priority (out and back in at the back).
        unrest(venue, order, purge=True)
        order.qty = new_qty
        order.leaves = new_leaves
        order.price = new_price
        order.shown = 0  # an iceberg shows a new slice
        start = len(venue.events)
        report(venue, order, "replaced", status_of(order), cmd.req_id)
        execute(venue, order, new_price, True)
        if venue.armed or venue.reduce_only:
            run_triggers(venue, start)

    def _not_found(
        self,
        account: AccountState,
        request: Literal["cancel", "amend"],
        order_id: int | None,
        cid: str | None,
        req_id: str | int | None,
    ) -> None:
        """cancel_reject for an order that is not live: too_late if it is ours and remembered."""
        venue = self.venue
        done_id = order_id
        if done_id is None and cid is not None:
            done_id = venue.done.id_for(account.name, cid)
        done = venue.done.get(done_id) if done_id is not None else None
        reason: RejectReason
        status: OrderStatus | None
        if done is not None and done[0] == account.name and (cid is None or cid == done[2]):
            reason, status, text = "too_late", done[1], f"order is already {done[1]}"
            order_id, cid = done_id, done[2]
        else:
            reason, status, text = "unknown_order", None, "no such live order"
        if order_id is None and cid is None:
            text = "order_id or client_order_id required"
        venue.seq += 1
        venue.events.append(
            cancel_reject(
                request=request,
                account=account.name,
                order_id=order_id,
                client_order_id=cid,
                reason=reason,
                text=text,
                status=status,
                req_id=req_id,
                ts=venue.ts,
                seq=venue.seq,
            )
        )

    def _amend_reject(self, order: Order, cmd: AmendOrder, reason: RejectReason, text: str) -> None:
        venue = self.venue
        venue.seq += 1
        venue.events.append(
            cancel_reject(
                request="amend",
                account=order.account.name,
                order_id=order.order_id,
                client_order_id=order.client_order_id,
                reason=reason,
                text=text,
                status=status_of(order),
                req_id=cmd.req_id,
                ts=venue.ts,
                seq=venue.seq,
            )
        )

    # ------------------------------------------------------------------ accounts

    def _create_account(self, cmd: CreateAccount) -> None:
        venue = self.venue
        if cmd.account in venue.accounts:
            venue.events.append(invalid(cmd, f"account {cmd.account!r} exists"))
            return
        if cmd.api_key is not None and cmd.api_key in venue.api_keys:
            venue.events.append(invalid(cmd, "api key already in use"))
            return
        if not ACCOUNT_NAME.fullmatch(cmd.account):
            venue.events.append(invalid(cmd, ACCOUNT_NAME_TEXT))
            return
        if not cmd.cash >= 0:
            venue.events.append(invalid(cmd, "an account needs cash >= 0"))
            return
        account = venue.open_account(
            cmd.account,
            round(cmd.cash * MONEY_SCALE),
            cmd.api_key,
            cmd.max_open_orders or self.config.max_open_orders,
        )
        venue.touched_accounts[account.name] = account

    def _revalue(self) -> None:
        venue = self.venue
        reported = venue.reported_equity
        for name, account in venue.accounts.items():
            if account.has_position():
                equity = account.display_equity()
                if reported.get(name) != equity:
                    venue.touched_accounts[name] = account

    # ------------------------------------------------------------------ end of command

    def _finish(self) -> None:
        """Publish book changes, run liquidation checks, publish account updates."""
        venue = self.venue
        touched_accounts = venue.touched_accounts
        waiting = list(venue.liquidating.values()) if venue.liquidating else None
        retried = False
        while True:
            for book in venue.touched_books.values():
                if book.state == AUCTION:
                    auction_touched(venue, book)
            moved = publish_books(venue)
            start = len(venue.events)
            suspects = touched_accounts
            for book in moved:
                breached = venue.watch.breached(book.symbol, book.mark)
                if breached:
                    if suspects is touched_accounts:
                        suspects = dict(touched_accounts)
                    for name in breached:
                        suspects[name] = venue.accounts[name]
            if suspects:
                for account in check_accounts(venue, suspects):
                    liquidate(venue, account)
            if waiting and not retried:
                retried = True
                retry_liquidations(venue, waiting)
            if venue.armed or venue.reduce_only:
                run_triggers(venue, start)  # liquidations' trades fire stops too
            if not venue.touched_books:
                break
        if venue.breakers:
            check_breakers(venue, [e for e in venue.events if type(e) is Fill])
        if touched_accounts:
            publish_accounts(venue)
