"""Drives one strategy: messages in, wire requests out, time passed in. No I/O.

``BotDriver`` is the sans-I/O heart of a bot (the runner is a thin socket shell around it):

- ``market_data(msg, now)`` / ``gateway(msg, now)`` apply a message to the ``BotState``
  and call the strategy's hooks, then ``next_order``; the intents become wire requests in
  an outbox. ``market_data`` returns the symbols whose book must be resubscribed.
- ``take_requests(now)`` hands out the requests the token bucket allows (below the
  account's limits); ``send_delay(now)`` says when to ask again.
- a ``market_status`` (from either connection) that changes a symbol's status runs
  ``on_status``; new orders the exchange would refuse for the status (any while ``halted``;
  market, IOC and FOK while in ``auction``) are dropped here and counted
  (``dropped_market_halted``), as orders over ``max_open_orders`` are.
- ``timer(now)`` runs ``on_timer``; ``stop_requests()`` runs ``on_stop`` and returns the
  remaining requests plus a ``cancel_all``.

A strategy exception never escapes: it is passed to ``on_error`` and the call is skipped.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from bots.api import NEWS_HISTORY, Context, Intents, Strategy, as_intents
from bots.state import BotState, OrderRequest
from exchange.protocol.messages import (
    Account,
    AccountUpdate,
    AuctionInfo,
    BookSnapshot,
    BookUpdate,
    CancelAll,
    CancelAllDone,
    CancelReject,
    Error,
    ExecutionReport,
    GetAccount,
    GetOrders,
    Instruments,
    Limits,
    MarketStatus,
    NewOrder,
    News,
    Orders,
    RoundStarted,
    Trade,
)
from exchange.protocol.ratelimit import TokenBucket

ErrorSink = Callable[[str, BaseException], None]

RATE_SHARE = 0.8
"""Fraction of the account's ``orders_per_second`` a bot allows itself."""


class BotDriver:
    """See the module docstring. ``max_rate`` caps the bot's own requests per second."""

    def __init__(
        self,
        strategy: Strategy[Any],
        context: Context,
        *,
        client_order_prefix: str,
        max_rate: float | None = None,
        on_error: ErrorSink | None = None,
    ) -> None:
        self.strategy = strategy
        self.context = context
        self.state = BotState(context)
        self.prefix = client_order_prefix
        self.max_rate = max_rate
        self.on_error = on_error
        self.started = False
        self.logged_in = False
        self.outbox: deque[OrderRequest] = deque()
        self.bucket: TokenBucket | None = None
        self.stats: Counter[str] = Counter()
        self._next_id = 0
        self._stopping = False

    # ------------------------------------------------------------------ session

    def login(self, limits: Limits, now: float) -> list[GetAccount | GetOrders]:
        """Logged in (again): set the rate limit; returns the requests that resync our
        account and orders (send them at once, they do not count against the bucket)."""
        self.context.limits = limits
        rate = limits.orders_per_second * RATE_SHARE
        if self.max_rate is not None:
            rate = min(rate, self.max_rate)
        rate = max(rate, 0.1)
        burst = max(1.0, min(limits.burst * RATE_SHARE / 2, max(rate, 1.0)))
        self.bucket = TokenBucket(rate, burst, now)
        self.logged_in = True
        self.outbox.clear()
        return [GetAccount(), GetOrders()]

    def gateway_lost(self) -> None:
        """The gateway connection dropped: nothing can be sent; pending requests are void
        (the ``orders`` answer after the next login says what really happened)."""
        self.logged_in = False
        self.outbox.clear()

    def market_data_lost(self) -> None:
        self.state.market_data_lost()

    @property
    def active(self) -> bool:
        """Whether the strategy is consulted: started, logged in, books in sync."""
        return self.started and self.logged_in and self.state.books_synced

    # ------------------------------------------------------------------ inbound

    def market_data(self, message: Any, now: float) -> list[str]:
        """Apply a relay message; returns symbols to resubscribe (their book is stale)."""
        match message:
            case BookUpdate():
                book = self.state.book_update(message)
                if book is not None:
                    self._dispatch("on_book", book)
            case BookSnapshot():
                book = self.state.book_snapshot(message)
                if book is not None:
                    self._dispatch("on_book", book)
            case Trade():
                if self.state.trade(message):
                    self._dispatch("on_trade", message)
            case Instruments():
                self.state.instruments(message)
                self._maybe_start()
            case MarketStatus():
                self._market_status(message)
            case AuctionInfo():
                self.state.auction(message)
        resubscribe = self.state.take_resubscribe()
        self.stats["resubscribes"] += len(resubscribe)
        return resubscribe

    def gateway(self, message: Any, now: float) -> None:
        """Apply an order-entry message (execution reports, account, errors...)."""
        match message:
            case ExecutionReport():
                if message.account and message.account != self.context.account:
                    return
                self.state.execution(message)
                self.stats[f"exec_{message.exec_type}"] += 1
                if message.exec_type == "rejected":
                    self.stats[f"reject_{message.reject_reason}"] += 1
                    self._maybe_pause(message.reject_reason, message.retry_after_ms, now)
                if self.started and self.logged_in:
                    self._call("on_execution", message)
                    self._decide()
            case AccountUpdate() | Account():
                if self.state.account(message) and self.started and self.logged_in:
                    self._call("on_account", message)
                    self._decide()
                self._maybe_start()
            case CancelReject():
                self.state.cancel_reject(message)
                self.stats[f"cancel_reject_{message.reject_reason}"] += 1
            case Orders():
                self.state.orders(message)
                self._maybe_start()
            case Error():
                self.state.error(message)
                self.stats[f"error_{message.code}"] += 1
                self._maybe_pause(message.code, message.retry_after_ms, now)
            case CancelAllDone():
                self.stats["cancel_all_done"] += 1
            case News():
                news = self.context.news
                news.append(message)
                del news[:-NEWS_HISTORY]
                self.stats["news"] += 1
                if self.started and self.logged_in:
                    self._call("on_news", message)
                    self._decide()
            case MarketStatus():
                self._market_status(message)
            case RoundStarted():
                self.context.round = message.round
                self.stats["rounds"] += 1
                if self.started and self.logged_in:
                    self._call("on_round", message)
                    self._decide()

    def _market_status(self, message: MarketStatus) -> None:
        if not self.state.market_status(message):
            return
        self.stats["status_changes"] += 1
        if self.started and self.logged_in:
            self._call("on_status", message)
            self._decide()

    def timer(self, now: float) -> None:
        """A tick of the strategy's timer (every ``strategy.timer_interval`` seconds)."""
        if self.active:
            self._call("on_timer")
            self._decide()

    # ------------------------------------------------------------------ outbound

    def take_requests(self, now: float) -> list[OrderRequest]:
        """The requests the rate limit lets out now, in order (may be empty)."""
        out: list[OrderRequest] = []
        if not self.logged_in or self.bucket is None:
            return out
        while self.outbox and self.bucket.try_take(now):
            out.append(self.outbox.popleft())
        self.stats["requests_sent"] += len(out)
        return out

    def send_delay(self, now: float) -> float | None:
        """Seconds until more requests may go out; None when the outbox is empty."""
        if not self.outbox or self.bucket is None or not self.logged_in:
            return None
        return self.bucket.wait_time(now)

    def stop_requests(self) -> list[OrderRequest]:
        """Shut down: ``on_stop``'s intents, everything still queued, then one
        ``cancel_all`` per symbol (``req_id`` ``stop-<symbol>``; other bots may share the
        account on other symbols)."""
        self._stopping = True
        if self.started and self.logged_in:
            self._call("on_stop")
        out = list(self.outbox)
        self.outbox.clear()
        out.extend(CancelAll(symbol=s, req_id=f"stop-{s}") for s in self.context.symbols)
        return out

    # ------------------------------------------------------------------ internals

    def _maybe_start(self) -> None:
        if self.started or not self.logged_in or not self.state.books_synced:
            return
        if any(s not in self.context.instruments for s in self.context.symbols):
            return
        if self.context.account_state is None:
            return
        self.started = True
        self._call("on_start")
        self._decide()

    def _maybe_pause(self, reason: str | None, retry_after_ms: int | None, now: float) -> None:
        if reason == "rate_limited" and self.bucket is not None:
            self.bucket.pause(now, (retry_after_ms or 1000) / 1000)

    def _dispatch(self, hook: str, *args: Any) -> None:
        if self.active:
            self._call(hook, *args)
            self._decide()
        else:
            self._maybe_start()

    def _decide(self) -> None:
        if self.active and not self.outbox:
            self._call("next_order")

    def _call(self, hook: str, *args: Any) -> None:
        if self._stopping and hook != "on_stop":
            return
        try:
            result: Intents = getattr(self.strategy, hook)(self.context, *args)
            intents = as_intents(result)
        except Exception as exc:
            self.stats["strategy_errors"] += 1
            if self.on_error is not None:
                self.on_error(hook, exc)
            return
        self._enqueue(intents)

    def _enqueue(self, intents: Any) -> None:
        limits = self.context.limits
        for intent in intents or ():
            self._next_id += 1
            request = self.state.request_for(intent, f"{self.prefix}{self._next_id}")
            if request is None:
                self.stats["intents_ignored"] += 1
                continue
            if isinstance(request, NewOrder) and _refused_for_status(
                request, self.context.status(request.symbol)
            ):
                self.context.orders.pop(request.client_order_id or "", None)
                self.stats["dropped_market_halted"] += 1
                continue
            if (
                isinstance(request, NewOrder)
                and limits is not None
                and len(self.context.orders) > limits.max_open_orders
            ):
                # the exchange would refuse it: drop it here, and forget it in the context
                self.context.orders.pop(request.client_order_id or "", None)
                self.stats["dropped_max_open_orders"] += 1
                continue
            self.outbox.append(request)


def _refused_for_status(order: NewOrder, status: str) -> bool:
    """Whether the exchange would reject ``order`` ``market_halted`` (PROTOCOL §3.2)."""
    if status == "halted":
        return True
    if status == "auction":
        return order.order_type == "market" or order.tif in ("ioc", "fok")
    return False
