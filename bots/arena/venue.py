"""The simulated venue: the matching core, the relay's and the gateway's routing, bots, and a
heap of timed events. Simulated time jumps from one event to the next; nothing sleeps.

What happens, and when (docs/arena.md, "Simulated time"):

- A bot's requests leave when its callback returns (with ``charge_compute``, after the wall
  time the callback took) and reach the core one latency later (``latency_ms`` plus a seeded
  uniform ``jitter_ms``). The core applies them at their arrival time, its ``ts``.
- What the core emits goes out at that instant: private messages by the gateway's rule
  (``exchange.protocol.internal.fans_out``: execution reports and account updates to their
  account's bot, ``cancel_reject``/``cancel_all_done``/``error`` only to the requester), and
  public ones through the relay's own logic (``marketdata.feed.MarketFeed``: depth-limited
  ``book_update``s chained by ``prev_seq``, fills stripped to ``trade``s). Each reaches its
  bot one latency later, as one batch per command batch.
- Every link (bot → venue, venue → bot) is FIFO like the TCP connection it stands for: a
  message never overtakes an earlier one on the same link (at worst it arrives 1 ns after).
- Events of different bots at the same instant run in a seeded random order, drawn per
  event: no bot is first because of its place in the list.
- The engine's timers: ``revalue`` every ``mark_interval_ms`` and ``advance_time`` at the
  first ``clock_interval_ms`` tick at or after a GTD deadline, as the engine submits them.
- A background replay (LOBSTER) injects its commands at their own timestamps, before bots'
  events due at the same instant.
"""

from __future__ import annotations

import heapq
import random
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, Protocol

from bots.api import Context, Strategy
from bots.driver import BotDriver
from exchange.core import CoreConfig, Exchange
from exchange.protocol.codec import marketdata_message_decoder
from exchange.protocol.config import AccountSpec, SystemConfig
from exchange.protocol.internal import EngineSnapshot, fans_out
from exchange.protocol.messages import (
    AccountUpdate,
    AdvanceTime,
    AuctionInfo,
    Bbo,
    BookDelta,
    CancelAll,
    CancelAllDone,
    CancelReject,
    Error,
    ExecutionReport,
    Fill,
    GetAccount,
    GetOrders,
    Limits,
    Liquidation,
    MarketStatus,
    Orders,
    Revalue,
    Subscribe,
    Unsubscribe,
)
from marketdata.feed import MarketFeed

NS = 1_000_000_000
DEPTH = 20
"""Book levels a bot subscribes to (the runner's default ``--depth``)."""

# event kinds on the heap
_TO_VENUE = 0
_TO_BOT = 1
_TIMER = 2
_SEND = 3
_REVALUE = 4
_ADVANCE = 5
_MARKET_DATA = True
_GATEWAY = False

_PRIVATE_TYPES = (ExecutionReport, AccountUpdate, CancelReject, CancelAllDone, Error)
_FANS_OUT: dict[type, bool] = {
    kind: fans_out(str(kind.__struct_config__.tag)) for kind in _PRIVATE_TYPES
}
"""Per private message type: does it go to every session of its account (the gateway's and
the engine publisher's rule) rather than only to the requester?"""
_PUBLIC_TYPES = frozenset({BookDelta, Bbo, Fill, Liquidation, MarketStatus, AuctionInfo})
"""Through the relay's feed (``instruments`` follow a ``market_status``; the bots do not
subscribe to ``status``, they hear ``market_status`` as the gateway broadcasts it)."""


class Background(Protocol):
    """Order flow the venue replays on its own clock (``bots.arena.lobster.LobsterReplay``)."""

    next_ns: int | None

    def seed(self, submit: Callable[[str, Any], None]) -> None: ...

    def step(self, submit: Callable[[str, Any], None]) -> None: ...

    def on_report(self, report: ExecutionReport) -> None: ...


class Recorder(Protocol):
    """What a round keeps of the venue's output (``bots.arena.scoring.RoundRecorder``)."""

    def fill(self, fill: Fill) -> None: ...

    def account_update(self, update: AccountUpdate) -> None: ...

    def liquidation(self, event: Liquidation) -> None: ...


@dataclass(eq=False)
class SimBot:
    """One bot in the venue: its driver, its links and what went wrong."""

    index: int
    name: str
    strategy: str
    account: str
    symbols: tuple[str, ...]
    driver: BotDriver
    jitter: random.Random
    errors: int = 0
    error_texts: list[str] = field(default_factory=list)
    crashed: bool = False
    failed: bool = False
    """An exception was raised in the callback running now (stop_on_error): crash after it."""
    link_out_ns: int = 0
    link_in_ns: int = 0
    ready_ns: int = 0
    send_pending: bool = False
    inbox: list[tuple[bool, Any]] = field(default_factory=list)


class Venue:
    """See the module docstring. Build it, ``add_bot`` each bot, ``start()``, then
    ``run_until(end_ns)`` (more than once if wanted)."""

    def __init__(
        self,
        system: SystemConfig,
        *,
        accounts: Sequence[AccountSpec],
        start_ns: int,
        seed: int,
        latency_ms: float = 1.0,
        jitter_ms: float = 0.0,
        stop_on_error: bool = True,
        charge_compute: bool = False,
        background: Background | None = None,
        recorder: Recorder | None = None,
        on_log: Callable[[str], None] | None = None,
        on_events: Callable[[list[Any]], None] | None = None,
    ) -> None:
        self.system = system
        self.core = Exchange(
            CoreConfig(
                instruments=system.instruments,
                accounts=list(accounts),
                max_open_orders=system.max_open_orders,
                insurance_account=system.insurance_account,
                insurance_fund_cash=system.insurance_fund_cash,
                done_order_memory=system.done_order_memory,
            )
        )
        self.limits = Limits(
            orders_per_second=system.gateway.orders_per_second,
            burst=system.gateway.burst,
            max_open_orders=system.max_open_orders,
        )
        self.feed: MarketFeed[int] = MarketFeed(self.core.instruments())
        self.start_ns = start_ns
        self.now_ns = start_ns
        self.latency_ns = round(latency_ms * 1_000_000)
        self.jitter_ns = round(jitter_ms * 1_000_000)
        self.stop_on_error = stop_on_error
        self.charge_compute = charge_compute
        self.background = background
        self.recorder = recorder
        self.on_log = on_log
        self.on_events = on_events
        """Sees every event the core emits, before it is routed (tests and tools)."""
        self.bots: list[SimBot] = []
        self.by_account: dict[str, SimBot] = {}
        self.background_accounts: frozenset[str] = frozenset()
        self.watched: frozenset[str] = frozenset()
        """Symbols some bot follows: only their public events go through the relay's feed
        (nobody could ever subscribe to the others: subscriptions are made at the start)."""
        self._order = random.Random(seed)
        """Draws the tie-break of each bot event: the seeded shuffle of simultaneous events."""
        self._heap: list[tuple[int, float, int, int, int, Any]] = []
        self._counter = 0
        self._touched: list[SimBot] = []
        self._advance_at: int | None = None
        engine = system.engine
        self._mark_ns = engine.mark_interval_ms * 1_000_000
        self._clock_ns = engine.clock_interval_ms * 1_000_000
        self._started = False
        self.commands = 0

    # ------------------------------------------------------------------ set-up

    def add_bot(
        self,
        name: str,
        strategy_name: str,
        strategy: Strategy[Any],
        account: str,
        symbols: Sequence[str],
        seed: int,
    ) -> SimBot:
        """A bot trading ``symbols`` on ``account`` (which the core must hold); its
        ``ctx.random`` and its jitter are seeded from ``seed``."""
        context = Context(account=account, symbols=list(symbols), rng=random.Random(seed))
        bot = SimBot(
            index=len(self.bots),
            name=name,
            strategy=strategy_name,
            account=account,
            symbols=tuple(symbols),
            driver=None,  # type: ignore[arg-type]
            jitter=random.Random(seed ^ 0x5EED),
        )
        bot.driver = BotDriver(
            strategy,
            context,
            client_order_prefix=f"{account[:12]}-",  # as bots.cli, less its random part
            on_error=lambda hook, exc: self._strategy_error(bot, hook, exc),
        )
        self.bots.append(bot)
        self.by_account[account] = bot
        return bot

    def start(self) -> None:
        """Seed the background, connect every bot (subscribed, logged in and synced at the
        start instant) and arm the timers."""
        if self._started:
            return
        self._started = True
        core, feed = self.core, self.feed
        feed.apply_snapshot(
            EngineSnapshot(
                seq=core.last_seq,
                ts=self.now_ns,
                instruments=core.instruments(),
                books=[],
                accounts=[],
            )
        )
        self.watched = frozenset(s for bot in self.bots for s in bot.symbols)
        if self.background is not None:
            self.background_accounts = frozenset(
                a.name for a in core.accounts() if a.name.startswith("lobster")
            )
            self.background.seed(self._submit_background)
            self._send_inboxes()
        now = self._seconds()
        for bot in self.bots:
            driver = bot.driver
            driver.context.now_ns = self.now_ns
            bot.ready_ns = bot.link_in_ns = bot.link_out_ns = self.now_ns
            feed.connect(bot.index)
            channels = ["instruments"]
            for symbol in bot.symbols:
                channels += [f"book.{symbol}", f"trades.{symbol}"]
            subscribe = Subscribe(channels=channels, depth=DEPTH, req_id="bot")
            for message in self._decoded(feed.handle(bot.index, subscribe, self.now_ns)):
                driver.market_data(message, now)
            for request in driver.login(self.limits, now):
                if isinstance(request, GetAccount):
                    driver.gateway(core.account_reply(bot.account), now)
                elif isinstance(request, GetOrders):
                    driver.gateway(Orders(orders=core.open_orders(bot.account)), now)
            if bot.failed:  # on_start raised
                self._crash(bot)
                continue
            interval = driver.strategy.timer_interval
            if interval:
                self._push(self.now_ns + round(interval * NS), _TIMER, bot.index, None)
            self._after_callback(bot, 0)
        if self._mark_ns > 0:
            self._push(self.now_ns + self._mark_ns, _REVALUE, -1, None, 0.0)
        self._schedule_advance()

    # ------------------------------------------------------------------ the loop

    def run_until(self, end_ns: int) -> None:
        """Process every event due up to ``end_ns`` (inclusive); ``now_ns`` ends there."""
        if not self._started:
            self.start()
        heap = self._heap
        background = self.background
        bots = self.bots
        pop = heapq.heappop
        while True:
            due = heap[0][0] if heap else None
            if background is not None:
                next_ns = background.next_ns
                if next_ns is not None and next_ns <= end_ns and (due is None or next_ns <= due):
                    if next_ns > self.now_ns:
                        self.now_ns = next_ns
                    background.step(self._submit_background)
                    self._send_inboxes()
                    self._schedule_advance()
                    continue
            if due is None or due > end_ns:
                break
            when, _, _, kind, index, payload = pop(heap)
            self.now_ns = when
            if kind == _TO_BOT:
                self._deliver(bots[index], payload)
            elif kind == _TO_VENUE:
                self._execute(bots[index], payload)
            elif kind == _TIMER:
                self._timer(bots[index])
            elif kind == _SEND:
                bot = bots[index]
                bot.send_pending = False
                if not bot.crashed:
                    self._after_callback(bot, 0)
            elif kind == _REVALUE:
                self._submit_timer(Revalue())
                self._push(when + self._mark_ns, _REVALUE, -1, None, 0.0)
            elif kind == _ADVANCE and self._advance_at == when:
                self._advance_at = None
                deadline = self.core.next_deadline()
                if deadline is not None and deadline <= when:
                    self._submit_timer(AdvanceTime())
                self._schedule_advance()
        self.now_ns = max(self.now_ns, end_ns)

    def finish(self) -> None:
        """A last mark to market at ``now_ns`` (the round's final equities)."""
        self._submit_timer(Revalue())

    # ------------------------------------------------------------------ venue side

    def _execute(self, bot: SimBot, requests: list[Any]) -> None:
        """A batch of ``bot``'s requests reaches the core (even from a crashed bot: its
        last requests and the cancel of its orders are still on the wire)."""
        core, account, now = self.core, bot.account, self.now_ns
        for request in requests:
            kind = type(request)
            if kind is GetAccount:
                self._to(bot, _GATEWAY, core.account_reply(account, request.req_id))
            elif kind is GetOrders:
                orders = core.open_orders(account, request.symbol)
                self._to(bot, _GATEWAY, Orders(orders=orders, req_id=request.req_id))
            else:
                self.commands += 1
                self._route(core.submit(account, request, now), bot)
        self._send_inboxes()
        self._schedule_advance()

    def _submit_background(self, account: str, command: Any) -> None:
        self.commands += 1
        self._route(self.core.submit(account, command, self.now_ns), None)

    def _submit_timer(self, command: Any) -> None:
        self._route(self.core.submit("", command, self.now_ns), None)
        self._send_inboxes()

    def _route(self, events: list[Any], requester: SimBot | None) -> None:
        """Private events to their bot (the gateway's rule), public ones through the relay's
        feed to its subscribers; the recorder sees fills, account updates, liquidations."""
        if not events:
            return
        if self.on_events is not None:
            self.on_events(events)
        recorder = self.recorder
        background = self.background
        by_account = self.by_account
        fans = _FANS_OUT
        public: list[Any] | None = None
        for event in events:
            kind = type(event)
            fan = fans.get(kind)
            if fan is None:  # public
                if kind is MarketStatus:  # the gateway broadcasts it to every session (§3.2)
                    for bot in self.bots:
                        self._to(bot, _GATEWAY, event)
                if kind is Fill:
                    if recorder is not None:
                        recorder.fill(event)
                elif kind is Liquidation and recorder is not None:
                    recorder.liquidation(event)
                if event.symbol in self.watched and kind in _PUBLIC_TYPES:
                    if public is None:
                        public = []
                    public.append(event)
            elif fan:
                owner = by_account.get(event.account)
                if owner is not None:
                    self._to(owner, _GATEWAY, event)
                    if kind is AccountUpdate and recorder is not None:
                        recorder.account_update(event)
                elif (
                    kind is ExecutionReport
                    and background is not None
                    and event.account in self.background_accounts
                ):
                    background.on_report(event)
            elif requester is not None:
                self._to(requester, _GATEWAY, event)
        if public is not None:
            self._publish(self.feed.apply_events(public))

    def _publish(self, outgoing: list[tuple[Any, bytes, str]]) -> None:
        bots = self.bots
        decode = marketdata_message_decoder.decode_one
        for audience, frame, _kind in outgoing:
            if not audience:
                continue
            message = decode(frame)
            for index in sorted(audience):
                self._to(bots[index], _MARKET_DATA, message)

    def _decoded(self, outgoing: list[tuple[Any, bytes, str]]) -> list[Any]:
        return [marketdata_message_decoder.decode_one(frame) for _, frame, _ in outgoing]

    def _to(self, bot: SimBot, channel: bool, message: Any) -> None:
        if bot.crashed:
            return
        if not bot.inbox:
            self._touched.append(bot)
        bot.inbox.append((channel, message))

    def _send_inboxes(self) -> None:
        """Everything routed since the last call leaves now, one batch per bot."""
        if not self._touched:
            return
        now = self.now_ns
        for bot in self._touched:
            arrival = now + self._delay(bot)
            if arrival <= bot.link_in_ns:
                arrival = bot.link_in_ns + 1
            bot.link_in_ns = arrival
            self._push(arrival, _TO_BOT, bot.index, bot.inbox)
            bot.inbox = []
        self._touched = []

    def _schedule_advance(self) -> None:
        """Arm ``advance_time`` for the engine's first clock tick at or after the earliest
        GTD deadline (ticks every ``clock_interval_ms`` from the start, as the engine's)."""
        if self._clock_ns <= 0:
            return
        deadline = self.core.next_deadline()
        if deadline is None:
            return
        ticks = -(-(max(deadline, self.now_ns) - self.start_ns) // self._clock_ns)
        when = self.start_ns + ticks * self._clock_ns
        if self._advance_at is None or when < self._advance_at:
            self._advance_at = when
            self._push(when, _ADVANCE, -1, None, 0.0)

    # ------------------------------------------------------------------ bot side

    def _deliver(self, bot: SimBot, messages: list[tuple[bool, Any]]) -> None:
        if bot.crashed:
            return
        driver = bot.driver
        now = self._seconds()
        started = perf_counter() if self.charge_compute else 0.0
        resubscribe: list[str] = []
        for channel, message in messages:
            if channel:
                resubscribe += driver.market_data(message, now)
            else:
                driver.gateway(message, now)
            if bot.failed:
                break
        if bot.failed:
            self._crash(bot)
            return
        if resubscribe:
            self._resubscribe(bot, resubscribe)
        spent = round((perf_counter() - started) * NS) if self.charge_compute else 0
        self._after_callback(bot, spent)

    def _timer(self, bot: SimBot) -> None:
        if bot.crashed:
            return
        driver = bot.driver
        context = driver.context
        if context.now_ns < self.now_ns:
            context.now_ns = self.now_ns
        started = perf_counter() if self.charge_compute else 0.0
        driver.timer(self._seconds())
        if bot.failed:
            self._crash(bot)
            return
        spent = round((perf_counter() - started) * NS) if self.charge_compute else 0
        interval = driver.strategy.timer_interval or 1.0
        self._push(self.now_ns + round(interval * NS), _TIMER, bot.index, None)
        self._after_callback(bot, spent)

    def _after_callback(self, bot: SimBot, spent_ns: int) -> None:
        """Send what the bot's driver lets out now (after ``spent_ns`` of charged compute),
        and wake it when its rate limit lets more out."""
        depart = self.now_ns
        if spent_ns or bot.ready_ns > depart:
            bot.ready_ns = max(bot.ready_ns, depart) + spent_ns
            depart = bot.ready_ns
        driver = bot.driver
        seconds = (depart - self.start_ns) / NS
        requests = driver.take_requests(seconds)
        if requests:
            arrival = depart + self._delay(bot)
            if arrival <= bot.link_out_ns:
                arrival = bot.link_out_ns + 1
            bot.link_out_ns = arrival
            self._push(arrival, _TO_VENUE, bot.index, requests)
        if not bot.send_pending:
            wait = driver.send_delay(seconds)
            if wait is not None:
                bot.send_pending = True
                self._push(depart + max(1, round(wait * NS)), _SEND, bot.index, None)

    def _resubscribe(self, bot: SimBot, symbols: list[str]) -> None:
        """A broken ``prev_seq`` chain: unsubscribe and subscribe the book again, as the
        runner does (the relay answers after the usual latency)."""
        channels = [f"book.{s}" for s in symbols]
        feed = self.feed
        feed.handle(bot.index, Unsubscribe(channels=channels), self.now_ns)
        for message in self._decoded(
            feed.handle(bot.index, Subscribe(channels=channels, depth=DEPTH), self.now_ns)
        ):
            self._to(bot, _MARKET_DATA, message)
        self._send_inboxes()

    def _strategy_error(self, bot: SimBot, hook: str, exc: BaseException) -> None:
        bot.errors += 1
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
        text = f"bot {bot.name}: {hook} raised {type(exc).__name__}: {exc}{where}"
        bot.error_texts.append(text)
        if self.on_log is not None and len(bot.error_texts) <= 3:
            self.on_log(text)
        if self.stop_on_error:
            bot.failed = True

    def _crash(self, bot: SimBot) -> None:
        """The bot stops (stop_on_error): it gets nothing more, and its orders are cancelled
        as its disconnect reaches the venue (after what it already sent)."""
        bot.crashed = True
        bot.inbox = []
        if self.on_log is not None:
            self.on_log(f"bot {bot.name}: crashed; its orders are cancelled")
        arrival = max(self.now_ns + self._delay(bot), bot.link_out_ns + 1)
        bot.link_out_ns = arrival
        self._push(arrival, _TO_VENUE, bot.index, [CancelAll(req_id="crashed")])

    # ------------------------------------------------------------------ helpers

    def _delay(self, bot: SimBot) -> int:
        if self.jitter_ns:
            return self.latency_ns + bot.jitter.randrange(self.jitter_ns + 1)
        return self.latency_ns

    def _seconds(self) -> float:
        """The bots' clock for rate limiting: seconds since the start."""
        return (self.now_ns - self.start_ns) / NS

    def _push(self, when: int, kind: int, index: int, payload: Any, order: float = -1.0) -> None:
        self._counter += 1
        tie = self._order.random() if order < 0 else order
        heapq.heappush(self._heap, (when, tie, self._counter, kind, index, payload))
