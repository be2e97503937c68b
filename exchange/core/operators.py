"""What operators do to the venue (PROTOCOL §3.3): news, rounds, and the round's standings.

- ``publish_news``: a sequenced ``news`` event; a ``shock`` moves each named symbol's
  reference price to reference x (1 + shock), rounded half-even to the tick (at least one);
  before a symbol's first trade that is its "last" price, so stops it meets fire after the
  news.
- ``start_round``: every account that is not a system account has its live orders cancelled
  (``canceled``, text ``round``), its positions closed at the mark without fee and its cash,
  fees and realized PnL reset: it starts the round with the round's cash and nothing else,
  as a new account would. Then a ``round_started`` event; the accounts' ``account_update``s
  follow at the end of the command, like any command's.
- ``leaderboard``: the standings as of now (the engine asks every ``leaderboard_interval_ms``,
  after publishing the ``account_update`` of every account whose equity moved with the marks,
  so a leaderboard agrees with each account's last update before it):
  every non-system account ranked by equity (ties: name), at most ``LEADERBOARD_ROWS``;
  published only when they differ from the last ones published.

Money stays conserved through a round's reset: what an account held (cash less its positions'
cost bases) is replaced by the round's cash, and its ``deposits`` move by the difference.

The round statistics live on each account (``fills``, ``liquidations``, ``peak_equity``,
``max_drawdown``): fills and liquidations are counted as they happen; the drawdown is
measured on the equity each leaderboard sees (so at the leaderboard's interval).

Each function changes the ``Venue`` and appends the events it causes, with the next ``seq``.
"""

from __future__ import annotations

from decimal import Decimal

from exchange.core.accounts import AccountState
from exchange.core.instruments import MONEY_SCALE, half_money_to_float
from exchange.core.orders import cancel_resting
from exchange.core.reports import invalid
from exchange.core.triggers import recheck
from exchange.core.venue import Venue
from exchange.protocol.bounds import MAX_TICKS
from exchange.protocol.messages import (
    Leaderboard,
    LeaderboardRow,
    News,
    PublishNews,
    RoundStarted,
    StartRound,
)

LEADERBOARD_ROWS = 100
"""The most accounts a leaderboard lists (PROTOCOL §3.3)."""


def shocked_reference(reference_ticks: int, shock: float) -> int:
    """``reference_ticks`` x (1 + ``shock``) rounded half-even to a whole tick, within
    1 ... MAX_TICKS."""
    moved = round(Decimal(reference_ticks) * (Decimal(1) + Decimal(repr(shock))))
    return min(MAX_TICKS, max(1, int(moved)))


def publish_news(venue: Venue, cmd: PublishNews) -> None:
    """One ``news`` event (after moving the shocked symbols' reference prices); an unknown
    symbol or a repeated one is an ``invalid_message`` error and changes nothing."""
    books = venue.books
    unknown = [symbol for symbol in cmd.symbols if symbol not in books]
    if unknown:
        venue.events.append(invalid(cmd, f"unknown symbol {unknown[0]!r}"))
        return
    if len(set(cmd.symbols)) != len(cmd.symbols):
        venue.events.append(invalid(cmd, "a symbol is named twice"))
        return
    moved: dict[str, float] = {}
    if cmd.shock:
        for symbol in cmd.symbols:
            instrument = books[symbol].instrument
            instrument.set_reference(shocked_reference(instrument.reference_ticks, cmd.shock))
            moved[symbol] = instrument.info.reference_price
            venue.touched_books[symbol] = books[symbol]  # the mark may follow the reference
    news_id = venue.next_news_id
    venue.next_news_id += 1
    venue.seq += 1
    venue.events.append(
        News(
            news_id=news_id,
            headline=cmd.headline,
            body=cmd.body,
            symbols=list(cmd.symbols),
            sentiment=cmd.sentiment,
            shock=cmd.shock,
            ts=venue.ts,
            seq=venue.seq,
            reference_prices=moved,
            req_id=cmd.req_id,
        )
    )
    for symbol in moved:  # before a symbol's first trade "last" is its reference price
        recheck(venue, symbol)


def start_round(venue: Venue, cmd: StartRound) -> None:
    """Reset every non-system account to the round's cash, then ``round_started``."""
    cash = round(cmd.cash * MONEY_SCALE)
    for account in list(venue.accounts.values()):
        if account.system:
            continue
        for order in list(account.orders.values()):
            cancel_resting(venue, order, None, None, "round")
        _reset(venue, account, cash)
    venue.round += 1
    venue.round_name = cmd.name
    venue.round_cash = cash
    venue.seq += 1
    venue.events.append(
        RoundStarted(
            round=venue.round,
            name=cmd.name,
            cash=half_money_to_float(2 * cash),
            ts=venue.ts,
            seq=venue.seq,
            req_id=cmd.req_id,
        )
    )


def _reset(venue: Venue, account: AccountState, cash: int) -> None:
    """``account`` starts afresh with ``cash``: no position, fees, realized PnL or
    liquidation in progress; ``deposits`` absorb the difference (money stays conserved)."""
    held = account.cash - sum(holding.cost for holding in account.holdings.values())
    account.deposits += cash - held
    account.cash = cash
    account.fees = 0
    account.realized = 0
    account.holdings.clear()
    if account.liquidating:
        account.liquidating = False
        venue.liquidating.pop(account.name, None)
    venue.watch.disarm(account)
    account.fills = 0
    account.liquidations = 0
    account.peak_equity = 2 * cash
    account.max_drawdown = 0
    venue.touched_accounts[account.name] = account


def leaderboard(venue: Venue) -> None:
    """A ``leaderboard`` event with the standings as of now, unless they equal the last one
    published (the relay repeats the latest every second); each account's drawdown is
    measured at this equity either way. Before the first round ``pnl`` is measured from the
    money each account brought (its ``deposits``)."""
    entries: list[tuple[int, str, AccountState]] = []
    for account in venue.accounts.values():
        if account.system:
            continue
        equity = account.equity_twice()
        if equity > account.peak_equity:
            account.peak_equity = equity
        drop = account.peak_equity - equity
        if drop > account.max_drawdown:
            account.max_drawdown = drop
        entries.append((-equity, account.name, account))
    entries.sort(key=lambda entry: (entry[0], entry[1]))
    rows = []
    for negative, name, account in entries[:LEADERBOARD_ROWS]:
        equity = -negative
        base = venue.round_cash if venue.round else account.deposits
        pnl = equity - 2 * base
        rows.append(
            LeaderboardRow(
                account=name,
                equity=half_money_to_float(equity),
                pnl=half_money_to_float(pnl),
                return_pct=round(pnl * 50 / base, 6) if base else 0.0,
                max_drawdown=half_money_to_float(account.max_drawdown),
                trades=account.fills,
                liquidations=account.liquidations,
            )
        )
    last = venue.standings
    if last is not None and last.round == venue.round and last.rows == rows:
        return
    venue.seq += 1
    venue.standings = Leaderboard(round=venue.round, ts=venue.ts, rows=rows, seq=venue.seq)
    venue.events.append(venue.standings)
