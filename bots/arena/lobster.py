"""A LOBSTER message file replayed as background order flow (pure but for reading the file).

LOBSTER (lobsterdata.com) message files have no header; each row is ``time`` (seconds after
midnight, New York time, to the nanosecond), ``type``, ``order_id``, ``size``, ``price``
(USD × 10,000) and ``direction`` (side of the resting order: 1 buy, -1 sell). The file name
says the symbol and the date: ``AMZN_2012-06-21_34200000_57600000_message_1.csv``.

Rules of the replay (docs/arena.md, "LOBSTER rules"):

- Each round replays the file from its start; simulated time starts at its first message.
  When the orderbook file beside it exists (``…_orderbook_L.csv``), the book is seeded from
  its row 0 (one order per level from ``lobster-seed``) and message 0 is skipped, since row 0
  already includes it.
- Type 1 (new limit order): a GTC limit order from ``lobster``, its client order id
  ``L<lobster id>``. If it crosses a bot's order it trades with it, as the real order would.
- Type 2 (partial cancel) lowers the order's quantity by the size, keeping its priority
  (``amend_order``); type 3 (delete) cancels it. When bots took part of the order, a cancel of
  more than is left is clipped to what is left (the order is cancelled); a cancel of an order
  no longer live is skipped. A cancel of an order the file never introduced reduces the seed
  order at that price (clipped; skipped when there is none).
- Type 4 (execution of a visible order) is re-enacted as an IOC limit order of the file's size
  at the file's price from ``lobster-taker`` on the other side: the aggressor's demand is
  replayed, not the match. It meets the book as it is, bots' orders included, best price
  first and price-time priority within a level, so a bot quoting better or earlier is filled
  by real flow. The named order keeps what the aggressor did not take from it, until the
  file cancels or executes it.
- Types 5 (hidden execution), 6 (cross/auction) and 7 (halt) change no visible book: skipped.
- With the orderbook file, its best bid and ask after each message are the truth for the
  replay's own orders (a level-L file misses what happens below level L): replay orders
  priced better than the file's best are stale and cancelled; when the file's best price
  moves to a price where the replay holds less than the file shows, the difference rests
  there as a ``lobster-seed`` order (a level revealed from below). Bots' orders are never
  touched, and liquidity a bot took stays taken while that price stays the best. On the AMZN
  sample day (no bots) the best prices then equal the file's after every message, and the
  sizes too after 71% of them.
- Replayed orders the venue rejects (off tick, outside the price band...) are counted and
  skipped. The ``lobster…`` accounts have so much cash and so high an open-order limit that
  they never meet a margin or order limit; they are not ranked and not in performance.csv.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from exchange.protocol.config import AccountSpec
from exchange.protocol.messages import AmendOrder, CancelOrder, ExecutionReport, NewOrder, Side

MAKER = "lobster"
TAKER = "lobster-taker"
SEED = "lobster-seed"
ACCOUNTS = (MAKER, TAKER, SEED)
CASH = 1e12
"""Cash of each lobster account: far beyond any margin a day of one symbol's flow needs."""
MAX_OPEN_ORDERS = 1_000_000_000
PRICE_SCALE = 10_000
EMPTY_ASK = 9_999_999_999
"""The orderbook file's price of an empty ask level (an empty bid is its negative)."""
NS = 1_000_000_000

_NAME = re.compile(r"^([A-Za-z0-9.\-]+)_(\d{4}-\d{2}-\d{2})_.*message.*\.csv$")

Submit = Callable[[str, Any], None]
"""``submit(account, command)``: the venue applies a command at the current simulated time."""


class LobsterError(ValueError):
    """The file is not a LOBSTER message file (its name or a row is malformed)."""


def file_symbol(path: Path) -> str:
    """The symbol a LOBSTER message file is named for. Raises LobsterError."""
    return _parse_name(path)[0]


def _parse_name(path: Path) -> tuple[str, str]:
    match = _NAME.match(path.name)
    if match is None:
        raise LobsterError(
            f"{path.name}: not a LOBSTER message file name "
            "(SYMBOL_YYYY-MM-DD_START_END_message_LEVEL.csv)"
        )
    return match.group(1), match.group(2)


def _midnight_ns(day: str) -> int:
    """Midnight of ``day`` in New York (LOBSTER times are NASDAQ local time), as epoch ns."""
    try:
        from zoneinfo import ZoneInfo

        zone: Any = ZoneInfo("America/New_York")
    except Exception:  # no tz database: read the clock as UTC
        zone = UTC
    moment = datetime.fromisoformat(day).replace(tzinfo=zone)
    delta: timedelta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS


def _levels(line: str) -> list[tuple[Side, int, int]]:
    """(side, price, size) of every non-empty level of one orderbook row."""
    values = [int(v) for v in line.strip().split(",") if v]
    out: list[tuple[Side, int, int]] = []
    for level in range(0, len(values) - 3, 4):
        ask_p, ask_s, bid_p, bid_s = values[level : level + 4]
        if ask_s > 0 and 0 < ask_p < EMPTY_ASK:
            out.append(("sell", ask_p, ask_s))
        if bid_s > 0 and bid_p > 0:
            out.append(("buy", bid_p, bid_s))
    return out


def _time_ns(text: str) -> int:
    seconds, _, fraction = text.partition(".")
    return int(seconds) * NS + int((fraction + "000000000")[:9])


@dataclass
class LobsterFile:
    """The parsed messages: parallel lists, times as epoch nanoseconds."""

    path: Path
    symbol: str
    times: list[int]
    types: list[int]
    ids: list[int]
    sizes: list[int]
    prices: list[int]
    directions: list[int]
    seed_levels: list[tuple[Side, int, int]] = field(default_factory=list)
    """(side, price, size) of the orderbook file's row 0, when there is one."""
    best_bids: list[int] = field(default_factory=list)
    """The orderbook file's best bid after each message (0: none; empty: no orderbook file)."""
    best_asks: list[int] = field(default_factory=list)
    best_bid_sizes: list[int] = field(default_factory=list)
    best_ask_sizes: list[int] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> LobsterFile:
        """Parse ``path`` (and its orderbook file's first row). Raises LobsterError/OSError."""
        symbol, day = _parse_name(path)
        base = _midnight_ns(day)
        times: list[int] = []
        types: list[int] = []
        ids: list[int] = []
        sizes: list[int] = []
        prices: list[int] = []
        directions: list[int] = []
        with path.open(encoding="ascii") as lines:
            for number, line in enumerate(lines, 1):
                parts = line.split(",")
                if len(parts) < 6:
                    if not line.strip():
                        continue
                    raise LobsterError(f"{path}:{number}: expected 6 fields")
                try:
                    times.append(base + _time_ns(parts[0]))
                    types.append(int(parts[1]))
                    ids.append(int(parts[2]))
                    sizes.append(int(parts[3]))
                    prices.append(int(parts[4]))
                    directions.append(int(parts[5]))
                except ValueError:
                    raise LobsterError(f"{path}:{number}: not a LOBSTER message row") from None
        if not times:
            raise LobsterError(f"{path}: no messages")
        book = path.with_name(path.name.replace("_message_", "_orderbook_"))
        seed: list[tuple[Side, int, int]] = []
        best_bids: list[int] = []
        best_asks: list[int] = []
        bid_sizes: list[int] = []
        ask_sizes: list[int] = []
        if book != path and book.is_file():
            with book.open(encoding="ascii") as rows:
                for number, line in enumerate(rows):
                    values = line.split(",", 4)
                    if len(values) < 4:
                        break
                    ask_p, ask_s, bid_p, bid_s = (int(v) for v in values[:4])
                    ask_ok = ask_s > 0 and 0 < ask_p < EMPTY_ASK
                    bid_ok = bid_s > 0 and bid_p > 0
                    best_asks.append(ask_p if ask_ok else 0)
                    best_bids.append(bid_p if bid_ok else 0)
                    ask_sizes.append(ask_s if ask_ok else 0)
                    bid_sizes.append(bid_s if bid_ok else 0)
                    if number == 0:
                        seed = _levels(line)
            if len(best_bids) != len(times):  # not this file's book: use neither
                seed, best_bids, best_asks, bid_sizes, ask_sizes = [], [], [], [], []
        return cls(
            path,
            symbol,
            times,
            types,
            ids,
            sizes,
            prices,
            directions,
            seed,
            best_bids,
            best_asks,
            bid_sizes,
            ask_sizes,
        )

    @property
    def start_ns(self) -> int:
        return self.times[0]


def accounts() -> list[AccountSpec]:
    """The background accounts the core must hold."""
    return [AccountSpec(name=n, cash=CASH, max_open_orders=MAX_OPEN_ORDERS) for n in ACCOUNTS]


class LobsterReplay:
    """One round's replay of a ``LobsterFile``: ``next_ns`` (None when done) and ``step``.

    The venue calls ``seed`` at the round's start, then ``step`` whenever simulated time
    reaches ``next_ns``, and hands every execution report of the ``lobster…`` accounts to
    ``on_report`` (so the replay knows what is left of each of its orders)."""

    def __init__(self, data: LobsterFile) -> None:
        self.data = data
        self.symbol = data.symbol
        self._index = 1 if data.seed_levels else 0
        self.next_ns: int | None = (
            data.times[self._index] if self._index < len(data.times) else None
        )
        self._live: dict[str, tuple[int, int]] = {}
        """Client order id -> (qty, leaves) of the live orders of ``lobster`` and the seed."""
        self._where: dict[str, tuple[Side, int]] = {}
        """Client order id -> (side, price) of every order placed and not known dead."""
        self._at: dict[tuple[Side, int], dict[str, None]] = {}
        """(side, price) -> the client order ids resting there, in order of placing."""
        self._bids: list[int] = []
        """Negated prices of ``_at``'s bid keys (a lazy max-heap)."""
        self._asks: list[int] = []
        self._introduced: set[int] = set()
        """LOBSTER ids of the orders the file placed (type 1) this round."""
        self._seed_at: dict[tuple[Side, int], str] = {}
        """(side, price) -> client order id of the seed order there."""
        self.counts: dict[str, int] = {
            "messages": 0,
            "replayed": 0,
            "skipped": 0,
            "clipped": 0,
            "rejected": 0,
            "stale": 0,
            "revealed": 0,
        }

    def seed(self, submit: Submit) -> None:
        """Rest the orderbook file's row 0 (if any), one order per level."""
        for side, price, size in self.data.seed_levels:
            cid = f"S{side[0]}{price}"
            self._seed_at[(side, price)] = cid
            self._place(submit, SEED, side, price, size, cid)

    def on_report(self, report: ExecutionReport) -> None:
        """Track what is left of our resting orders (call for every lobster account's report)."""
        if report.exec_type == "rejected":
            self.counts["rejected"] += 1
        cid = report.client_order_id
        if cid is None or report.account == TAKER:
            return
        if report.leaves_qty > 0 and report.status in ("new", "partially_filled"):
            self._live[cid] = (report.qty, report.leaves_qty)
        else:
            self._live.pop(cid, None)
            where = self._where.pop(cid, None)
            if where is not None:
                resting = self._at.get(where)
                if resting is not None:
                    resting.pop(cid, None)

    def step(self, submit: Submit) -> None:
        """Replay the message due at ``next_ns`` and move on to the next."""
        data = self.data
        i = self._index
        kind = data.types[i]
        self.counts["messages"] += 1
        side: Side = "buy" if data.directions[i] == 1 else "sell"
        if kind == 1:
            lobster_id = data.ids[i]
            self._introduced.add(lobster_id)
            self._place(submit, MAKER, side, data.prices[i], data.sizes[i], f"L{lobster_id}")
            self.counts["replayed"] += 1
        elif kind == 2 or kind == 3:
            self._cancel(submit, i, whole=kind == 3)
        elif kind == 4:
            order = NewOrder(
                symbol=self.symbol,
                side="sell" if side == "buy" else "buy",
                qty=data.sizes[i],
                price=data.prices[i] / PRICE_SCALE,
                tif="ioc",
            )
            submit(TAKER, order)
            self.counts["replayed"] += 1
        else:
            self.counts["skipped"] += 1
        if data.best_bids:
            # the usual case, checked inline: our best orders are live and not better than
            # the file's, and the file's best prices did not move
            best_bid, best_ask = data.best_bids[i], data.best_asks[i]
            bids, asks, at = self._bids, self._asks, self._at
            if bids and not (best_bid and -bids[0] <= best_bid and at.get(("buy", -bids[0]))):
                self._purge_side(submit, "buy", bids, -1, best_bid)
            if asks and not (best_ask and asks[0] >= best_ask and at.get(("sell", asks[0]))):
                self._purge_side(submit, "sell", asks, 1, best_ask)
            if i:
                if best_bid != data.best_bids[i - 1]:
                    self._reveal_side(submit, "buy", data.best_bids, data.best_bid_sizes, i)
                if best_ask != data.best_asks[i - 1]:
                    self._reveal_side(submit, "sell", data.best_asks, data.best_ask_sizes, i)
        i += 1
        self._index = i
        self.next_ns = data.times[i] if i < len(data.times) else None

    def _place(
        self, submit: Submit, account: str, side: Side, price: int, size: int, cid: str
    ) -> None:
        key = (side, price)
        self._where[cid] = key
        resting = self._at.get(key)
        if resting is None:
            resting = self._at[key] = {}
            heapq.heappush(
                self._bids if side == "buy" else self._asks, -price if side == "buy" else price
            )
        resting[cid] = None
        order = NewOrder(
            symbol=self.symbol, side=side, qty=size, price=price / PRICE_SCALE, client_order_id=cid
        )
        submit(account, order)

    def _purge(self, submit: Submit, best_bid: int, best_ask: int) -> None:
        """Cancel our orders priced better than the file's best bid/ask after this message
        (0: that side of the file's book is empty): a level-L file misses cancels of orders
        below level L, so such orders are stale, and would cross the real flow."""
        self._purge_side(submit, "buy", self._bids, -1, best_bid)
        self._purge_side(submit, "sell", self._asks, 1, best_ask)

    def _purge_side(
        self, submit: Submit, side: Side, heap: list[int], sign: int, limit: int
    ) -> None:
        while heap:
            price = heap[0] * sign
            key = (side, price)
            resting = self._at.get(key)
            if resting and limit and (price <= limit if sign < 0 else price >= limit):
                break
            heapq.heappop(heap)
            self._at.pop(key, None)
            for cid in list(resting or ()):
                self.counts["stale"] += 1
                account = MAKER if cid.startswith("L") else SEED
                submit(account, CancelOrder(client_order_id=cid))

    def _reveal_side(
        self, submit: Submit, side: Side, prices: list[int], sizes: list[int], i: int
    ) -> None:
        """The file's best ``side`` price moved: if the replay holds less there than the file
        shows, the level was revealed from below (its orders rested before the window or
        below level L): rest the difference there."""
        price = prices[i]
        if not price or price == prices[i - 1]:
            return
        live = self._live
        resting = self._at.get((side, price))
        held = sum(live[c][1] for c in resting if c in live) if resting else 0
        if held < sizes[i]:
            cid = f"R{side[0]}{price}-{i}"
            self._seed_at[(side, price)] = cid
            self._place(submit, SEED, side, price, sizes[i] - held, cid)
            self.counts["revealed"] += 1

    def _cancel(self, submit: Submit, i: int, *, whole: bool) -> None:
        data = self.data
        cid = f"L{data.ids[i]}"
        account = MAKER
        if cid not in self._live:
            side: Side = "buy" if data.directions[i] == 1 else "sell"
            seed = self._seed_at.get((side, data.prices[i]))
            if seed is None or seed not in self._live or data.ids[i] in self._introduced:
                self.counts["skipped"] += 1
                return
            cid, account, whole = seed, SEED, False
        qty, leaves = self._live[cid]
        size = data.sizes[i]
        if whole or size >= leaves:
            if not whole and size > leaves:
                self.counts["clipped"] += 1
            submit(account, CancelOrder(client_order_id=cid))
        else:
            submit(account, AmendOrder(client_order_id=cid, qty=qty - size))
        self.counts["replayed"] += 1
