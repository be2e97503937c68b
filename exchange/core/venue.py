"""The core's state, shared by its stages: books, accounts, the done-order memory, the id and
``seq`` counters, and the tape of the command being applied (its input time, the events it has
caused so far, the books and accounts it touched).

Only ``Exchange`` creates a ``Venue``; the stages (``risk``, ``matching``, ``orders``,
``liquidation``) read and change it, always from inside ``Exchange.submit``. Attributes are
public so that the stages can reach them; nothing outside the core touches them.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from exchange.core.accounts import AccountState
from exchange.core.book import Order, OrderBook
from exchange.core.config import CoreConfig
from exchange.core.done import DoneOrders
from exchange.core.instruments import MONEY_SCALE, Instrument
from exchange.core.margin_watch import MarginWatch
from exchange.core.market_control import Control
from exchange.core.trigger_book import TriggerBook
from exchange.protocol.messages import Leaderboard


class Venue:
    """All exchange state, and the tape of the current command."""

    __slots__ = (
        "account_order",
        "accounts",
        "activations",
        "api_keys",
        "armed",
        "books",
        "breakers",
        "config",
        "controls",
        "deadlines",
        "deadlines_limit",
        "done",
        "events",
        "fee_pool",
        "firing",
        "insurance",
        "liquidating",
        "next_news_id",
        "next_order_id",
        "next_trade_id",
        "reduce_only",
        "reported_equity",
        "round",
        "round_cash",
        "round_name",
        "seq",
        "standings",
        "touched_accounts",
        "touched_books",
        "triggers",
        "ts",
        "watch",
    )

    def __init__(self, config: CoreConfig) -> None:
        """The venue ``config`` describes, before any command: its books empty, its accounts
        (the insurance fund first) with their starting cash. Raises ValueError for a config
        the core cannot represent."""
        self.config = config
        self.books: dict[str, OrderBook] = {}
        for spec in config.instruments:
            if spec.symbol in self.books:
                raise ValueError(f"duplicate instrument {spec.symbol}")
            self.books[spec.symbol] = OrderBook(Instrument(spec))
        self.accounts: dict[str, AccountState] = {}
        self.account_order: dict[str, int] = {}
        """Creation index of each account: liquidations run in this order."""
        self.api_keys: dict[str, AccountState] = {}
        self.done = DoneOrders(config.done_order_memory)
        self.reported_equity: dict[str, float] = {}
        """The equity each account's last ``account_update`` showed (for revaluation)."""
        self.liquidating: dict[str, AccountState] = {}
        self.watch = MarginWatch()
        self.deadlines: list[tuple[int, int, Order]] = []
        """The GTD orders' deadlines heap: (expire_at, order_id, order) (``clock``)."""
        self.deadlines_limit = 1024
        """Heap size at which ``clock.schedule`` drops stale entries."""
        self.triggers: dict[str, TriggerBook] = {symbol: TriggerBook() for symbol in self.books}
        """Each symbol's armed conditional orders (``triggers``)."""
        self.armed = 0
        """Orders armed in the trigger books or queued to fire: 0 lets trades skip the check."""
        self.activations: list[tuple[int, int, Order]] = []
        """Heap of (activate_at, order_id, order) of the orders waiting for ``activate_at``."""
        self.firing: deque[Order] = deque()
        """Orders whose condition was met, to fire in this order (empty between commands)."""
        self.reduce_only: dict[str, int] = {}
        """Number of live reduce-only orders per account (absent: none)."""
        self.seq = 0
        self.ts = 0
        self.next_order_id = 1
        self.next_trade_id = 1
        self.fee_pool = 0
        self.events: list[Any] = []
        self.touched_books: dict[str, OrderBook] = {}
        self.touched_accounts: dict[str, AccountState] = {}
        self.controls = {symbol: Control(book) for symbol, book in self.books.items()}
        """Each symbol's trading-status record (``exchange.core.status``)."""
        self.breakers = any(control.breaker_move for control in self.controls.values())
        """Whether some instrument has a circuit breaker (else trades need no check)."""
        self.round = 0
        """The current round (``operators.start_round``); 0 before the first."""
        self.round_name = ""
        self.round_cash = 0
        """Money units every non-system account started the current round with."""
        self.next_news_id = 1
        self.standings: Leaderboard | None = None
        """The last ``leaderboard`` published (not in snapshots: after a restart the next
        one is published whatever it holds)."""
        self.insurance = self.open_account(
            config.insurance_account,
            round(config.insurance_fund_cash * MONEY_SCALE),
            None,
            0,
            system=True,
        )
        for account in config.accounts:
            self.open_account(
                account.name,
                round(account.cash * MONEY_SCALE),
                account.api_key,
                account.max_open_orders or config.max_open_orders,
                system=account.system,
            )

    def open_account(
        self,
        name: str,
        cash: int,
        api_key: str | None,
        max_open_orders: int,
        system: bool = False,
    ) -> AccountState:
        """Add an account with ``cash`` money units (the caller checked the name is new)."""
        account = AccountState(name, cash, api_key, max_open_orders, system)
        self.account_order[name] = len(self.accounts)
        self.accounts[name] = account
        if api_key is not None:
            self.api_keys[api_key] = account
        return account
