"""The web dashboard on the relay (PROTOCOL.md §7).

Always run: the relay serves the page and its files with the right content types, 404s
unknown files, and the page names nothing off the relay. The browser test drives headless
Chromium (Debian's ``chromium``, through Playwright for Python) against the real processes;
it is SKIPPED, with the reason in pytest's summary, when Playwright or Chromium is missing.
It waits on what the page shows (Playwright expectations), never on sleeps, and keeps a
screenshot in ``tmp_path`` (and in ``docs/dashboard.png`` with EXCHANGE_UPDATE_SCREENSHOT=1).
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import random
import re
import shutil
import socket
import tomllib
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from exchange.protocol.messages import AuctionInfo, MarketStatus
from marketdata.dashboard import dashboard_url, load_assets
from marketdata.server import MarketDataRelay
from tests.integration.clients import gateway_client
from tests.integration.fake_engine import FakeEngine, random_flow
from tests.integration.live_system import LiveSystem, live_system, procfile_command
from tests.integration.test_marketdata import start_relay
from tests.support import REPO_ROOT, seconds

MONITOR_TOKEN = "monitor-token"  # the shipped config's
SCREENSHOT = REPO_ROOT / "docs" / "dashboard.png"


@pytest.fixture
async def relay() -> AsyncIterator[MarketDataRelay]:
    engine = FakeEngine()
    await engine.start()
    random_flow(engine, random.Random(5), 200)  # books on both sides, some trades
    relay = await start_relay(engine)
    yield relay
    await relay.stop()
    await engine.stop()


def fetch(port: int, path: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=seconds(5)) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


async def get(relay: MarketDataRelay, path: str) -> tuple[int, str, bytes]:
    return await asyncio.to_thread(fetch, relay.port, path)


async def test_relay_serves_the_page_and_its_files(relay: MarketDataRelay) -> None:
    for path in ("/", "/?symbol=BBB&token=x", "/index.html"):
        status, content_type, body = await get(relay, path)
        assert status == 200 and content_type == "text/html; charset=utf-8", path
        assert b'<script type="module" src="/static/app.js">' in body
    page = (await get(relay, "/"))[2].decode()
    referenced = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert "/static/style.css" in referenced
    for ref in referenced:
        if ref.startswith("data:"):
            continue
        assert ref.startswith("/static/"), ref  # relay-local, nothing from the network
        status, content_type, _ = await get(relay, ref)
        assert status == 200, ref
    for name, (body, content_type) in load_assets().items():
        status, served_type, served = await get(relay, f"/static/{name}")
        assert (status, served_type, served) == (200, content_type, body), name
        if name.endswith(".js"):
            assert served_type == "text/javascript; charset=utf-8"
            # ES modules import only each other, by relative path
            for target in re.findall(r'from "([^"]+)"', body.decode()):
                assert target.startswith("./") and target[2:] in load_assets(), target
        if name.endswith(".css"):
            assert served_type == "text/css; charset=utf-8"
        assert not re.search(rb"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", served), name
    for path in ("/static/nope.js", "/static/../server.py", "/static/", "/static/model.js/x"):
        status, content_type, body = await get(relay, path)
        assert status == 404 and content_type == "application/json", path
    # the relay's other routes are untouched
    assert (await get(relay, "/api/v1/instruments"))[0] == 200
    assert (await get(relay, "/nope"))[0] == 404


def test_every_web_file_is_package_data() -> None:
    """An installed package (a wheel, not this checkout) must carry every file it serves."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["marketdata"]
    served = load_assets()
    assert "index.html" in served and "app.js" in served and "style.css" in served
    for name in served:
        assert any(fnmatch.fnmatch(f"web/{name}", pattern) for pattern in patterns), name


def test_dashboard_url() -> None:
    assert dashboard_url("127.0.0.1", 9010) == "http://127.0.0.1:9010/"
    assert dashboard_url("0.0.0.0", 9010) == "http://127.0.0.1:9010/"
    assert dashboard_url("::1", 80) == "http://[::1]:80/"


# ---------------------------------------------------------------------- the browser


def chromium_path() -> str | None:
    configured = os.environ.get("EXCHANGE_CHROMIUM")
    if configured:
        return configured
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_relay_process(system: LiveSystem, name: str, port: int) -> int:
    ports = await system.start(
        name,
        [
            *procfile_command("marketdata"),
            "--port",
            str(port),
            "--upstream",
            f"ws://127.0.0.1:{system.ports['engine_event_port']}",
            "--log-dir",
            str(system.tmp / "logs"),
            *system.config_args,
        ],
        wait_listening=True,
    )
    return ports["port"]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium through Playwright; SKIPPED loudly when either is missing."""
    try:
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import async_playwright, expect
    except ImportError:
        pytest.skip(
            "BROWSER TEST NOT RUN: Playwright for Python is missing (pip install -e '.[dev]')"
        )
    executable = chromium_path()
    if executable is None:
        pytest.skip(
            "BROWSER TEST NOT RUN: no Chromium (apt-get install chromium, or set "
            "EXCHANGE_CHROMIUM to a Chromium binary)"
        )
    expect.set_options(timeout=seconds(10) * 1000)
    async with async_playwright() as pw:
        try:
            chromium = await pw.chromium.launch(executable_path=executable, headless=True)
        except PlaywrightError as error:
            pytest.skip(f"BROWSER TEST NOT RUN: Chromium at {executable} did not start: {error}")
        try:
            yield chromium
        finally:
            await chromium.close()


def expectation() -> Any:
    from playwright.async_api import expect

    return expect


async def test_dashboard_in_a_real_browser(browser: Any, tmp_path: Path) -> None:
    async with live_system(tmp_path) as system:
        await run_browser_checks(system, browser, expectation(), tmp_path)


async def test_dashboard_resyncs_a_broken_book_chain(
    relay: MarketDataRelay, browser: Any, tmp_path: Path
) -> None:
    """A ``book_update`` whose ``prev_seq`` is not the last seq makes the page unsubscribe and
    subscribe the book again, and show the fresh snapshot (the bad update is never applied).
    The page's socket goes through Playwright's WebSocket route, which injects the gap."""
    expect = expectation()
    engine_depth = relay.feed.book_snapshot("AAA", 20)
    assert engine_depth.bids, "the fake engine's book is empty"
    best_bid = f"{engine_depth.bids[0][0]:.2f}"
    sent: list[Any] = []
    resubscribed = asyncio.Event()
    routes: list[Any] = []

    def route(ws: Any) -> None:
        server = ws.connect_to_server()
        routes.append(ws)

        def from_page(message: str | bytes) -> None:
            parsed = json.loads(message)
            batch = parsed if isinstance(parsed, list) else [parsed]
            sent.append(batch)
            kinds = [(m["type"], m.get("channels")) for m in batch]
            if kinds == [("unsubscribe", ["book.AAA"]), ("subscribe", ["book.AAA"])]:
                resubscribed.set()
            server.send(message)

        ws.on_message(from_page)
        server.on_message(ws.send)

    page = await browser.new_page()
    try:
        await page.route_web_socket(re.compile(r"^ws://"), route)
        await page.goto(f"http://127.0.0.1:{relay.port}/?symbol=AAA")
        ladder = page.locator("#ladder tbody")
        await expect(ladder.locator("tr[data-side=bid]").first).to_contain_text(best_bid)
        await expect(page.locator("#book-info")).to_contain_text("seq ")
        gap = {"type": "book_update", "symbol": "AAA", "seq": 10**9, "prev_seq": 10**9 - 1}
        routes[-1].send(json.dumps({**gap, "ts": 1, "bids": [[1.0, 5]], "asks": []}))
        await asyncio.wait_for(resubscribed.wait(), seconds(10))
        await expect(page.locator("#book-info")).to_contain_text("1 resyncs")
        await expect(page.locator("#book-info")).not_to_contain_text("resyncing")
        bogus = ladder.locator("td:nth-child(2)").filter(has_text=re.compile(r"^1\.00$"))
        await expect(bogus).to_have_count(0)
        await expect(ladder.locator("tr[data-side=bid]").first).to_contain_text(best_bid)
        # The pure model keeps its lists bounded however much arrives.
        sizes = await page.evaluate(
            """async () => {
              const m = await import("/static/model.js");
              const history = new m.TradeHistory();
              for (let i = 1; i <= 5000; i++) {
                history.add({ seq: i, ts: i * 1e9, price: 100 + (i % 7), qty: 1 });
              }
              const accounts = new m.Accounts();
              for (let i = 1; i <= 5000; i++) {
                accounts.update({ account: "a", equity: i, ts: i * 1e9 }, 0);
              }
              const news = new m.NewsLog();
              for (let i = 1; i <= 5000; i++) news.add({ seq: i, headline: "h" });
              const rounds = new m.Rounds();
              const rows = Array.from({ length: 500 }, (_, i) => ({ account: `a${i}` }));
              for (let i = 1; i <= 500; i++) {
                rounds.roundStarted({ round: i, name: "", cash: 1 });
                rounds.leaderboard({ round: i, ts: i, rows });
              }
              return [history.trades.length, history.candles[1].list.length,
                      history.candles[60].list.length, accounts.curves.get("a").length,
                      m.TAPE_CAP, m.CANDLE_CAP, m.CURVE_CAP,
                      [news.items.length, news.newest()[0].seq, m.LIST_CAP,
                       rounds.board.rows.length, rounds.started.size, m.LEADERBOARD_CAP,
                       m.ROUNDS_KEPT]];
            }"""
        )
        tape, candles_1s, candles_1m, curve, tape_cap, candle_cap, curve_cap, more = sizes
        news, newest, list_cap, board_rows, started, board_cap, rounds_kept = more
        assert (news, newest, board_rows, started) == (list_cap, 5000, board_cap, rounds_kept)
        assert tape <= 2 * tape_cap and candles_1s == candle_cap and curve == curve_cap
        assert candles_1m == 5000 // 60 + 1  # minutes 0..83
    except BaseException:
        await page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        raise
    finally:
        await page.close()


async def run_browser_checks(system: LiveSystem, browser: Any, expect: Any, tmp: Path) -> None:
    # A relay on a fixed free port, so that it can come back on the same one.
    await system.terminate("marketdata")
    port = await start_relay_process(system, "relay", free_port())
    url = f"http://127.0.0.1:{port}"
    assert f"dashboard url={url}/" in system.stderr("relay")
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        await page.goto(f"{url}/?symbol=AAPL&token={MONITOR_TOKEN}")
        connection = page.locator("#connection")
        await expect(connection).to_have_text("connected")
        await expect(page.locator("#symbol")).to_have_value("AAPL")
        ladder = page.locator("#ladder tbody")
        async with (
            gateway_client(system.gateway_port, "maker1-key") as maker,
            gateway_client(system.gateway_port, "taker1-key") as taker,
        ):
            await maker.send(
                {"type": "new_order", "symbol": "AAPL", "side": "buy", "qty": 7, "price": 189.5},
                {"type": "new_order", "symbol": "AAPL", "side": "sell", "qty": 5, "price": 190.5},
            )
            await maker.expect("execution_report", exec_type="new", price=189.5)
            await maker.expect("execution_report", exec_type="new", price=190.5)
            bid_row = ladder.locator("tr[data-side=bid]").filter(has_text="189.50")
            ask_row = ladder.locator("tr[data-side=ask]").filter(has_text="190.50")
            await expect(bid_row).to_contain_text("7")
            await expect(ask_row).to_contain_text("5")
            await expect(page.locator("#bbo")).to_have_text("bid 189.50 × 7 / ask 190.50 × 5")
            await expect(page.locator("#spread")).to_have_text("spread 1.00")

            await taker.send(
                {"type": "new_order", "symbol": "AAPL", "side": "buy", "qty": 2, "price": 190.5}
            )
            trade_row = page.locator("#tape tbody tr").filter(has_text="190.50")
            await expect(trade_row.first).to_contain_text("buy")
            await expect(ask_row).to_contain_text("3")

            accounts = page.locator("#accounts")
            await expect(accounts).to_be_visible()
            await expect(accounts.locator("tbody tr").filter(has_text="taker1")).to_contain_text(
                "AAPL 2@190.5"
            )

            # The relay goes away and comes back on the same port: the page says so.
            assert await system.terminate("relay") == 0
            await expect(connection).to_have_text("disconnected")
            await start_relay_process(system, "relay2", port)
            await expect(connection).to_have_text("connected", timeout=seconds(5) * 1000 + 1000)
            await expect(bid_row).to_contain_text("7")  # resubscribed: a fresh snapshot

            # The picker switches symbols (MSFT's book is empty here), and back.
            await page.locator("#symbol").select_option("MSFT")
            await expect(ladder.locator("tr[data-side=bid]")).to_have_count(0)
            await expect(page.locator("#tape tbody tr")).to_have_count(0)
            assert "symbol=MSFT" in page.url
            await page.locator("#symbol").select_option("AAPL")
            await expect(bid_row).to_contain_text("7")
            await page.locator("#interval").select_option("60")
            await taker.send(
                {"type": "new_order", "symbol": "AAPL", "side": "buy", "qty": 1, "price": 190.5}
            )
            await expect(ask_row).to_contain_text("2")
            await expect(trade_row.first).to_contain_text("buy")

            # A wrong token: the relay says forbidden, and no accounts are shown.
            other = await browser.new_page()
            await other.goto(f"{url}/?token=wrong")
            await expect(other.locator("#connection")).to_have_text("connected")
            await expect(other.locator("#token-state")).to_have_text("forbidden")
            await expect(other.locator("#accounts")).to_be_hidden()
            # the first instrument by default; its tape seeded from the relay's trade history
            await expect(other.locator("#symbol")).to_have_value("AAPL")
            await expect(other.locator("#tape tbody tr").filter(has_text="190.50")).to_have_count(1)
            # ...and the field on the page takes a good one.
            await other.locator("#token").fill(MONITOR_TOKEN)
            await other.locator("#token-form button").click()
            await expect(other.locator("#accounts")).to_be_visible()
            await expect(other.locator("#accounts tbody tr").first).to_be_visible()

            # News is public; the round's leaderboard comes with the token (PROTOCOL.md §7).
            public = await browser.new_page()
            public.on("pageerror", lambda error: errors.append(str(error)))
            await public.goto(f"{url}/")
            await expect(public.locator("#connection")).to_have_text("connected")
            await expect(public.locator("#news-empty")).to_be_visible()
            await expect(public.locator("#leaderboard-panel")).to_be_hidden()
            await check_news_and_round(system, expect, [page, other], public)
            await check_status(system, expect, [page, public])
            await public.close()
            await other.close()

            # The book again after the round emptied it, for the picture.
            await maker.send(
                {"type": "new_order", "symbol": "AAPL", "side": "buy", "qty": 7, "price": 189.5},
                {"type": "new_order", "symbol": "AAPL", "side": "sell", "qty": 5, "price": 190.5},
            )
            await taker.send(
                {"type": "new_order", "symbol": "AAPL", "side": "buy", "qty": 2, "price": 190.5}
            )
            await expect(ask_row).to_contain_text("3")
            leaders = page.locator("#leaderboard tbody tr")
            await expect(leaders.filter(has_text="taker1")).not_to_contain_text("50000.00")
            await page.screenshot(path=str(tmp / "dashboard.png"), full_page=True)
            if os.environ.get("EXCHANGE_UPDATE_SCREENSHOT") == "1":
                save_small_screenshot(await page.screenshot(full_page=True), SCREENSHOT)
        assert errors == []  # no uncaught exception in the page's scripts
    except BaseException:
        await page.screenshot(path=str(tmp / "failure.png"), full_page=True)
        raise
    finally:
        await page.close()


HEADLINE = "AAPL beats estimates, guidance raised"


async def check_news_and_round(
    system: LiveSystem, expect: Any, with_token: list[Any], public: Any
) -> None:
    """An admin publishes news and starts a round: every page shows the headline (with its
    sentiment and symbols); the pages with a token show round 1 and its accounts."""
    async with gateway_client(system.gateway_port, "admin-key") as admin:
        await admin.send(
            {
                "type": "publish_news",
                "headline": HEADLINE,
                "symbols": ["AAPL", "MSFT"],
                "sentiment": 0.8,
                "body": "<b>not markup</b>",
                "req_id": "n1",
            }
        )
        await admin.expect("news", req_id="n1")
        for page in [*with_token, public]:
            item = page.locator("#news li").first
            await expect(item).to_contain_text(HEADLINE)
            await expect(item).to_contain_text("+0.80")
            await expect(item).to_contain_text("AAPL, MSFT")
            await expect(page.locator("#news-empty")).to_be_hidden()
        await expect(public.locator("#news li b")).to_have_count(0)  # text, never HTML
        await admin.send(
            {"type": "start_round", "name": "browser round", "cash": 50_000, "req_id": "r1"}
        )
        await admin.expect("round_started")
    for page in with_token:
        await expect(page.locator("#leaderboard-panel")).to_be_visible()
        await expect(page.locator("#round")).to_have_text("round 1 · browser round · cash 50000")
        board = page.locator("#leaderboard tbody tr")
        for account in ("taker1", "maker1"):
            row = board.filter(has_text=account)
            await expect(row).to_contain_text("50000.00")  # the round's cash: flat, no pnl
            await expect(row).to_contain_text("0.00%")
    await expect(public.locator("#leaderboard-panel")).to_be_hidden()


async def check_status(system: LiveSystem, expect: Any, pages: list[Any]) -> None:
    """An admin puts AAPL (the symbol these pages show) in auction, then opens it: the real
    engine's ``market_status`` reaches every page's status badge through the relay."""
    async with gateway_client(system.gateway_port, "admin-key") as admin:
        for status in ("auction", "open"):
            await admin.send({"type": "set_status", "symbol": "AAPL", "status": status})
            await admin.expect("market_status", status=status)
            for page in pages:
                await expect(page.locator("#market-status")).to_have_text(status)
                await expect(page.locator("#market-status")).to_have_attribute("data-state", status)


def save_small_screenshot(png: bytes, path: Path) -> None:
    """Write ``png`` as a 256-colour PNG (the dark page survives it; the file is ~5x
    smaller than Chromium's truecolour one)."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


async def test_dashboard_shows_the_symbols_trading_status(browser: Any, tmp_path: Path) -> None:
    """A real relay in front of the fake engine, which injects ``market_status`` and
    ``auction`` events (PROTOCOL.md §3.2) at chosen moments: the page's badge follows the
    selected symbol's status, with the auction's indicative price, qty, imbalance and end;
    another symbol's status leaves it alone; a page opened later learns the status at once."""
    expect = expectation()
    engine = FakeEngine()
    await engine.start()
    random_flow(engine, random.Random(5), 200)
    relay = await start_relay(engine)
    page = await browser.new_page()
    try:
        await page.goto(f"http://127.0.0.1:{relay.port}/?symbol=AAA")
        badge = page.locator("#market-status")
        detail = page.locator("#auction-info")
        await expect(page.locator("#connection")).to_have_text("connected")
        await expect(badge).to_have_text("open")
        await expect(badge).to_be_visible()
        noon = 1_714_564_800_000_000_000  # 12:00:00 UTC
        engine.inject(MarketStatus("AAA", "halted", "circuit_breaker", noon + 20 * 10**9, 0, 0))
        await expect(badge).to_have_text("halted")
        await expect(badge).to_have_attribute("data-state", "halted")
        await expect(detail).to_have_text("until 12:00:20.000")
        engine.inject(MarketStatus("BBB", "auction", "admin", None, 0, 0))  # not shown
        engine.inject(
            MarketStatus("AAA", "auction", "circuit_breaker", noon + 30 * 10**9, 0, 0),
            AuctionInfo("AAA", 100.25, 40, -3, noon + 30 * 10**9, 0, 0),
        )
        await expect(badge).to_have_text("auction")
        await expect(detail).to_have_text(
            "indicative 100.25 × 40 · imbalance -3 · ends 12:00:30.000"
        )
        # A page opened now gets every status and the live auction on subscribe.
        later = await browser.new_page()
        try:
            await later.goto(f"http://127.0.0.1:{relay.port}/?symbol=BBB")
            await expect(later.locator("#market-status")).to_have_text("auction")
            await later.select_option("#symbol", "AAA")
            await expect(later.locator("#auction-info")).to_contain_text("indicative 100.25 × 40")
        finally:
            await later.close()
        engine.inject(MarketStatus("AAA", "open", "circuit_breaker", None, 0, 0))
        await expect(badge).to_have_text("open")
        await expect(detail).to_have_text("")
        # The pure model: newest seq wins, the instruments list until a market_status comes.
        checks = await page.evaluate(
            """async () => {
              const m = await import("/static/model.js");
              const s = new m.MarketStatuses();
              s.instruments([{ symbol: "A", status: "halted" }, { symbol: "B" }]);
              const listed = [s.of("A"), s.of("B"), s.of("C")];
              s.status({ symbol: "A", status: "auction", until: null, seq: 5 });
              s.auction({ symbol: "A", indicative_price: null, indicative_qty: 0,
                          imbalance: 7, ends_at: null, seq: 6 });
              const auction = s.detail("A");
              const older = s.status({ symbol: "A", status: "open", until: null, seq: 4 });
              s.reconnected();
              const fresh = s.status({ symbol: "A", status: "halted", until: null, seq: 2 });
              return [listed, auction, older, fresh, s.of("A"), s.auctions.size];
            }"""
        )
        assert checks == [
            ["halted", "open", "open"],
            "no cross · imbalance +7",
            False,
            True,
            "halted",
            0,
        ]
    except BaseException:
        await page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        raise
    finally:
        await page.close()
        await relay.stop()
        await engine.stop()
