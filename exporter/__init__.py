"""The exporter (``python -m exporter``): turns the engine's event stream into trades.csv and
performance.csv (PROTOCOL.md §5), news.csv, rounds.csv and status.csv (docs/protocol.md), each
row exactly once across restarts.

Pure: ``csv_rows`` (row formatting). Files: ``state`` (recovery, resume point), ``writer``
(buffered durable appends). I/O shell: ``service``, ``__main__``.
"""
