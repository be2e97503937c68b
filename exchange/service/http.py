"""Plain HTTP GET on a WebSocket port: ``/healthz``, ``/metrics`` and extra JSON routes.

``http_handler`` builds a websockets ``process_request`` hook: a matching GET is answered
directly; anything else continues as a WebSocket handshake.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from exchange.protocol.codec import http_error_body

JsonRoute = Callable[[str, dict[str, list[str]]], tuple[int, bytes] | None]
"""Given the path and query, return (status, JSON body) or None when the path is not its."""


def response(status: int, body: bytes, content_type: str) -> Response:
    phrase = HTTPStatus(status).phrase
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
    )
    return Response(status, phrase, headers, body)


def http_handler(
    ready: Callable[[], bool],
    registry: CollectorRegistry,
    routes: list[JsonRoute] | None = None,
) -> Callable[[ServerConnection, Request], Response | None]:
    """A ``process_request`` hook serving health, metrics and ``routes``."""

    def process_request(_connection: ServerConnection, request: Request) -> Response | None:
        if "upgrade" in request.headers.get("Connection", "").lower():
            return None
        parts = urlsplit(request.path)
        if parts.path == "/healthz":
            ok = ready()
            body = b'{"status":"ok"}' if ok else b'{"status":"starting"}'
            return response(200 if ok else 503, body, "application/json")
        if parts.path == "/metrics":
            return response(200, generate_latest(registry), CONTENT_TYPE_LATEST)
        query = parse_qs(parts.query)
        for route in routes or ():
            answer = route(parts.path, query)
            if answer is not None:
                return response(answer[0], answer[1], "application/json")
        return response(404, http_error_body("not_found", "no such path"), "application/json")

    return process_request
