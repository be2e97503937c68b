"""The engine's metrics: plain counters on the hot path, Prometheus families on scrape.

Exposed on ``/metrics`` of both engine ports (one registry per ``EngineApp``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exchange.service.stats import LatencyHistogram, labelled, registry_for


class EngineStats:
    """Counted by the command and event ports; read by ``collect`` on scrape."""

    def __init__(self) -> None:
        self.orders = 0
        """Orders accepted (``new`` execution reports)."""
        self.trades = 0
        self.events = 0
        self.rejects: Counter[str] = Counter()
        """Rejected orders and cancel/amend rejects, by reason."""
        self.commands: Counter[str] = Counter()
        """Envelopes and timer commands handled, by type."""
        self.bad_envelopes = 0
        """Envelopes refused at the boundary: undecodable, or numbers out of range."""
        self.command_failures = 0
        """Envelopes whose handling raised (a bug): answered ``internal_error``."""
        self.slow_disconnects: Counter[str] = Counter()
        self.snapshots_sent = 0
        self.history_replays = 0
        self.command_latency = LatencyHistogram()
        """Seconds from the start of handling one envelope to its reply being staged."""
        self.gauges: dict[str, Callable[[], float]] = {}
        """Read at scrape time: connections, queue depths, last seq."""
        self.labelled_gauges: dict[str, tuple[str, Callable[[], dict[str, float]]]] = {}

    def collect(self) -> Iterable[Metric]:
        yield CounterMetricFamily("engine_orders", "Orders accepted", value=self.orders)
        yield CounterMetricFamily("engine_trades", "Trades executed", value=self.trades)
        yield CounterMetricFamily("engine_events", "Events sequenced", value=self.events)
        yield labelled(
            CounterMetricFamily,
            "engine_rejects",
            "Order and cancel/amend rejects by reason",
            "reason",
            self.rejects,
        )
        yield labelled(
            CounterMetricFamily, "engine_commands", "Commands by type", "type", self.commands
        )
        yield CounterMetricFamily(
            "engine_bad_envelopes",
            "Command-port envelopes refused at the boundary (undecodable or out of range)",
            value=self.bad_envelopes,
        )
        yield CounterMetricFamily(
            "engine_command_failures",
            "Command-port envelopes whose handling raised (answered internal_error)",
            value=self.command_failures,
        )
        yield labelled(
            CounterMetricFamily,
            "engine_slow_disconnects",
            "Peers disconnected because their unsent buffer overflowed",
            "port",
            self.slow_disconnects,
        )
        yield CounterMetricFamily(
            "engine_snapshots_sent", "Event-port snapshots sent", value=self.snapshots_sent
        )
        yield CounterMetricFamily(
            "engine_history_replays",
            "Event-port streams that caught up from history (memory or journal)",
            value=self.history_replays,
        )
        yield self.command_latency.family(
            "engine_command_latency_seconds", "Time to handle one command envelope"
        )
        for name, read in self.gauges.items():
            yield GaugeMetricFamily(name, name.replace("_", " "), value=read())
        for name, (label, read_all) in self.labelled_gauges.items():
            yield labelled(GaugeMetricFamily, name, name.replace("_", " "), label, read_all())

    def registry(self) -> CollectorRegistry:
        return registry_for(self.collect)
