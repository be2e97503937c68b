"""The Textual app: panels rendered from ``MonitorState`` at a steady rate.

The relay reader (``monitor.feed.run_feed``) runs in a worker and only reduces messages
into the state; a timer re-renders the panels ``fps`` times a second, whatever the message
rate. Keys: ←/→ (or [ ]) switch symbols, a / l / t / n / b switch the bottom panel
(accounts, liquidations, all trades, news, leaderboard), q quits. The newest headline stays
on the row under the status line whatever the panel.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Sparkline, Static

from monitor import view
from monitor.feed import run_feed
from monitor.state import MonitorState, Panel, SelectPanel, SelectSymbol, reduce


class MonitorApp(App[None]):
    """A read-only live view of the exchange. ``url`` None: no connection (tests)."""

    TITLE = "exchange monitor"
    CSS = """
    #status { height: 1; }
    #headline { height: 1; }
    #top { height: 1fr; }
    #ladder { width: 46; height: 1fr; border: round $secondary; padding: 0 1; }
    #tape { width: 1fr; height: 1fr; border: round $secondary; padding: 0 1; }
    #price { height: 5; border: round $secondary; }
    #price-label { height: 1; padding: 0 1; }
    #sparkline { height: 2; margin: 0 1; }
    #bottom { height: 13; border: round $secondary; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("left,[", "symbol(-1)", "Prev symbol"),
        Binding("right,]", "symbol(1)", "Next symbol"),
        Binding("a", "panel('accounts')", "Accounts"),
        Binding("l", "panel('liquidations')", "Liquidations"),
        Binding("t", "panel('trades')", "All trades"),
        Binding("n", "panel('news')", "News"),
        Binding("b", "panel('leaderboard')", "Leaderboard"),
    ]

    def __init__(
        self,
        url: str | None,
        token: str | None = None,
        *,
        fps: float = 5.0,
        depth: int = 10,
        state: MonitorState | None = None,
    ) -> None:
        super().__init__()
        self.url = url
        self.token = token
        self.fps = fps
        self.depth = depth
        self.state = state or MonitorState()
        self.renders = 0

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        yield Static(id="headline")
        with Horizontal(id="top"):
            yield Static(id="ladder")
            yield Static(id="tape")
        with Vertical(id="price"):
            yield Static(id="price-label")
            yield Sparkline([], id="sparkline")
        yield Static(id="bottom")
        yield Footer()

    def on_mount(self) -> None:
        if self.url is not None:
            self.run_worker(run_feed(self.url, self.token, self.state), name="feed", exclusive=True)
        self.refresh_view()
        # The ladder's depth follows its height, known only once laid out (and on resize).
        self.call_after_refresh(self.refresh_view)
        self.set_interval(1 / self.fps, self.refresh_view)

    def on_resize(self) -> None:
        self.call_after_refresh(self.refresh_view)

    def refresh_view(self) -> None:
        """Render every panel from the state (called on the timer, not per message).

        A no-op once the app is shutting down: Textual prunes the screen's widgets before it
        stops the app's timers, so a late tick must not look them up.
        """
        if not self.is_running:
            return
        state = self.state
        self.renders += 1
        self.query_one("#status", Static).update(view.status_line(state))
        self.query_one("#headline", Static).update(view.headline(state))
        ladder = self.query_one("#ladder", Static)
        fits = max(1, (ladder.content_size.height - 3) // 2) if ladder.content_size.height else 1
        ladder.update(view.ladder(state, min(self.depth, fits)))
        self.query_one("#tape", Static).update(view.tape(state, 40, only_selected=True))
        self.query_one("#price-label", Static).update(view.price_summary(state))
        self.query_one("#sparkline", Sparkline).data = list(
            state.prices.get(state.selected or "", ())
        )
        bottom = self.query_one("#bottom", Static)
        rows = max(1, bottom.content_size.height - 1) if bottom.content_size.height else 10
        if state.panel == "accounts":
            bottom.update(view.accounts(state, rows))
        elif state.panel == "liquidations":
            bottom.update(view.liquidations(state, rows))
        elif state.panel == "news":
            bottom.update(view.news(state, rows))
        elif state.panel == "leaderboard":
            bottom.update(view.leaderboard(state, max(1, rows - 1)))  # a title row too
        else:
            bottom.update(view.tape(state, rows))

    def action_symbol(self, step: int) -> None:
        reduce(self.state, SelectSymbol(step=step))
        self.refresh_view()

    def action_panel(self, panel: Panel) -> None:
        reduce(self.state, SelectPanel(panel))
        self.refresh_view()
