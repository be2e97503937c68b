"""Shared test helpers. Every timeout in the suite comes from ``seconds()``, one unit that
``EXCHANGE_TEST_TIMEOUT_SCALE`` stretches on slow machines."""

from __future__ import annotations

import os
from pathlib import Path

TIMEOUT_SCALE = float(os.environ.get("EXCHANGE_TEST_TIMEOUT_SCALE", "1"))
REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def seconds(base: float) -> float:
    """A timeout of ``base`` seconds, stretched by EXCHANGE_TEST_TIMEOUT_SCALE."""
    return base * TIMEOUT_SCALE
