"""The arena (PROTOCOL §8): bots race against the matching core in one process, on simulated
time, each the same strategy and ``BotDriver`` it is as a process.

Modules, one job each: ``config`` (ARENA.toml), ``venue`` (core + routing + latency queue),
``lobster`` (LOBSTER background replay), ``scoring`` (leaderboard numbers), ``output`` (files,
table, progress), ``rounds`` (running rounds), ``cli`` (``python -m bots.arena``).

This sub-package alone in ``bots`` imports ``exchange.core``: it hosts the venue in-process
(tests/unit/test_import_rules.py carves it out; docs/architecture.md says why).
"""
