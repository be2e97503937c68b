"""The gateway's metrics: plain counters on the hot path, Prometheus families on scrape."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exchange.service.stats import LatencyHistogram, labelled, registry_for


class GatewayStats:
    """Counted by the dispatcher, the link and the server; read on scrape."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        """Client messages by type (``invalid`` for undecodable ones)."""
        self.rejected: Counter[str] = Counter()
        """Requests the gateway answered itself, by reason (rate_limited, engine_unavailable,
        not_logged_in, ...)."""
        self.connections_opened = 0
        self.flood_closes = 0
        self.slow_closes = 0
        self.engine_connects = 0
        self.engine_connect_failures = 0
        self.engine_bad_frames = 0
        self.engine_latency = LatencyHistogram()
        """Seconds from sending an envelope to the engine to handling its reply."""
        self.gauges: dict[str, Callable[[], float]] = {}

    def collect(self) -> Iterable[Metric]:
        yield labelled(
            CounterMetricFamily,
            "gateway_requests",
            "Client messages by type",
            "type",
            self.requests,
        )
        yield labelled(
            CounterMetricFamily,
            "gateway_rejects",
            "Requests answered by the gateway itself",
            "reason",
            self.rejected,
        )
        yield CounterMetricFamily(
            "gateway_connections_opened", "Client connections", value=self.connections_opened
        )
        yield CounterMetricFamily(
            "gateway_flood_closes",
            "Connections closed 1008 for invalid messages",
            value=self.flood_closes,
        )
        yield CounterMetricFamily(
            "gateway_slow_closes",
            "Connections closed 1013 for not reading",
            value=self.slow_closes,
        )
        yield CounterMetricFamily(
            "gateway_engine_connects", "Connections made to the engine", value=self.engine_connects
        )
        yield CounterMetricFamily(
            "gateway_engine_connect_failures",
            "Failed attempts to connect to the engine",
            value=self.engine_connect_failures,
        )
        yield CounterMetricFamily(
            "gateway_engine_bad_frames", "Undecodable engine frames", value=self.engine_bad_frames
        )
        yield self.engine_latency.family(
            "gateway_engine_latency_seconds", "Round trip of one request to the engine"
        )
        for name, read in self.gauges.items():
            yield GaugeMetricFamily(name, name.replace("_", " "), value=read())

    def registry(self) -> CollectorRegistry:
        return registry_for(self.collect)
