"""The rule for account names a client may choose (``register``), written once.

``ACCOUNT_NAME`` is 1-32 characters of ``[A-Za-z0-9_.-]``, the first a letter or digit
(docs/protocol.md, "register"). The engine's command port checks it before a ``register``
reaches the journal, and the core checks it again on ``create_account`` (the only command that
opens an account), so both refuse exactly the same names.

Accounts of the configuration file (``[[accounts]]``, ``insurance_account``) are the operator's:
the core opens them at start without this check (the shipped ``exchange/default.toml`` follows
the rule anyway). Pure; imports only the standard library.
"""

from __future__ import annotations

import re

ACCOUNT_NAME_MAX = 32
"""The longest account name ``register`` accepts."""

ACCOUNT_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.\-]{{0,{ACCOUNT_NAME_MAX - 1}}}")
"""Use with ``fullmatch``: an account name a client may choose."""

ACCOUNT_NAME_TEXT = (
    f"account names are 1-{ACCOUNT_NAME_MAX} letters, digits, '_', '.', '-', starting alphanumeric"
)
"""What an error about a refused name says."""


def valid_account_name(name: str) -> bool:
    """Whether a client may open an account called ``name``. Never raises."""
    return ACCOUNT_NAME.fullmatch(name) is not None


SCENARIO = "@scenario"
"""The ``account`` the engine journals its scenario's operator commands under (no account can
have this name): the core tells them from an operator's, e.g. a scenario's ``set_status``
carries reason ``schedule``."""
