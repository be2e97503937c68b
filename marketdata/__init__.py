"""The market-data relay (``python -m marketdata``): derives the public channels from the
engine's event stream and fans them out to subscribers (PROTOCOL.md §4).

Pure logic: ``books`` (L2 books, depth views), ``channels`` (names, subscriptions), ``feed``
(events to public messages), ``http_api`` (GET routes). I/O shell: ``server``, ``__main__``.
"""
