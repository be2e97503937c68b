#!/usr/bin/env python
"""Benchmark the matching core through its full path (checks, accounts, events).

Flows (seeded, reproducible):
  mixed   55% passive limit adds around a drifting mid, 30% cancels of live orders,
          15% marketable IOC orders sweeping 1-3 levels; about 1k resting orders.
  deep    the same mix over a book prefilled with ~20k resting orders on ~600 levels.
  lobster the AMZN full-day LOBSTER message file replayed as orders (../shared/data).
  stops   10k resting stops far from the market, then the mixed flow with 20% of all
          commands stop orders 0.05-2.00 away from the drifting mid (some fire).
  iceberg the mixed flow with 30% of the passive adds icebergs (display_qty a fifth).

Each flow is generated once by driving a scratch core (so cancels name live orders), then
the recorded command list is replayed into a fresh core and timed. Replays are checked to be
deterministic (same final seq and state hash as the generating run).

Usage: .venv/bin/python scripts/bench_engine.py [--ops N] [--flows mixed,deep,lobster]
       [--symbols 1,4] [--memory] [--gc engine|default]
The timed replays run under the engine process's garbage-collector settings
(``exchange.service.runtime.tune_gc``: start-up state frozen, gen0 every 50,000 allocations);
``--gc default`` keeps Python's (as the engine does with EXCHANGE_GC=default).
The core runs compiled when scripts/setup could build it (the first line says which build);
EXCHANGE_PURE_CORE=1 measures the pure-Python core.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import random
import resource
import sys
import time
import tracemalloc
from collections import deque
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exchange.core import BUILD, AccountSpec, CoreConfig, Exchange, InstrumentSpec
from exchange.protocol.messages import CancelOrder, NewOrder
from exchange.service.runtime import tune_gc

LOBSTER_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "lobster"
SYMBOLS = ["SYM0", "SYM1", "SYM2", "SYM3"]
ACCOUNTS = [f"acct{i}" for i in range(8)]
REFERENCE_TICKS = 10_000  # 100.00 at tick 0.01

Command = tuple[str, Any]
DEFAULT_GC = gc.get_threshold()


def make_config(symbols: list[str], price_band: float = 0.5) -> CoreConfig:
    return CoreConfig(
        instruments=[
            InstrumentSpec(
                symbol=s,
                tick_size=0.01,
                reference_price=REFERENCE_TICKS / 100,
                price_band=price_band,
                maker_fee=-0.0001,
                taker_fee=0.0003,
                max_order_qty=1_000_000,
                max_position=1_000_000_000,
            )
            for s in symbols
        ],
        accounts=[AccountSpec(name=a, cash=1e10, max_open_orders=1_000_000) for a in ACCOUNTS],
    )


class FlowGenerator:
    """Drives a scratch core with a seeded random flow and records the commands it sent."""

    def __init__(self, symbols: list[str], seed: int, spread_levels: int) -> None:
        self.rng = random.Random(seed)
        self.core = Exchange(make_config(symbols))
        self.symbols = symbols
        self.spread_levels = spread_levels
        self.fair = dict.fromkeys(symbols, float(REFERENCE_TICKS))
        self.live: list[int] = []
        self.live_index: dict[int, int] = {}
        self.commands: list[Command] = []
        self.ts = 1_700_000_000_000_000_000

    def _track(self, events: list[Any]) -> None:
        for event in events:
            if type(event).__name__ != "ExecutionReport" or event.order_id is None:
                continue
            if event.exec_type == "new" and event.tif == "gtc" and event.order_type == "limit":
                self.live_index[event.order_id] = len(self.live)
                self.live.append(event.order_id)
            elif event.leaves_qty == 0 and event.order_id in self.live_index:
                self._forget(event.order_id)

    def _forget(self, order_id: int) -> None:
        index = self.live_index.pop(order_id)
        last = self.live.pop()
        if last != order_id:
            self.live[index] = last
            self.live_index[last] = index

    def send(self, account: str, command: Any) -> None:
        self.ts += 1000
        self.commands.append((account, command))
        self._track(self.core.submit(account, command, self.ts))

    def stop(self, symbol: str, distance: int = 0) -> None:
        """A conditional order: a buy stop above the fair price or a sell stop below it
        (``distance`` ticks away; 0: 5-200 ticks, so the drifting market fires some)."""
        rng = self.rng
        fair = int(self.fair[symbol])
        away = distance or rng.randint(5, 200)
        side = "buy" if rng.random() < 0.5 else "sell"
        trigger = fair + away if side == "buy" else max(1, fair - away)
        self.send(
            rng.choice(ACCOUNTS),
            NewOrder(
                symbol=symbol,
                side=side,
                qty=rng.randint(1, 20),
                order_type="stop",
                trigger_price=trigger / 100,
            ),
        )

    def passive(self, symbol: str, iceberg: bool = False) -> None:
        rng = self.rng
        book = self.core.book(symbol)
        assert book is not None
        fair = self.fair[symbol] = self.fair[symbol] + rng.gauss(0, 0.3)
        side = "buy" if rng.random() < 0.5 else "sell"
        offset = 1 + int(rng.expovariate(1 / self.spread_levels))
        if side == "buy":
            price = int(fair) - offset
            if book.best_ask:
                price = min(price, book.best_ask - 1)
        else:
            price = int(fair) + offset
            if book.best_bid:
                price = max(price, book.best_bid + 1)
        qty = rng.randint(1, 100)
        self.send(
            rng.choice(ACCOUNTS),
            NewOrder(
                symbol=symbol,
                side=side,
                qty=qty,
                price=price / 100,
                display_qty=max(1, qty // 5) if iceberg else None,
            ),
        )

    def cancel(self) -> None:
        if not self.live:
            return
        order_id = self.live[self.rng.randrange(len(self.live))]
        order = self.core.order_info(order_id)
        assert order is not None
        owner = next(a for a in ACCOUNTS if order_id in self.core.account(a).orders)
        self.send(owner, CancelOrder(order_id=order_id))

    def sweep(self, symbol: str) -> None:
        rng = self.rng
        book = self.core.book(symbol)
        assert book is not None
        side = "buy" if rng.random() < 0.5 else "sell"
        levels = book.asks if side == "buy" else book.bids
        best = book.best_ask if side == "buy" else book.best_bid
        if not best:
            return
        wanted = rng.randint(1, 3)
        qty = 0
        price = best
        step = 1 if side == "buy" else -1
        seen = 0
        probe = best
        for _ in range(200):
            level = levels.get(probe)
            if level is not None:
                seen += 1
                price = probe
                qty += level.qty if seen < wanted else rng.randint(1, level.qty)
                if seen == wanted:
                    break
            probe += step
        self.send(
            rng.choice(ACCOUNTS),
            NewOrder(symbol=symbol, side=side, qty=max(qty, 1), price=price / 100, tif="ioc"),
        )

    def mixed(self, ops: int, stops: float = 0.0, icebergs: float = 0.0) -> None:
        """``ops`` commands of the mixed flow; ``stops`` of the passive adds are stop orders
        instead, ``icebergs`` of them icebergs (``display_qty`` a fifth of the order)."""
        rng = self.rng
        symbols = self.symbols
        while len(self.commands) < ops:
            symbol = symbols[len(self.commands) % len(symbols)]
            roll = rng.random()
            if roll < 0.55:
                kind = rng.random()
                if kind < stops:
                    self.stop(symbol)
                else:
                    self.passive(symbol, iceberg=kind < stops + icebergs)
            elif roll < 0.85:
                self.cancel()
            else:
                self.sweep(symbol)

    def prefill(self, orders: int, levels_per_side: int) -> None:
        rng = self.rng
        for i in range(orders):
            symbol = self.symbols[i % len(self.symbols)]
            side = "buy" if i % 2 else "sell"
            offset = 1 + rng.randrange(levels_per_side)
            price = REFERENCE_TICKS - offset if side == "buy" else REFERENCE_TICKS + offset
            self.send(
                rng.choice(ACCOUNTS),
                NewOrder(symbol=symbol, side=side, qty=rng.randint(1, 100), price=price / 100),
            )


def lobster_commands(limit: int | None = None) -> tuple[list[Command], CoreConfig]:
    """The AMZN day as core commands: adds, partial cancels (amend), deletes, executions."""
    from exchange.protocol.messages import AmendOrder

    path = LOBSTER_DIR / "AMZN_2012-06-21_34200000_57600000_message_1.csv"
    book_path = LOBSTER_DIR / "AMZN_2012-06-21_34200000_57600000_orderbook_1.csv"
    config = make_config(["AMZN"], price_band=0.0)
    config = CoreConfig(
        instruments=config.instruments,
        accounts=[AccountSpec(name=n, cash=1e12, max_open_orders=10**7) for n in ("lp", "taker")],
    )
    scratch = Exchange(config)
    commands: list[Command] = []
    ts = 0

    def send(account: str, command: Any) -> list[Any]:
        nonlocal ts
        ts += 1
        commands.append((account, command))
        return scratch.submit(account, command, ts)

    first = book_path.read_text().splitlines()[0].split(",")
    send("lp", NewOrder(symbol="AMZN", side="sell", qty=int(first[1]), price=int(first[0]) / 1e4))
    send("lp", NewOrder(symbol="AMZN", side="buy", qty=int(first[3]), price=int(first[2]) / 1e4))
    ids: dict[int, int] = {}
    remaining: dict[int, int] = {}
    for n, line in enumerate(path.read_text().splitlines()[1:]):
        if limit is not None and n >= limit:
            break
        _, kind, oid, size, price, direction = line.split(",")
        kind_i, oid_i, size_i = int(kind), int(oid), int(size)
        px = int(price) / 1e4
        if kind_i == 1:
            side = "buy" if direction == "1" else "sell"
            events = send("lp", NewOrder(symbol="AMZN", side=side, qty=size_i, price=px))
            for e in events:
                if getattr(e, "exec_type", None) == "new":
                    ids[oid_i] = e.order_id
                    remaining[oid_i] = size_i
        elif kind_i in (2, 3, 4) and oid_i in ids:
            left = remaining[oid_i] - size_i
            if kind_i == 4:
                side = "sell" if direction == "1" else "buy"
                send("taker", NewOrder(symbol="AMZN", side=side, qty=size_i, price=px, tif="ioc"))
            elif left > 0:
                send("lp", AmendOrder(order_id=ids[oid_i], qty=left))
            else:
                send("lp", CancelOrder(order_id=ids[oid_i]))
            if left > 0:
                remaining[oid_i] = left
            else:
                remaining.pop(oid_i)
                ids.pop(oid_i)
    return commands, config


class BareBook:
    """The comparison: a minimal price-time book (dict of FIFO levels + heaps, lazy cancels),
    no accounts, risk checks or events - roughly what the fastest published pure-Python
    matching engines do. It replays the same command list, so the ratio is like for like."""

    def __init__(self) -> None:
        self.sides: dict[bool, dict[int, deque[list[int]]]] = {True: {}, False: {}}
        self.heaps: dict[bool, list[int]] = {True: [], False: []}
        self.orders: dict[int, list[int]] = {}
        self.next_id = 1

    def new(self, is_buy: bool, price: int, qty: int, ioc: bool) -> int:
        opposite = self.sides[not is_buy]
        heap = self.heaps[not is_buy]
        while qty and heap:
            best = -heap[0] if not is_buy else heap[0]
            if (best > price) if is_buy else (best < price):
                break
            level = opposite.get(best)
            if level is None:
                heapq.heappop(heap)
                continue
            while qty and level:
                maker = level[0]
                if maker[1] == 0:
                    level.popleft()
                    continue
                traded = min(qty, maker[1])
                maker[1] -= traded
                qty -= traded
                if maker[1] == 0:
                    level.popleft()
                    del self.orders[maker[0]]
            if not level:
                del opposite[best]
                heapq.heappop(heap)
        order_id = self.next_id
        self.next_id += 1
        if qty and not ioc:
            own = self.sides[is_buy]
            level = own.get(price)
            if level is None:
                level = own[price] = deque()
                heapq.heappush(self.heaps[is_buy], -price if is_buy else price)
            order = [order_id, qty]
            level.append(order)
            self.orders[order_id] = order
        return order_id

    def cancel(self, order_id: int) -> None:
        order = self.orders.pop(order_id, None)
        if order is not None:
            order[1] = 0


def replay_bare(commands: list[Command], id_map: dict[int, int]) -> float:
    """Seconds the bare book takes for the same adds, cancels and sweeps."""
    from exchange.protocol.messages import AmendOrder

    book: dict[str, BareBook] = {}
    translated = []
    for _, command in commands:
        if isinstance(command, NewOrder):
            translated.append(
                (
                    0,
                    command.symbol,
                    command.side == "buy",
                    round((command.price or 0) * 100),
                    command.qty,
                    command.tif != "gtc",
                )
            )
        elif isinstance(command, CancelOrder | AmendOrder):
            translated.append((1, "", False, id_map.get(command.order_id or 0, 0), 0, False))
    gc.collect()
    start = time.perf_counter()
    for kind, symbol, is_buy, price, qty, ioc in translated:
        if kind == 0:
            target = book.get(symbol)
            if target is None:
                target = book[symbol] = BareBook()
            target.new(is_buy, price, qty, ioc)
        else:
            for target in book.values():
                target.cancel(price)
    return time.perf_counter() - start


def bare_ids(commands: list[Command], config: CoreConfig) -> dict[int, int]:
    """Core order id -> bare-book order id (both count every accepted new order from 1)."""
    core = Exchange(config)
    mapping: dict[int, int] = {}
    bare_id = 0
    for n, (account, command) in enumerate(commands):
        events = core.submit(account, command, n)
        if isinstance(command, NewOrder):
            bare_id += 1
            for event in events:
                if getattr(event, "exec_type", None) == "new":
                    mapping[event.order_id] = bare_id
    return mapping


def replay(config: CoreConfig, commands: list[Command]) -> tuple[float, int, Exchange]:
    """Replay ``commands`` into a fresh core; returns (seconds, events, core)."""
    core = Exchange(config)
    submit = core.submit
    ts = 1_700_000_000_000_000_000
    gc.collect()
    events = 0
    start = time.perf_counter()
    for account, command in commands:
        ts += 1000
        events += len(submit(account, command, ts))
    elapsed = time.perf_counter() - start
    return elapsed, events, core


def memory_per_resting_order(count: int = 100_000) -> float:
    """Bytes of Python heap per resting order (tracemalloc), spread over 600 levels."""
    config = make_config(["SYM0"])
    core = Exchange(config)
    rng = random.Random(7)
    commands = []
    for i in range(count):
        side = "buy" if i % 2 else "sell"
        offset = 1 + rng.randrange(300)
        price = REFERENCE_TICKS - offset if side == "buy" else REFERENCE_TICKS + offset
        commands.append(
            (
                ACCOUNTS[i % 8],
                NewOrder(symbol="SYM0", side=side, qty=rng.randint(1, 100), price=price / 100),
            )
        )
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for n, (account, command) in enumerate(commands):
        core.submit(account, command, n)
    del commands
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    resting = sum(len(a.orders) for a in core.accounts())
    return (after - before) / resting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=1_000_000)
    parser.add_argument("--flows", default="mixed,deep,lobster,stops,iceberg")
    parser.add_argument("--symbols", default="1,4")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--memory", action="store_true", help="also measure bytes per order")
    parser.add_argument(
        "--gc",
        choices=("engine", "default"),
        default="engine",
        help="garbage-collector settings of the timed runs: the engine's (default) or Python's",
    )
    args = parser.parse_args()
    flows = args.flows.split(",")
    python = sys.version.split()[0]
    print(f"python {python}, core build {BUILD}, ops={args.ops:,}, seed={args.seed}, gc={args.gc}")
    print(
        f"{'flow':<10}{'symbols':>8}{'ops':>11}{'events':>11}{'ops/s':>12}{'events/s':>12}"
        f"{'resting':>9}{'bare ops/s':>12}{'ratio':>7}"
    )
    for flow in flows:
        symbol_counts = [1] if flow == "lobster" else [int(s) for s in args.symbols.split(",")]
        for nsym in symbol_counts:
            if flow == "lobster":
                commands, config = lobster_commands()
            else:
                generator = FlowGenerator(SYMBOLS[:nsym], args.seed, 30 if flow != "deep" else 60)
                if flow == "deep":
                    generator.prefill(20_000, 300)
                if flow == "stops":  # 10k resting stops far away, then 20% of ops stops
                    for i in range(10_000):
                        generator.stop(SYMBOLS[i % nsym], distance=2_000 + i % 500)
                    generator.mixed(args.ops + 10_000, stops=0.36)
                elif flow == "iceberg":  # 30% of the passive adds are icebergs
                    generator.mixed(args.ops, icebergs=0.3)
                else:
                    generator.mixed(args.ops)
                commands = generator.commands
                config = make_config(SYMBOLS[:nsym])
                reference = generator.core
            if args.gc == "engine":
                tune_gc()
            elapsed, events, core = replay(config, commands)
            bare = replay_bare(commands, bare_ids(commands, config))
            gc.set_threshold(*DEFAULT_GC)
            gc.unfreeze()
            if flow != "lobster":
                assert core.last_seq == reference.last_seq, "replay is not deterministic"
            resting = sum(len(a.orders) for a in core.accounts())
            print(
                f"{flow:<10}{nsym:>8}{len(commands):>11,}{events:>11,}"
                f"{len(commands) / elapsed:>12,.0f}{events / elapsed:>12,.0f}{resting:>9,}"
                f"{len(commands) / bare:>12,.0f}{bare / elapsed:>7.2f}"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MiB")
    if args.memory:
        print(f"memory per resting order: {memory_per_resting_order():,.0f} bytes")


if __name__ == "__main__":
    main()
