"""The web dashboard's files (PROTOCOL.md §7): ``GET /`` and ``/static/NAME`` on the relay.

The files are package data in ``marketdata/web/`` (plain ES modules, CSS and one HTML page: no
build step, nothing from the network), read once when the route is built and served from
memory. Only the files listed in ``web/`` at that moment exist: any other path under
``/static/`` is a 404, so no request can reach outside the folder.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

from exchange.protocol.codec import http_error_body

STATIC_PREFIX = "/static/"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
}
"""The kinds of file ``web/`` may hold; anything else there is not served."""

StaticAnswer = tuple[int, bytes, str]
"""(status, body, content type)."""
StaticRoute = Callable[[str], StaticAnswer | None]


def load_assets() -> dict[str, tuple[bytes, str]]:
    """Every servable file of ``marketdata/web/``: name → (bytes, content type)."""
    assets: dict[str, tuple[bytes, str]] = {}
    folder = resources.files("marketdata") / "web"
    for entry in folder.iterdir():
        name = entry.name
        suffix = name[name.rfind(".") :] if "." in name else ""
        if entry.is_file() and suffix in CONTENT_TYPES:
            assets[name] = (entry.read_bytes(), CONTENT_TYPES[suffix])
    return assets


def dashboard_route(assets: dict[str, tuple[bytes, str]] | None = None) -> StaticRoute:
    """A route answering ``/`` (the page; its query is read by the page's script) and
    ``/static/NAME``; None for every other path. Never raises."""
    files = load_assets() if assets is None else assets
    not_found = (404, http_error_body("not_found", "no such file"), "application/json")

    def route(path: str) -> StaticAnswer | None:
        if path in ("/", "/index.html"):
            body, content_type = files["index.html"]
            return 200, body, content_type
        if not path.startswith(STATIC_PREFIX):
            return None
        asset = files.get(path[len(STATIC_PREFIX) :])
        if asset is None:
            return not_found
        return 200, asset[0], asset[1]

    return route


def dashboard_url(host: str, port: int) -> str:
    """The URL to open in a browser (a wildcard bind address is reached on 127.0.0.1)."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"
