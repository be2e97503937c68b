"""What a command's changes publish once it is applied: per touched book its L2 delta, its
BBO if that moved, and its new mark; per touched account one ``account_update``.

Each function changes the ``Venue`` and appends the events it causes, with the next ``seq``.
"""

from __future__ import annotations

from exchange.core.book import OrderBook
from exchange.core.reports import bbo_event
from exchange.core.venue import Venue
from exchange.protocol.messages import BookDelta


def publish_books(venue: Venue) -> list[OrderBook]:
    """One ``book_delta`` and (if it moved) one ``bbo`` per touched book, and each touched
    book's mark (mid of the BBO, else last trade, else reference); returns the books whose
    mark moved."""
    events = venue.events
    ts = venue.ts
    moved: list[OrderBook] = []
    for book in venue.touched_books.values():
        if book.changed_bids or book.changed_asks:
            bids, asks = book.take_changes()
            venue.seq += 1
            events.append(BookDelta(book.symbol, bids, asks, ts, venue.seq))
        bid = book.best_bid
        ask = book.best_ask
        bbo = (bid, book.bids[bid].qty if bid else 0, ask, book.asks[ask].qty if ask else 0)
        if bbo != book.last_bbo:
            book.last_bbo = bbo
            venue.seq += 1
            events.append(bbo_event(book, ts=ts, seq=venue.seq))
        if bid and ask:
            mark = (bid + ask) / 2
        elif book.last_trade:
            mark = float(book.last_trade)
        else:
            mark = float(book.instrument.reference_ticks)
        if mark != book.mark:
            book.mark = mark
            moved.append(book)
    venue.touched_books.clear()
    return moved


def publish_accounts(venue: Venue) -> None:
    """One ``account_update`` per touched account (in the order they were touched); records
    the equity each shows, for revaluation."""
    events = venue.events
    ts = venue.ts
    reported = venue.reported_equity
    for name, account in venue.touched_accounts.items():
        venue.seq += 1
        update = account.view(ts, venue.seq)
        events.append(update)
        reported[name] = update.equity
    venue.touched_accounts.clear()
