"""Real NASDAQ order flow (LOBSTER samples, 2012-06-21) replayed into the core as an outside oracle.

The rules follow ``shared/data/README.md``: seed the book from orderbook row 0 (one order per
level from a ``seed`` account), replay messages 1..N-1 and compare the core's ladder with the
orderbook file after every message:

- type 1: a new GTC limit order from account ``lp`` (LOBSTER ids are mapped to core ids);
- type 2: partial cancel, an ``amend_order`` lowering qty (keeps time priority);
- type 3: delete, a ``cancel_order``;
  (for ids the window never introduced, types 2 and 3 reduce the seed order at that price)
- type 4: execution of a visible resting order, re-enacted by an IOC limit order from account
  ``taker`` at that price and size on the opposite side; it must fill exactly that size, and
  when the file names an order we placed, we record whether our maker was that very order;
- types 5, 6, 7: no book change.

Prices are USD × 10,000; the instrument has tick 0.01 (1 tick = 100 file units), no price band,
no fees, and limits so large that no risk check can interfere.

The revealed-level rule: a level-L file only carries events that touched the top L levels, so
when a shown level empties and a price that was not shown comes into view at level L, its size
comes from the orderbook file. We then drop our stale levels in the gap above it, cancel what
we hold at that price (the LOBSTER ids of those orders become unknown) and rest one seed order
of the file's size there.

What the data allows us to assert (measured, see each test):

- AAPL, top 10 with the rule: every row matches, and every execution that names an order we
  placed trades against exactly that order.
- AAPL, top 5 with no outside information: exact until row 155, where a level that the file
  revealed at level 10 (row 146: 50 shares at 585.40 that no message ever introduced) has moved
  up into the top 5. The README's claim that no outside information is needed does not hold
  for this file; the test asserts that the first mismatch is exactly the first row in which a
  revealed level is in the compared depth, and that nothing else diverges before it.
- AMZN, level 1 with the rule: 2,364 type-4 messages share their timestamp with the one before
  (one aggressive order sweeping several makers). Inside such a sweep NASDAQ's messages are not
  always in queue order (rows 1946-1947, 3172-3173, 25610-25611, 38825-38826 name the later
  order first), so time priority is checked per sweep: the quantities taken from each named
  order (and from unknown liquidity) must match. One episode in the data contradicts FIFO
  outright: at row 56079 the file reveals 124 shares at 2208.10, at row 56082 order 284135299
  joins that level, and rows 56083-56085 (three separate timestamps) execute 284135299 while the
  124 earlier shares stay untouched until at least row 56091. A FIFO book must fill the 124
  first, so those three sweeps hit our seed order and rows 56088-56091 (the delete of
  284135299 and the three messages after it) differ in the best ask size until the level
  resyncs. Those exact rows are the only tolerated exceptions.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from exchange.core import AccountSpec, CoreConfig, Exchange, InstrumentSpec
from exchange.protocol.messages import (
    AmendOrder,
    CancelOrder,
    ExecutionReport,
    Fill,
    NewOrder,
)
from tests.support import SHARED_DATA

LOBSTER = SHARED_DATA / "lobster"
AAPL_MESSAGES = LOBSTER / "AAPL_2012-06-21_34200000_57600000_message_10.csv"
AAPL_BOOK = LOBSTER / "AAPL_2012-06-21_34200000_57600000_orderbook_10.csv"
AMZN_MESSAGES = LOBSTER / "AMZN_2012-06-21_34200000_57600000_message_1.csv"
AMZN_BOOK = LOBSTER / "AMZN_2012-06-21_34200000_57600000_orderbook_1.csv"

pytestmark = pytest.mark.skipif(
    not LOBSTER.is_dir(), reason=f"LOBSTER sample data not found at {LOBSTER}"
)

UNITS_PER_TICK = 100  # file prices are USD x 10,000; the tick is 0.01 USD
EMPTY_ASK = 9_999_999_999
HUGE = 10**12
TERMINAL = frozenset({"filled", "canceled", "expired", "rejected"})

AMZN_FIFO_VIOLATION_SWEEPS = [56083, 56084, 56085]
"""First rows of the AMZN sweeps where NASDAQ filled a newer order ahead of older liquidity."""
AMZN_FIFO_VIOLATION_ROWS = [56088, 56089, 56090, 56091]
"""The AMZN rows whose best ask size differs as a consequence, until the level resyncs."""

Ladder = list[tuple[int, int]]  # (ticks, qty), best first


@dataclass(frozen=True, slots=True)
class Message:
    """One row of a LOBSTER message file (price already in ticks)."""

    time: str  # seconds after midnight, as written (executions of one sweep share it)
    kind: int
    order_id: int
    size: int
    ticks: int
    is_buy: bool  # side of the resting order the message is about


def load_messages(path: Path) -> list[Message]:
    rows = []
    with path.open(newline="") as handle:
        for row in csv.reader(handle):
            rows.append(
                Message(
                    time=row[0],
                    kind=int(row[1]),
                    order_id=int(row[2]),
                    size=int(row[3]),
                    # hidden executions (type 5) may print at half ticks; they are never replayed
                    ticks=int(row[4]) // UNITS_PER_TICK,
                    is_buy=row[5] == "1",
                )
            )
    return rows


def load_books(path: Path) -> list[tuple[Ladder, Ladder]]:
    """Each orderbook row as ``(bids, asks)``, best first, empty levels left out."""
    rows = []
    with path.open(newline="") as handle:
        for row in csv.reader(handle):
            values = [int(v) for v in row]
            bids: Ladder = []
            asks: Ladder = []
            for i in range(0, len(values), 4):
                ask_px, ask_qty, bid_px, bid_qty = values[i : i + 4]
                if ask_qty and ask_px != EMPTY_ASK:
                    asks.append((ask_px // UNITS_PER_TICK, ask_qty))
                if bid_qty and bid_px != -EMPTY_ASK:
                    bids.append((bid_px // UNITS_PER_TICK, bid_qty))
            rows.append((bids, asks))
    return rows


def revealed_levels(
    messages: list[Message], books: list[tuple[Ladder, Ladder]], row: int, levels: int
) -> list[tuple[bool, int, int]]:
    """``(is_buy, ticks, qty)`` of each level that came into view at level ``levels`` with
    message ``row`` without that message having put it there (sizes the messages never
    carried)."""
    found = []
    msg = messages[row]
    for side_index, is_buy in ((0, True), (1, False)):
        shown = books[row][side_index]
        if len(shown) < levels:
            continue
        ticks, qty = shown[levels - 1]
        if any(p == ticks for p, _ in books[row - 1][side_index]):
            continue
        if msg.kind == 1 and msg.is_buy == is_buy and msg.ticks == ticks:
            continue
        found.append((is_buy, ticks, qty))
    return found


def first_row_needing_revealed_level(
    messages: list[Message], books: list[tuple[Ladder, Ladder]], levels: int, depth: int
) -> int | None:
    """The first row whose top ``depth`` levels hold a level that came into view at level
    ``levels`` with a size the file had not shown for that price before (and stayed in view
    since): from there on a replay without outside information must differ."""
    revealed: set[tuple[bool, int]] = set()
    last_shown: dict[tuple[bool, int], int] = {}
    for row in range(len(messages)):
        bids, asks = books[row]
        if row:
            for is_buy, ticks, qty in revealed_levels(messages, books, row, levels):
                if last_shown.get((is_buy, ticks)) != qty:
                    revealed.add((is_buy, ticks))
        shown = {(True, p): q for p, q in bids} | {(False, p): q for p, q in asks}
        last_shown.update(shown)
        revealed &= shown.keys()
        top = {(True, p) for p, _ in bids[:depth]} | {(False, p) for p, _ in asks[:depth]}
        if revealed & top:
            return row
    return None


@dataclass(frozen=True, slots=True)
class Execution:
    """One type-4 message as replayed: ``named`` and each fill's maker are our order id when the
    order is one we placed for a known LOBSTER id, None for seed (unknown) liquidity."""

    row: int
    time: str
    named: int | None
    size: int
    fills: tuple[tuple[int | None, int], ...]


@dataclass
class ReplayResult:
    """What a replay observed. ``mismatches`` holds (row, ours, file) for every differing row."""

    rows: int = 0
    mismatches: list[tuple[int, Any, Any]] = field(default_factory=list)
    executions: list[Execution] = field(default_factory=list)
    seed_shortfalls: list[int] = field(default_factory=list)  # rows: seed ran out on a reduce
    reveals: int = 0

    def short_fills(self) -> list[Execution]:
        return [e for e in self.executions if sum(q for _, q in e.fills) != e.size]

    def named_known(self) -> list[Execution]:
        return [e for e in self.executions if e.named is not None]

    def wrong_makers(self) -> list[Execution]:
        """Executions naming an order we placed whose fills came from any other order."""
        return [e for e in self.named_known() if any(m != e.named for m, _ in e.fills)]

    def sweeps(self) -> list[list[Execution]]:
        """Executions grouped into sweeps: consecutive type-4 rows with the same timestamp."""
        groups: list[list[Execution]] = []
        for execution in self.executions:
            last = groups[-1][-1] if groups else None
            if last is not None and last.row == execution.row - 1 and last.time == execution.time:
                groups[-1].append(execution)
            else:
                groups.append([execution])
        return groups

    def wrong_sweeps(self) -> list[int]:
        """First rows of sweeps where the quantity taken from each named order (None: unknown
        liquidity) differs from the quantity our fills took from it."""
        wrong = []
        for sweep in self.sweeps():
            named: Counter[int | None] = Counter()
            taken: Counter[int | None] = Counter()
            for execution in sweep:
                named[execution.named] += execution.size
                for maker, qty in execution.fills:
                    taken[maker] += qty
            if named != taken:
                wrong.append(sweep[0].row)
        return wrong

    def describe(self) -> str:
        first = "\n".join(
            f"  row {row}: ours {ours} file {want}" for row, ours, want in self.mismatches[:3]
        )
        return (
            f"{len(self.mismatches)} of {self.rows} rows differ "
            f"{[row for row, _, _ in self.mismatches[:20]]}; "
            f"short fills {self.short_fills()[:3]}; wrong makers {self.wrong_makers()[:3]}\n"
            f"{first}"
        )


class LobsterReplay:
    """Drives one core with one LOBSTER message file and checks it against the orderbook file."""

    def __init__(self, messages: list[Message], books: list[tuple[Ladder, Ladder]]) -> None:
        assert len(messages) == len(books)
        self.messages = messages
        self.books = books
        bids, asks = books[0]
        self.symbol = "LOB"
        self.ex = Exchange(
            CoreConfig(
                instruments=[
                    InstrumentSpec(
                        symbol=self.symbol,
                        tick_size=0.01,
                        reference_price=(bids[0][0] + asks[0][0]) // 2 / 100,
                        price_band=0.0,
                        max_order_qty=HUGE,
                        max_position=HUGE,
                    )
                ],
                accounts=[
                    AccountSpec(name=name, cash=1e13, max_open_orders=10**9)
                    for name in ("seed", "lp", "taker")
                ],
                max_open_orders=10**9,
            )
        )
        self.ts = 0
        self.live: dict[int, int] = {}  # LOBSTER id -> our live order id
        self.named: dict[int, int] = {}  # LOBSTER id -> our order id, kept after it finishes
        self.seed: dict[tuple[bool, int], int] = {}  # (is_buy, ticks) -> live seed order id
        self.seed_ids: set[int] = set()
        self.at_price: dict[tuple[bool, int], dict[int, int | None]] = {}  # id -> LOBSTER id
        self.where: dict[int, tuple[bool, int]] = {}
        self.result = ReplayResult()

    # ------------------------------------------------------------------ driving the core

    def send(self, account: str, command: Any) -> list[Any]:
        self.ts += 1
        events = self.ex.submit(account, command, self.ts)
        for event in events:
            if (
                type(event) is ExecutionReport
                and event.order_id is not None
                and event.status in TERMINAL
            ):
                self._forget(event.order_id)
        return events

    def _forget(self, order_id: int) -> None:
        key = self.where.pop(order_id, None)
        if key is None:
            return
        lobster = self.at_price[key].pop(order_id)
        if lobster is not None:
            del self.live[lobster]
        if self.seed.get(key) == order_id:
            del self.seed[key]

    def place(self, account: str, is_buy: bool, ticks: int, qty: int, lobster: int | None) -> int:
        events = self.send(
            account,
            NewOrder(
                symbol=self.symbol, side="buy" if is_buy else "sell", qty=qty, price=ticks / 100
            ),
        )
        new = events[0]
        assert type(new) is ExecutionReport and new.exec_type == "new", events
        assert not any(type(e) is Fill for e in events), f"a passive order traded: {events}"
        order_id = new.order_id
        assert order_id is not None
        key = (is_buy, ticks)
        self.where[order_id] = key
        self.at_price.setdefault(key, {})[order_id] = lobster
        if lobster is not None:
            self.live[lobster] = order_id
            self.named[lobster] = order_id
        return order_id

    def add_seed(self, is_buy: bool, ticks: int, qty: int) -> None:
        order_id = self.place("seed", is_buy, ticks, qty, None)
        self.seed[(is_buy, ticks)] = order_id
        self.seed_ids.add(order_id)

    def cancel(self, account: str, order_id: int) -> None:
        events = self.send(account, CancelOrder(order_id=order_id))
        kinds = [e.exec_type for e in events if type(e) is ExecutionReport]
        assert kinds == ["canceled"], events

    def reduce(self, account: str, order_id: int, by: int) -> int:
        """Lower a live order's leaves by up to ``by``; returns how much was removed."""
        info = self.ex.order_info(order_id)
        assert info is not None, order_id
        if by >= info.leaves_qty:
            self.cancel(account, order_id)
            return info.leaves_qty
        events = self.send(account, AmendOrder(order_id=order_id, qty=info.qty - by))
        report = events[0]
        assert type(report) is ExecutionReport and report.exec_type == "replaced", events
        assert (report.order_id, report.leaves_qty) == (order_id, info.leaves_qty - by)
        return by

    def drop_price(self, is_buy: bool, ticks: int) -> None:
        """Cancel every order we hold at one price; their LOBSTER ids become unknown."""
        for order_id, lobster in list(self.at_price.get((is_buy, ticks), {}).items()):
            if lobster is not None:
                del self.named[lobster]
            self.cancel("seed" if order_id in self.seed_ids else "lp", order_id)

    # ------------------------------------------------------------------ one message

    def apply(self, row: int, msg: Message) -> None:
        kind = msg.kind
        if kind == 1:
            self.place("lp", msg.is_buy, msg.ticks, msg.size, msg.order_id)
        elif kind in (2, 3):
            order_id = self.live.get(msg.order_id)
            if order_id is None:
                seed = self.seed.get((msg.is_buy, msg.ticks))
                removed = self.reduce("seed", seed, msg.size) if seed is not None else 0
                if removed < msg.size:
                    self.result.seed_shortfalls.append(row)
            elif kind == 3:
                self.cancel("lp", order_id)
            else:
                self.reduce("lp", order_id, msg.size)
        elif kind == 4:
            named = self.named.get(msg.order_id)
            events = self.send(
                "taker",
                NewOrder(
                    symbol=self.symbol,
                    side="sell" if msg.is_buy else "buy",
                    qty=msg.size,
                    price=msg.ticks / 100,
                    tif="ioc",
                ),
            )
            fills = tuple(
                (None if maker in self.seed_ids else maker, f.qty)
                for f in events
                if type(f) is Fill
                for maker in (f.buy_order_id if msg.is_buy else f.sell_order_id,)
            )
            self.result.executions.append(Execution(row, msg.time, named, msg.size, fills))

    def reveal(self, row: int, levels: int) -> None:
        """Apply the revealed-level rule after message ``row``."""
        for is_buy, ticks, qty in revealed_levels(self.messages, self.books, row, levels):
            self.result.reveals += 1
            shown = self.books[row][0 if is_buy else 1]
            inner = shown[levels - 2][0] if levels > 1 else None
            book = self.ex.book(self.symbol)
            assert book is not None
            for price, _ in book.depth()[0 if is_buy else 1]:
                better = price > ticks if is_buy else price < ticks
                below_inner = inner is None or (price < inner if is_buy else price > inner)
                if better and below_inner:
                    self.drop_price(is_buy, price)  # stale: gone while out of view
            self.drop_price(is_buy, ticks)
            self.add_seed(is_buy, ticks, qty)

    # ------------------------------------------------------------------ the whole file

    def run(self, compare_depth: int, reveal_levels: int | None = None) -> ReplayResult:
        """Seed from row 0, replay every later message, compare ``compare_depth`` levels per row.

        ``reveal_levels``: the file's depth L, to apply the revealed-level rule; None for a
        replay that uses nothing but row 0 and the messages.
        """
        bids, asks = self.books[0]
        for ticks, qty in bids:
            self.add_seed(True, ticks, qty)
        for ticks, qty in asks:
            self.add_seed(False, ticks, qty)
        book = self.ex.book(self.symbol)
        assert book is not None
        result = self.result
        for row in range(1, len(self.messages)):
            self.apply(row, self.messages[row])
            if reveal_levels is not None:
                self.reveal(row, reveal_levels)
            ours = book.depth(compare_depth)
            want_bids, want_asks = self.books[row]
            want = (want_bids[:compare_depth], want_asks[:compare_depth])
            if ours != want:
                result.mismatches.append((row, ours, want))
            result.rows += 1
        return result


def replay(
    messages: Path, books: Path, compare_depth: int, reveal_levels: int | None
) -> tuple[ReplayResult, LobsterReplay]:
    replayer = LobsterReplay(load_messages(messages), load_books(books))
    return replayer.run(compare_depth, reveal_levels), replayer


def test_aapl_level10_file_matches_top5_until_a_revealed_level_is_needed() -> None:
    """With nothing but row 0 and the messages, the top 5 levels match the AAPL orderbook file
    on every row until the first row where a level that only the orderbook file revealed (at
    level 10) has reached the top 5; the first mismatch is exactly that row (155 in this file).
    Before it, every execution fills its full size, and throughout, every execution that names
    an order we placed trades against exactly that order (time priority)."""
    result, replayer = replay(AAPL_MESSAGES, AAPL_BOOK, compare_depth=5, reveal_levels=None)
    assert result.rows == 998
    needed = first_row_needing_revealed_level(replayer.messages, replayer.books, 10, 5)
    assert needed == 155
    early = [m for m in result.mismatches if m[0] < needed]
    assert early == [], result.describe()
    assert result.mismatches and result.mismatches[0][0] == needed, result.describe()
    assert [e for e in result.short_fills() if e.row < needed] == []
    assert len(result.named_known()) > 50
    assert result.wrong_makers() == [], result.describe()


def test_aapl_level10_file_matches_top10_with_revealed_levels() -> None:
    """With the revealed-level rule the AAPL replay matches all 10 levels of all 998 rows, every
    execution fills exactly its size, and the fraction of executions naming an order we placed
    that traded against another maker is 0."""
    result, _ = replay(AAPL_MESSAGES, AAPL_BOOK, compare_depth=10, reveal_levels=10)
    assert result.rows == 998
    assert result.reveals > 0
    assert result.mismatches == [], result.describe()
    assert result.short_fills() == [], result.describe()
    assert len(result.named_known()) > 50
    assert result.wrong_makers() == [], result.describe()
    assert result.seed_shortfalls == []


def test_amzn_full_day_level1_matches_bbo_with_revealed_levels() -> None:
    """A whole day of AMZN level-1 flow (57,514 messages) with the revealed-level rule: the best
    bid and ask (price and size) match the file after every message except the four rows that
    follow NASDAQ's one FIFO violation in this file (see the module docstring); every execution
    fills exactly its size; and per aggressive sweep, the quantity taken from every named order
    we placed equals what the file says, except in that violation's three sweeps."""
    result, _ = replay(AMZN_MESSAGES, AMZN_BOOK, compare_depth=1, reveal_levels=1)
    assert result.rows == 57_514
    mismatched = [row for row, _, _ in result.mismatches]
    assert mismatched == AMZN_FIFO_VIOLATION_ROWS, result.describe()
    assert result.short_fills() == [], result.describe()
    assert len(result.named_known()) > 4000
    assert result.wrong_sweeps() == AMZN_FIFO_VIOLATION_SWEEPS
    assert result.seed_shortfalls == []
