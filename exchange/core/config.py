"""What the core is built from: instruments, starting accounts, limits."""

from __future__ import annotations

import msgspec

from exchange.protocol.config import AccountSpec, InstrumentSpec, SystemConfig


class CoreConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The matching core's configuration. Changing it changes behaviour, so a journal is only
    replayable with the configuration it was written under."""

    instruments: list[InstrumentSpec]
    accounts: list[AccountSpec] = []
    max_open_orders: int = 200
    insurance_account: str = "insurance_fund"
    insurance_fund_cash: float = 1_000_000.0
    done_order_memory: int = 100_000
    """How many finished orders the core remembers, to answer ``too_late`` instead of
    ``unknown_order``."""


def core_config(system: SystemConfig) -> CoreConfig:
    """The part of the system configuration file that the matching core is built from."""
    return CoreConfig(
        instruments=system.instruments,
        accounts=system.accounts,
        max_open_orders=system.max_open_orders,
        insurance_account=system.insurance_account,
        insurance_fund_cash=system.insurance_fund_cash,
        done_order_memory=system.done_order_memory,
    )
