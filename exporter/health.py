"""The exporter's optional HTTP port: ``/healthz`` and ``/metrics`` (``--port``; off by default).

The exporter serves nothing by default (PROTOCOL.md §1 lists no port for it). With ``--port N``
(0: any free port) it answers plain HTTP GET like every other process: ``/healthz`` is 200
once the CSV files are recovered and the engine stream is connected (503 before), and
``/metrics`` is Prometheus text read from the exporter's own counters at scrape time. A
WebSocket handshake on this port gets 404: there is no stream here.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from exchange.service.http import http_handler, response
from exchange.service.stats import labelled, registry_for
from exporter.service import Exporter

NO_WEBSOCKET = (
    b'{"type":"error","code":"not_found","text":"the exporter serves no WebSocket","ref":null}'
)


def exporter_ready(exporter: Exporter) -> bool:
    """Ready once the files are recovered and the engine's event stream is connected."""
    return exporter.sink is not None and exporter.stream is not None and exporter.stream.connected


def exporter_metrics(exporter: Exporter) -> Iterable[Metric]:
    """The exporter's state as metric families (called on every scrape)."""
    sink = exporter.sink
    stream = exporter.stream
    yield GaugeMetricFamily(
        "exporter_upstream_connected",
        "1 while the engine's event stream is connected",
        value=1.0 if stream is not None and stream.connected else 0.0,
    )
    written: dict[str, float] = {}
    buffered: dict[str, float] = {}
    if sink is not None:
        written = {name: file.rows_written for name, file in sink.files.items()}
        buffered = {name: len(file.pending) for name, file in sink.files.items()}
    yield labelled(
        CounterMetricFamily,
        "exporter_rows_written",
        "CSV rows appended and fsynced since start, per file",
        "file",
        written,
    )
    yield labelled(
        GaugeMetricFamily,
        "exporter_rows_buffered",
        "CSV rows waiting for the next flush, per file (queue depth)",
        "file",
        buffered,
    )
    yield GaugeMetricFamily(
        "exporter_processed_seq",
        "seq of the last engine event turned into rows (buffered or written)",
        value=float(sink.processed if sink is not None else 0),
    )
    yield GaugeMetricFamily(
        "exporter_durable_seq",
        "seq up to which every row is on disk and recorded in the state file",
        value=float((sink.saved or 0) if sink is not None else 0),
    )
    yield CounterMetricFamily(
        "exporter_history_gaps",
        "times the engine no longer held the events to resume from (rows lost)",
        value=exporter.history_gaps,
    )
    yield exporter.flush_latency.family(
        "exporter_flush_seconds", "time to append, fsync and record one flush"
    )


class HealthServer:
    """``/healthz`` and ``/metrics`` for one ``Exporter`` on ``host:port`` (0: any free port)."""

    def __init__(self, exporter: Exporter, host: str, port: int) -> None:
        self.exporter = exporter
        self.host = host
        self.port = port
        self.registry: CollectorRegistry = registry_for(lambda: exporter_metrics(exporter))
        self._server: Server | None = None
        self._answer = http_handler(lambda: exporter_ready(exporter), self.registry)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response:
        return self._answer(connection, request) or response(404, NO_WEBSOCKET, "application/json")

    async def start(self) -> int:
        """Bind and serve; returns the port bound."""
        self._server = await serve(
            _refuse, self.host, self.port, process_request=self._process_request
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


async def _refuse(websocket: ServerConnection) -> None:  # pragma: no cover - never reached
    await websocket.close(1008, "no websocket here")
