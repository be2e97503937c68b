"""``python -m bots``: see bots/cli.py."""

from __future__ import annotations

from bots.cli import main

main()
