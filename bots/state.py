"""The bot's view of the world, kept from feed and gateway messages: sans-I/O, no clock.

``BotState`` updates a ``Context`` (bots.api) in place:

- market data: books from ``book_snapshot`` + ``book_update`` with the ``prev_seq`` chain
  checked per symbol (a broken chain marks the symbol out of sync until a new snapshot),
  recent trades, instruments, trading status (``market_status`` from either connection, the
  newest ``seq`` wins; ``auction``). Heartbeats are not compared with the books: their ``seqs``
  are the relay's full-book seqs, which run ahead of a depth-limited view legitimately;
- order entry: own orders from the intents sent and the execution reports, cancel rejects,
  errors and ``orders`` answers that come back; the account from ``account_update``.

Every method returns at once and never raises on a well-typed message.
"""

from __future__ import annotations

from bots import api
from bots.api import Context, Order
from exchange.protocol.messages import (
    Account,
    AccountUpdate,
    AmendOrder,
    AuctionInfo,
    BookSnapshot,
    BookUpdate,
    CancelAll,
    CancelOrder,
    CancelReject,
    Error,
    ExecutionReport,
    Instruments,
    MarketStatus,
    NewOrder,
    Orders,
    Trade,
)

OrderRequest = NewOrder | CancelOrder | AmendOrder | CancelAll

_DONE = frozenset({"filled", "canceled", "rejected", "expired"})


class BotState:
    """Applies feed and gateway messages to ``context``; see the module docstring."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.out_of_sync: set[str] = set(context.symbols)
        """Symbols whose book is not (yet) a faithful copy of the exchange's."""
        self.resubscribe: set[str] = set()
        """Symbols found out of sync since the runner last collected them (``take_resubscribe``):
        their book channel must be subscribed again to get a fresh snapshot."""

    # ------------------------------------------------------------------ market data

    @property
    def books_synced(self) -> bool:
        return not self.out_of_sync

    def instruments(self, message: Instruments) -> None:
        for info in message.instruments:
            self.context.instruments[info.symbol] = info

    def market_status(self, message: MarketStatus) -> bool:
        """Record a symbol's status (ignored when older than the one known: the gateway and the
        relay both deliver it); returns whether the symbol's status changed."""
        ctx = self.context
        known = ctx.statuses.get(message.symbol)
        if known is not None and message.seq <= known.seq:
            return False
        before = ctx.status(message.symbol)
        ctx.statuses[message.symbol] = message
        if message.status != "auction":
            ctx.auctions.pop(message.symbol, None)
        ctx.now_ns = max(ctx.now_ns, message.ts)
        return message.status != before

    def auction(self, message: AuctionInfo) -> None:
        known = self.context.auctions.get(message.symbol)
        if known is None or message.seq > known.seq:
            self.context.auctions[message.symbol] = message

    def book_snapshot(self, message: BookSnapshot) -> api.Book | None:
        """Replace the book; returns it (None for a symbol the bot does not follow)."""
        book = self.context.books.get(message.symbol)
        if book is None:
            return None
        book.reset(message.bids, message.asks, message.seq, message.ts)
        self.out_of_sync.discard(message.symbol)
        self.context.now_ns = max(self.context.now_ns, message.ts)
        return book

    def book_update(self, message: BookUpdate) -> api.Book | None:
        """Apply an update; returns the book, or None when it is ignored (unknown symbol,
        out of sync, or a gap: then the symbol is marked out of sync and must be
        resubscribed, see ``out_of_sync``)."""
        book = self.context.books.get(message.symbol)
        if book is None or message.symbol in self.out_of_sync:
            return None
        if message.prev_seq != book.seq:
            if message.seq <= book.seq:
                return None  # a duplicate of what the snapshot already holds
            self.out_of_sync.add(message.symbol)
            self.resubscribe.add(message.symbol)
            return None
        book.apply(message.bids, message.asks, message.seq, message.ts, self.context.depth)
        self.context.now_ns = max(self.context.now_ns, message.ts)
        return book

    def take_resubscribe(self) -> list[str]:
        """The symbols to resubscribe now (each reported once per loss of sync)."""
        symbols = sorted(self.resubscribe)
        self.resubscribe.clear()
        return symbols

    def trade(self, message: Trade) -> bool:
        """Record a public trade; False for a symbol the bot does not follow."""
        trades = self.context.recent_trades.get(message.symbol)
        if trades is None:
            return False
        trades.append(message)
        if len(trades) > self.context.trade_history:
            del trades[: len(trades) - self.context.trade_history]
        self.context.now_ns = max(self.context.now_ns, message.ts)
        return True

    def market_data_lost(self) -> None:
        """The relay connection dropped: every book is out of sync until its next snapshot
        (a new connection subscribes afresh, so nothing is left to resubscribe)."""
        self.out_of_sync = set(self.context.symbols)
        self.resubscribe.clear()

    # ------------------------------------------------------------------ own orders

    def request_for(self, intent: api.OrderIntent, client_order_id: str) -> OrderRequest | None:
        """The wire request for ``intent``, recording its effect on the own-order table.

        ``client_order_id`` is used for a new order that has none. Returns None when the
        intent is pointless (cancelling or amending an order that is not live).
        """
        ctx = self.context
        match intent:
            case api.LimitOrder() | api.MarketOrder():
                coid = intent.client_order_id or client_order_id
                symbol = intent.symbol or ctx.symbol
                is_limit = isinstance(intent, api.LimitOrder)
                price = intent.price if isinstance(intent, api.LimitOrder) else None
                post_only = intent.post_only if isinstance(intent, api.LimitOrder) else False
                ctx.orders[coid] = Order(
                    client_order_id=coid,
                    order_id=None,
                    symbol=symbol,
                    side=intent.side,
                    order_type="limit" if is_limit else "market",
                    price=price,
                    qty=intent.qty,
                    leaves_qty=intent.qty,
                    tif=intent.tif,
                    post_only=post_only,
                    reduce_only=intent.reduce_only,
                )
                return NewOrder(
                    symbol=symbol,
                    side=intent.side,
                    qty=intent.qty,
                    order_type="limit" if is_limit else "market",
                    price=price,
                    tif=intent.tif,
                    post_only=post_only,
                    client_order_id=coid,
                    stp=intent.stp,
                    reduce_only=intent.reduce_only,
                    display_qty=intent.display_qty if isinstance(intent, api.LimitOrder) else None,
                )
            case api.ConditionalOrder():
                coid = intent.client_order_id or client_order_id
                symbol = intent.symbol or ctx.symbol
                ctx.orders[coid] = Order(
                    client_order_id=coid,
                    order_id=None,
                    symbol=symbol,
                    side=intent.side,
                    order_type=intent.order_type,
                    price=intent.price,
                    qty=intent.qty,
                    leaves_qty=intent.qty,
                    tif=intent.tif,
                    trigger_price=intent.trigger_price,
                    reduce_only=intent.reduce_only,
                )
                return NewOrder(
                    symbol=symbol,
                    side=intent.side,
                    qty=intent.qty,
                    order_type=intent.order_type,
                    price=intent.price,
                    tif=intent.tif,
                    client_order_id=coid,
                    stp=intent.stp,
                    trigger_price=intent.trigger_price,
                    reduce_only=intent.reduce_only,
                )
            case api.Cancel():
                order = self._find(intent.order_id, intent.client_order_id)
                if order is None:
                    return None
                order.status = "pending_cancel"
                return CancelOrder(
                    order_id=order.order_id if order.order_id is not None else intent.order_id,
                    client_order_id=order.client_order_id,
                )
            case api.Amend():
                order = self._find(intent.order_id, intent.client_order_id)
                if order is None:
                    return None
                order.status = "pending_replace"
                return AmendOrder(
                    order_id=order.order_id if order.order_id is not None else intent.order_id,
                    client_order_id=order.client_order_id,
                    qty=intent.qty,
                    price=intent.price,
                    trigger_price=intent.trigger_price,
                )
            case api.CancelAll():
                for order in ctx.orders.values():
                    if intent.symbol is None or order.symbol == intent.symbol:
                        order.status = "pending_cancel"
                return CancelAll(symbol=intent.symbol)
        raise TypeError(f"not an order intent: {intent!r}")  # pragma: no cover

    def execution(self, report: ExecutionReport) -> None:
        """Apply one of our execution reports to the order table."""
        orders = self.context.orders
        key = self._key_of(report.order_id, report.client_order_id)
        if report.status in _DONE:
            if key is not None:
                del orders[key]
            return
        order = orders.get(key) if key is not None else None
        if order is None:
            if report.symbol not in self.context.books:
                return  # another bot of the same account trades that symbol
            key = report.client_order_id or f"#{report.order_id}"
            order = orders[key] = Order(
                client_order_id=report.client_order_id,
                order_id=report.order_id,
                symbol=report.symbol,
                side=report.side,
                order_type=report.order_type,
                price=report.price,
                qty=report.qty,
            )
        order.order_id = report.order_id
        order.price = report.price
        order.qty = report.qty
        order.cum_qty = report.cum_qty
        order.leaves_qty = report.leaves_qty
        order.avg_px = report.avg_px
        order.tif = report.tif
        order.trigger_price = report.trigger_price
        order.triggered = report.triggered
        order.reduce_only = report.reduce_only
        if order.status in ("pending_cancel", "pending_replace") and report.exec_type in (
            "new",
            "trade",
        ):
            return  # still waiting for the answer to our cancel/amend
        order.status = "partially_filled" if report.status == "partially_filled" else "new"

    def cancel_reject(self, message: CancelReject) -> None:
        """Our cancel/amend was refused: the order is as it was (or gone, if done)."""
        key = self._key_of(message.order_id, message.client_order_id)
        if key is None:
            return
        if message.status is None or message.status in _DONE:
            del self.context.orders[key]
            return
        order = self.context.orders[key]
        order.status = "partially_filled" if order.cum_qty else "new"

    def error(self, message: Error) -> None:
        """A request was refused before reaching the book (``ref`` = our client order id):
        a pending new order it names is dropped, a pending cancel/amend is reverted."""
        if not isinstance(message.ref, str):
            return
        order = self.context.orders.get(message.ref)
        if order is None:
            return
        if order.status == "pending_new":
            del self.context.orders[message.ref]
        elif order.pending:
            order.status = "partially_filled" if order.cum_qty else "new"

    def orders(self, message: Orders) -> None:
        """The exchange's list of our live orders replaces ours (after a (re)login); orders
        in symbols this bot does not follow are left to whoever trades them."""
        fresh: dict[str, Order] = {}
        for info in message.orders:
            if info.symbol not in self.context.books:
                continue
            key = info.client_order_id or f"#{info.order_id}"
            fresh[key] = Order(
                client_order_id=info.client_order_id,
                order_id=info.order_id,
                symbol=info.symbol,
                side=info.side,
                order_type=info.order_type,
                price=info.price,
                qty=info.qty,
                cum_qty=info.cum_qty,
                leaves_qty=info.leaves_qty,
                avg_px=info.avg_px,
                tif=info.tif,
                post_only=info.post_only,
                status="partially_filled" if info.status == "partially_filled" else "new",
                trigger_price=info.trigger_price,
                triggered=info.triggered,
                reduce_only=info.reduce_only,
            )
        self.context.orders.clear()
        self.context.orders.update(fresh)

    def account(self, message: AccountUpdate | Account) -> bool:
        """Record our account; False if the message is about another account or older."""
        current = self.context.account_state
        if message.account != self.context.account:
            return False
        if current is not None and current.seq and message.seq and message.seq < current.seq:
            return False
        self.context.account_state = message
        return True

    def _find(self, order_id: int | None, client_order_id: str | None) -> Order | None:
        key = self._key_of(order_id, client_order_id)
        return self.context.orders.get(key) if key is not None else None

    def _key_of(self, order_id: int | None, client_order_id: str | None) -> str | None:
        orders = self.context.orders
        if client_order_id is not None and client_order_id in orders:
            return client_order_id
        if order_id is not None:
            if f"#{order_id}" in orders:
                return f"#{order_id}"
            for key, order in orders.items():
                if order.order_id == order_id:
                    return key
        return None
