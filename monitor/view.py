"""Pure rendering: ``MonitorState`` → rich ``Text`` blocks for the screen's panels.

No Textual here, so every panel can be checked as plain text in tests.

Numbers print as PROTOCOL.md §2 says ("Money is exact"): prices at the tick's decimals
(a half-tick mid or an average price with the decimals it needs, at most 8), money as the
shortest decimal rounded half-even to at most 8 decimals, thousands grouped (``1,250.5``).
Differences computed here (the spread) are rounded where they print.
"""

from __future__ import annotations

from datetime import UTC, datetime

from rich.text import Text

from exchange.protocol.display import decimal_text, price_text
from exchange.protocol.messages import AccountUpdate, News
from monitor.state import MonitorState

MARKET_STYLE = {"halted": "bold white on red", "auction": "bold black on yellow"}
"""How a symbol that is not open is flagged (``open`` is not flagged)."""

STATUS_STYLE = {
    "connected": "bold black on green",
    "connecting": "bold black on yellow",
    "reconnecting": "bold black on yellow",
    "disconnected": "bold white on red",
}


def clock(ts: int) -> str:
    """``ts`` (ns since the epoch) as UTC ``HH:MM:SS.mmm``."""
    if ts <= 0:
        return "--:--:--.---"
    moment = datetime.fromtimestamp(ts / 1e9, tz=UTC)
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def fmt_price(price: float, tick: float | None) -> str:
    """A price at the tick's decimals (``190.10``; 2 without a tick size); off the tick grid
    (a half-tick mid, an average) with as many more decimals as it needs, at most 8."""
    return price_text(price, tick)


def fmt_money(value: float) -> str:
    """An amount: shortest decimal, rounded half-even to at most 8 decimals, thousands
    grouped (``100,250.0``, ``-10.0``, ``19,016.4045``)."""
    return decimal_text(value, grouping=True)


def status_line(state: MonitorState) -> Text:
    """The connection indicator and what is selected."""
    text = Text()
    text.append(f" {state.status.upper()} ", style=STATUS_STYLE[state.status])
    if state.status == "reconnecting":
        text.append(f" attempt {state.attempts}")
    text.append(f"  {state.url}  ", style="dim")
    if not state.symbols:
        text.append("(no symbols yet)", style="bold")
    for i, symbol in enumerate(state.symbols):
        text.append("  " if i else "")
        text.append(f"[{symbol}]" if symbol == state.selected else symbol, style="bold")
        market = state.symbol_status(symbol)
        if market != "open":
            text.append(f" {market.upper()}", style=MARKET_STYLE.get(market, "bold"))
    text.append(f"  panel: {state.panel}  msgs {state.messages}  seq {state.last_seq}  ")
    text.append(clock(state.last_ts), style="dim")
    if state.last_error and state.status != "connected":
        text.append(f"  {state.last_error}", style="red")
    return text


def ladder(state: MonitorState, depth: int = 10) -> Text:
    """The selected book: asks (highest first) over bids, sizes and cumulative sizes."""
    symbol = state.selected
    text = Text()
    if symbol is None:
        return Text("waiting for market data…", style="dim")
    book = state.book(symbol)
    info = state.instruments.get(symbol)
    tick = info.tick_size if info else None
    text.append(f"{symbol} book", style="bold")
    if not book.synced:
        text.append("  (resyncing)", style="yellow")
    text.append_text(market_status(state, symbol))
    text.append(f"\n{'':4}{'price':>12} {'size':>9} {'cum':>10}\n", style="dim")
    bids, asks = book.levels(depth)
    cumulative = 0
    ask_rows = []
    for price, qty in asks:
        cumulative += qty
        ask_rows.append(f"ASK {fmt_price(price, tick):>12} {qty:>9} {cumulative:>10}")
    for row in reversed(ask_rows):
        text.append(row + "\n", style="red")
    if bids and asks:
        spread = asks[0][0] - bids[0][0]
        mid = (asks[0][0] + bids[0][0]) / 2
        text.append(
            f"{'':4}spread {fmt_price(spread, tick)} ({spread / mid * 1e4:.1f} bps)"
            f"  mid {fmt_price(mid, tick)}\n",
            style="bold",
        )
    else:
        text.append(f"{'':4}spread -\n", style="bold")
    cumulative = 0
    for price, qty in bids:
        cumulative += qty
        text.append(f"BID {fmt_price(price, tick):>12} {qty:>9} {cumulative:>10}\n", style="green")
    return text


def market_status(state: MonitorState, symbol: str) -> Text:
    """The book header's status flag: nothing while open; ``HALTED`` (and until when), or
    ``AUCTION`` with the indicative price × qty, the imbalance and when it ends."""
    market = state.symbol_status(symbol)
    text = Text()
    if market == "open":
        return text
    text.append(f"  {market.upper()} ", style=MARKET_STYLE.get(market, "bold"))
    known = state.market_status.get(symbol)
    if market == "halted":
        if known is not None and known.until:
            text.append(f" until {clock(known.until)}", style="red")
        return text
    auction = state.auctions.get(symbol)
    if auction is None:
        return text
    info = state.instruments.get(symbol)
    tick = info.tick_size if info else None
    if auction.indicative_price is None:
        text.append(" no cross", style="yellow")
    else:
        price = fmt_price(auction.indicative_price, tick)
        text.append(f" ind. {price} x {auction.indicative_qty}", style="yellow")
    text.append(f" imb {auction.imbalance:+d}", style="yellow")
    if auction.ends_at:
        text.append(f" ends {clock(auction.ends_at)}", style="yellow")
    return text


def tape(state: MonitorState, rows: int = 30, only_selected: bool = False) -> Text:
    """The latest trades, newest first."""
    text = Text()
    text.append(f"{'time':12} {'symbol':9} {'side':4} {'price':>12} {'qty':>7}\n", style="dim")
    shown = 0
    for trade in state.tape:
        if only_selected and trade.symbol != state.selected:
            continue
        info = state.instruments.get(trade.symbol)
        price = fmt_price(trade.price, info.tick_size if info else None)
        style = TAPE_STYLE.get(trade.aggressor, "red")
        side = "auct" if trade.aggressor == "auction" else trade.aggressor
        line = f"{clock(trade.ts):12} {trade.symbol:9} {side:4} {price:>12}"
        text.append(f"{line} {trade.qty:>7}\n", style=style)
        shown += 1
        if shown >= rows:
            break
    if shown == 0:
        text.append("no trades yet\n", style="dim")
    return text


TAPE_STYLE = {"buy": "green", "sell": "red", "auction": "yellow"}
"""Tape colours by aggressor; an auction's uncross trades show as ``auct``."""


def positions_text(update: AccountUpdate) -> str:
    held = [p for p in update.positions if p.qty]
    return " ".join(f"{p.symbol}:{p.qty:+d}" for p in held) or "flat"


def margin_use(update: AccountUpdate) -> float:
    """Initial margin as a fraction of equity (inf when equity is gone)."""
    if update.equity <= 0:
        return float("inf") if update.initial_margin > 0 else 0.0
    return update.initial_margin / update.equity


def ranked_accounts(state: MonitorState) -> list[AccountUpdate]:
    """Accounts by equity, richest first (ties by name)."""
    return sorted(state.accounts.values(), key=lambda a: (-a.equity, a.account))


def accounts(state: MonitorState, rows: int = 20) -> Text:
    """Accounts ranked by equity: position, PnL, fees, margin use."""
    if state.accounts_access == "no_token":
        return Text("accounts: start the monitor with --token (a [marketdata] monitor token)")
    if state.accounts_access == "forbidden":
        return Text("accounts: the relay refused the token (forbidden)", style="red")
    text = Text()
    text.append(
        f"{'#':>2} {'account':14} {'equity':>14} {'realized':>12} {'unrealized':>12} "
        f"{'fees':>10} {'margin':>7}  positions\n",
        style="dim",
    )
    for rank, update in enumerate(ranked_accounts(state)[:rows], start=1):
        use = margin_use(update)
        style = "bold red" if update.liquidating else ("yellow" if use > 0.5 else "")
        flag = " LIQUIDATING" if update.liquidating else ""
        text.append(
            f"{rank:>2} {update.account[:14]:14} {fmt_money(update.equity):>14} "
            f"{fmt_money(update.realized_pnl):>12} {fmt_money(update.unrealized_pnl):>12} "
            f"{fmt_money(update.fees):>10} {use:>6.0%}  {positions_text(update)}{flag}\n",
            style=style,
        )
    if not state.accounts:
        text.append("no account updates yet\n", style="dim")
    return text


def liquidations(state: MonitorState, rows: int = 20) -> Text:
    """The liquidation log, newest first."""
    text = Text()
    text.append(
        f"{'time':12} {'account':14} {'symbol':9} {'side':4} {'qty':>7} {'price':>12}\n",
        style="dim",
    )
    for event in list(state.liquidations)[:rows]:
        info = state.instruments.get(event.symbol)
        price = fmt_price(event.price, info.tick_size if info else None)
        text.append(
            f"{clock(event.ts):12} {event.account[:14]:14} {event.symbol:9} {event.side:4} "
            f"{event.qty:>7} {price:>12}\n",
            style="bold red",
        )
    if not state.liquidations:
        text.append("no liquidations yet\n", style="dim")
    return text


def price_summary(state: MonitorState) -> Text:
    """Last, low and high of the selected symbol's recent trades, and its volume."""
    symbol = state.selected
    prices = list(state.prices.get(symbol or "", ()))
    if symbol is None or not prices:
        return Text("price: no trades yet", style="dim")
    info = state.instruments.get(symbol)
    tick = info.tick_size if info else None
    change = (prices[-1] / prices[0] - 1) * 100 if prices[0] else 0.0
    return Text(
        f"{symbol} last {fmt_price(prices[-1], tick)}  low {fmt_price(min(prices), tick)}  "
        f"high {fmt_price(max(prices), tick)}  {change:+.2f}% over {len(prices)} trades  "
        f"volume {state.volumes.get(symbol, 0)}"
    )


def percent(value: float) -> str:
    """``+2.50%`` / ``-1.00%``; what rounds to zero prints ``+0.00%`` (never ``-0.00%``)."""
    rounded = round(value, 2) or 0.0
    return f"{rounded:+.2f}%"


def sentiment_style(sentiment: float) -> str:
    """Green for good news, red for bad, plain for neutral (|sentiment| < 0.1)."""
    if sentiment >= 0.1:
        return "green"
    if sentiment <= -0.1:
        return "red"
    return ""


def one_line(text: str) -> str:
    """``text`` with its line breaks as spaces (a headline fits one screen row)."""
    return " ".join(text.split()) if "\n" in text or "\r" in text else text


def news_line(item: News) -> str:
    """``12:00:01.000 +0.90 AAPL,MSFT  headline [shock +5%]`` (no trailing newline)."""
    symbols = ",".join(item.symbols) or "-"
    shock = f" [shock {item.shock * 100:+.4g}%]" if item.shock else ""
    return (
        f"{clock(item.ts):12} {item.sentiment:+.2f} {symbols:12} {one_line(item.headline)}{shock}"
    )


def headline(state: MonitorState) -> Text:
    """One row: the newest news item (the ticker above the panels)."""
    if not state.news:
        return Text("news: none yet", style="dim")
    item = state.news[0]
    text = Text()
    text.append("NEWS ", style="bold")
    text.append(news_line(item), style=sentiment_style(item.sentiment))
    return text


def news(state: MonitorState, rows: int = 20) -> Text:
    """The latest news, newest first: time, sentiment, symbols, headline (and any shock)."""
    text = Text()
    text.append(f"{'time':12} {'sent.':>5} {'symbols':12} headline\n", style="dim")
    for item in list(state.news)[:rows]:
        text.append(news_line(item) + "\n", style=sentiment_style(item.sentiment))
    if not state.news:
        text.append("no news yet\n", style="dim")
    return text


def leaderboard(state: MonitorState, rows: int = 20) -> Text:
    """The round's standings as the relay last sent them (public, no token needed): rank,
    account, equity, pnl, return %, max drawdown, trades, liquidations."""
    board = state.leaderboard
    if board is None:
        return Text("leaderboard: none yet (the relay sends one every second)", style="dim")
    text = Text()
    started = state.rounds.get(board.round)
    if board.round == 0:
        title = "round 0 (before the first round: from each account's starting cash)"
    elif started is not None:
        name = f" {one_line(started.name)!r}" if started.name else ""
        title = f"round {board.round}{name}, cash {fmt_money(started.cash)}"
    else:
        title = f"round {board.round}"
    shown = min(rows, len(board.rows))
    text.append(f"{title}  ·  {clock(board.ts)}  ·  top {shown} of {len(board.rows)}\n")
    text.append(
        f"{'#':>3} {'account':14} {'equity':>14} {'pnl':>12} {'return':>8} {'max dd':>10} "
        f"{'trades':>6} {'liq':>3}\n",
        style="dim",
    )
    for rank, row in enumerate(board.rows[:rows], start=1):
        style = "green" if row.pnl > 0 else ("red" if row.pnl < 0 else "")
        text.append(
            f"{rank:>3} {row.account[:14]:14} {fmt_money(row.equity):>14} "
            f"{fmt_money(row.pnl):>12} {percent(row.return_pct):>8} "
            f"{fmt_money(row.max_drawdown):>10} {row.trades:>6} {row.liquidations:>3}\n",
            style=style,
        )
    if not board.rows:
        text.append("no accounts\n", style="dim")
    return text
