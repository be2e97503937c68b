"""``python -m bots.tournament``: see ``bots.tournament.cli``."""

import sys

from bots.tournament.cli import main

sys.exit(main())
