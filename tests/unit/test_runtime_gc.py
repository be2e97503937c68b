"""Every process runs with the garbage collector tuned for latency unless told not to."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support import REPO_ROOT, seconds

PROBE = """
import gc
from exchange.service.runtime import run

async def main() -> int:
    print(gc.get_threshold()[0], gc.get_freeze_count() > 0)
    return 0

run(main)
"""


@pytest.mark.parametrize(("setting", "expected"), [(None, "50000 True"), ("default", "700 False")])
def test_processes_tune_the_gc_unless_told_not_to(setting: str | None, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "EXCHANGE_GC"}
    if setting is not None:
        env["EXCHANGE_GC"] = setting
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds(30),
        check=True,
    )
    assert result.stdout.split("\n")[0] == expected
