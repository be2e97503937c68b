"""``python -m bots.arena ARENA.toml``: see ``bots.arena.cli``."""

import sys

from bots.arena.cli import main

sys.exit(main())
