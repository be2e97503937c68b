"""The tournament (issue 16): rounds on the live venue, driven by an operator session.

``python -m bots.tournament`` logs in to the gateway with an operator key, follows the
relay's ``rounds`` channel, starts each round (PROTOCOL §3.3), lets it run, and ranks the
accounts per round and overall from the exporter's files, in the arena's ``leaderboard.csv``
format (PROTOCOL §8). Modules: ``session`` (the connections and the rounds), ``standings``
(cutting the exporter's CSV files into rounds, scoring them with ``bots.arena.scoring``,
the files and tables), ``cli``. The bots themselves are ordinary ``python -m bots``
processes: the tournament never trades.
"""
