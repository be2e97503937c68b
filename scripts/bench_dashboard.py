#!/usr/bin/env python
"""The web dashboard under load (issue 14): does the page keep up, does its memory stay flat?

Starts the engine, one gateway and the market-data relay as subprocesses (as bench_e2e.py
does: port 0, a fresh data directory, a generated config with many accounts and no rate
limit), opens ``http://127.0.0.1:RELAY/?symbol=BENCH`` in headless Chromium (Playwright,
``executable_path=/usr/bin/chromium`` or ``EXCHANGE_CHROMIUM``), then offers ``--rate``
orders/s through the gateway WebSocket from ``--clients`` connections: buys and sells
alternating at a handful of prices around 100, so that they cross (trades, book updates, BBO).

Measured over ``--seconds`` (one line per second, then a summary):

  events/s  book_update + trade + bbo messages the page's WebSocket received (counted in the
            page by a WebSocket subclass installed before the app loads: string search on
            each frame, no second JSON.parse);
  lag       engine ts of the newest trade the page received minus that of the trade shown in
            the tape's first row (ms, the tape shows ms) -- how far the screen trails the feed;
  delay     page clock at the sample minus the engine ts of the newest trade received -- how
            far the page's socket trails the engine (a page that cannot keep up lets frames
            queue up, and this grows);
  heap      the page's JS heap (CDP Performance.getMetrics JSHeapUsedSize), each second, and
            after a forced GC (HeapProfiler.collectGarbage) before the flow, at 5 s, half way
            and at the end;
  frames    animation frames per second and the longest gap between two of them.

Usage: .venv/bin/python scripts/bench_dashboard.py [--rate 5000] [--seconds 60] [--clients 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_e2e import (  # a sibling script, not a package
    SYMBOL,
    _encode,
    connect_client,
    start_system,
    stop_system,
)
from playwright.async_api import async_playwright

# Runs in the page before app.js: counts feed messages per frame and remembers the newest
# trade; an animation-frame loop counts frames and the longest gap between two.
PAGE_HOOK = r"""
(() => {
  const b = (window.__bench = {
    frames: 0, msgs: 0, events: 0, trades: 0, lastTradeId: 0, lastTradeTs: 0, maxFrameGap: 0,
  });
  const count = (s, pat) => {
    let n = 0;
    for (let i = s.indexOf(pat); i !== -1; i = s.indexOf(pat, i + pat.length)) n++;
    return n;
  };
  const TRADE = '"type":"trade"';
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (event) => {
        const s = typeof event.data === "string" ? event.data : "";
        b.msgs++;
        const trades = count(s, TRADE);
        b.trades += trades;
        b.events += trades + count(s, '"type":"book_update"') + count(s, '"type":"bbo"');
        if (trades) {
          const at = s.lastIndexOf(TRADE);
          const m = /"trade_id":(\d+)[^}]*?"ts":(\d+)/.exec(s.slice(at, at + 400));
          if (m) {
            b.lastTradeId = Number(m[1]);
            b.lastTradeTs = Number(m[2]);
          }
        }
      });
    }
  };
  let last = 0;
  const tick = (t) => {
    if (last && t - last > b.maxFrameGap) b.maxFrameGap = t - last;
    last = t;
    b.frames++;
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})();
"""

SAMPLE = """() => {
  const b = window.__bench;
  const row = document.querySelector("#tape tbody tr");
  const out = { ...b, shown: row ? row.cells[0].textContent : null, now: Date.now() };
  b.maxFrameGap = 0;
  return out;
}"""

DAY_MS = 86_400_000


def ms_of_day(clock: str) -> int:
    """'HH:MM:SS.mmm' (the tape's time column, UTC) as milliseconds since midnight."""
    hms, _, millis = clock.partition(".")
    h, m, s = (int(x) for x in hms.split(":"))
    return ((h * 60 + m) * 60 + s) * 1000 + int(millis or 0)


async def order_flow(port: int, clients: int, rate: float, seconds: float, sent: list[int]) -> None:
    """``rate`` orders/s in total, sent as one JSON array per client every 10 ms; buys and
    sells alternate over five prices around 100 so that they trade."""
    sockets = [await connect_client(port, n) for n in range(clients)]

    async def drain(ws: Any) -> None:
        try:
            async for _ in ws:
                pass
        except Exception:  # closed at the end
            pass

    readers = [asyncio.create_task(drain(ws)) for ws in sockets]
    tick = 0.01
    per_tick = rate * tick / clients
    owed = [0.0] * clients
    count = [0] * clients
    started = time.perf_counter()
    due = started
    while due - started < seconds:
        now = time.perf_counter()
        if now < due:
            await asyncio.sleep(due - now)
        for n, ws in enumerate(sockets):
            owed[n] += per_tick
            batch = []
            while owed[n] >= 1.0:
                owed[n] -= 1.0
                k = count[n] = count[n] + 1
                side = "buy" if (k + n) % 2 else "sell"
                price = round(100.0 + ((k * 7 + n) % 5 - 2) * 0.01, 2)
                batch.append(
                    {
                        "type": "new_order",
                        "symbol": SYMBOL,
                        "side": side,
                        "qty": 1,
                        "price": price,
                        "req_id": k,
                    }
                )
            if batch:
                await ws.send(_encode(batch))
                sent[0] += len(batch)
        due += tick
    for task in readers:
        task.cancel()
    for ws in sockets:
        await ws.close()


async def heap(cdp: Any, gc: bool = False) -> float:
    """The page's used JS heap in MB (after a full GC when ``gc``)."""
    if gc:
        await cdp.send("HeapProfiler.collectGarbage")
    metrics = await cdp.send("Performance.getMetrics")
    used = next(m["value"] for m in metrics["metrics"] if m["name"] == "JSHeapUsedSize")
    return float(used) / 1e6


async def measure(relay_port: int, gateway_port: int, args: argparse.Namespace) -> None:
    chromium = os.environ.get("EXCHANGE_CHROMIUM", "/usr/bin/chromium")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            context = await browser.new_context(viewport={"width": 1400, "height": 1000})
            page = await context.new_page()
            await page.add_init_script(PAGE_HOOK)
            await page.goto(f"http://127.0.0.1:{relay_port}/?symbol={SYMBOL}")
            await page.wait_for_selector("#connection[data-state=connected]", timeout=15_000)
            await page.wait_for_function("window.__bench && window.__bench.msgs > 0")
            cdp = await context.new_cdp_session(page)
            await cdp.send("Performance.enable")
            heaps = {"before": await heap(cdp, gc=True)}
            print(f"chromium {browser.version}, {args.clients} clients, {args.rate:,.0f} orders/s")
            print(
                " sec  orders/s  events/s  trades/s  frames/s  max gap ms  lag ms  delay ms"
                "  heap MB"
            )

            sent = [0]
            flow = asyncio.create_task(
                order_flow(gateway_port, args.clients, args.rate, args.seconds, sent)
            )
            rows: list[dict[str, float]] = []
            previous = await page.evaluate(SAMPLE)
            previous_sent = 0
            started = time.perf_counter()
            half = max(1, int(args.seconds // 2))
            for second in range(1, int(args.seconds) + 1):
                await asyncio.sleep(max(0.0, started + second - time.perf_counter()))
                sample = await page.evaluate(SAMPLE)
                lag = None
                if sample["shown"] and sample["lastTradeTs"]:
                    newest = int(sample["lastTradeTs"] / 1e6) % DAY_MS
                    lag = (newest - ms_of_day(sample["shown"])) % DAY_MS
                delay = (
                    sample["now"] - sample["lastTradeTs"] / 1e6 if sample["lastTradeTs"] else None
                )
                used = await heap(cdp)
                row = {
                    "orders": sent[0] - previous_sent,
                    "events": sample["events"] - previous["events"],
                    "trades": sample["trades"] - previous["trades"],
                    "frames": sample["frames"] - previous["frames"],
                    "gap": sample["maxFrameGap"],
                    "lag": lag if lag is not None else float("nan"),
                    "delay": delay if delay is not None else float("nan"),
                    "heap": used,
                }
                rows.append(row)
                previous, previous_sent = sample, sent[0]
                print(
                    f"{second:4d} {row['orders']:9,.0f} {row['events']:9,.0f} "
                    f"{row['trades']:9,.0f} {row['frames']:9,.0f} {row['gap']:11.0f} "
                    f"{row['lag']:7.0f} {row['delay']:9.0f} {used:8.1f}",
                    flush=True,
                )
                if second == 5:
                    heaps["5s"] = await heap(cdp, gc=True)
                if second == half:
                    heaps["middle"] = await heap(cdp, gc=True)
            await flow
            heaps["end"] = await heap(cdp, gc=True)
            # After the flow stops: does the page catch up (same trade shown as received)?
            await asyncio.sleep(1.0)
            final = await page.evaluate(SAMPLE)
            if args.screenshot:
                await page.screenshot(path=args.screenshot)
        finally:
            await browser.close()

    elapsed = len(rows)
    steady = rows[5:] or rows
    events = sum(r["events"] for r in rows) / elapsed
    orders = sum(r["orders"] for r in rows) / elapsed
    lags = [r["lag"] for r in steady if r["lag"] == r["lag"]]
    delays = [r["delay"] for r in steady if r["delay"] == r["delay"]]
    print(
        f"summary  {orders:,.0f} orders/s sent, page received {events:,.0f} events/s "
        f"({sum(r['trades'] for r in rows) / elapsed:,.0f} trades/s; "
        f"min {min(r['events'] for r in steady):,.0f}, max {max(r['events'] for r in steady):,.0f} "
        f"per second after 5 s)"
    )
    if lags and delays:
        print(
            f"         lag shown vs received: max {max(lags):.0f} ms, mean "
            f"{sum(lags) / len(lags):.1f} ms; engine->page delay: max {max(delays):.0f} ms, "
            f"mean {sum(delays) / len(delays):.0f} ms (after 5 s)"
        )
    print(
        f"         frames/s min {min(r['frames'] for r in steady):.0f}, longest frame gap "
        f"{max(r['gap'] for r in steady):.0f} ms"
    )
    print(
        "         heap after GC: "
        + ", ".join(f"{k} {v:.1f} MB" for k, v in heaps.items())
        + f"; raw per-second min {min(r['heap'] for r in rows):.1f} / "
        f"max {max(r['heap'] for r in rows):.1f} MB"
    )
    shown_last = final["shown"]
    newest = int(final["lastTradeTs"] / 1e6) % DAY_MS if final["lastTradeTs"] else None
    caught_up = shown_last is not None and newest == ms_of_day(shown_last)
    print(f"         1 s after the flow: tape shows the newest trade received: {caught_up}")


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        processes = start_system(Path(tmp), max(args.clients, 2))
        _, gateway, relay = processes
        try:
            await measure(relay.ports["port"], gateway.ports["port"], args)
        finally:
            stop_system(processes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=5000.0, help="orders/s offered in total")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=4, help="gateway connections")
    parser.add_argument("--screenshot", default="", help="save a picture of the page at the end")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
