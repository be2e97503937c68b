"""Instruments and the integer units the core computes in.

Prices are integer ticks, quantities integer lots, money integer units of 1e-8 of the quote
currency, and rates (fees, margins) integer parts of 1e-8. Display values (JSON numbers) are
converted at the edge of the core, here.
"""

from __future__ import annotations

from decimal import Decimal

from exchange.protocol.bounds import MAX_PRICE, MAX_TICKS
from exchange.protocol.config import InstrumentSpec
from exchange.protocol.messages import InstrumentInfo

MONEY_SCALE = 10**8
"""Money is held as integer units of 1e-8 of the quote currency."""
RATE_SCALE = 10**8
"""Rates (fees, margin rates) are held as integer parts of 1e-8."""


def money_to_float(units: int | float) -> float:
    """Display value of an amount of money held in units of 1e-8."""
    return units / MONEY_SCALE


def rate_to_int(rate: float | str | Decimal) -> int:
    """A rate such as 0.0002 as integer parts of 1e-8; raises ValueError if it is finer."""
    scaled = Decimal(str(rate)) * RATE_SCALE
    if scaled != scaled.to_integral_value():
        raise ValueError(f"rate {rate} is finer than 1e-8")
    return int(scaled)


class Instrument:
    """One tradable symbol with its rules, in the core's integer units.

    Build with ``Instrument(spec)``; raises ValueError for a spec the core cannot represent
    exactly (a tick value that is not a whole number of money units, negative sizes, ...).
    """

    __slots__ = (
        "_decimals",
        "_ticks_per_unit",
        "band_e8",
        "im_rate",
        "info",
        "maker_fee",
        "max_order_qty",
        "max_position",
        "mm_rate",
        "reference_ticks",
        "spec",
        "symbol",
        "taker_fee",
        "tick_size",
        "tick_value",
    )

    def __init__(self, spec: InstrumentSpec) -> None:
        if spec.tick_size <= 0 or spec.lot_size <= 0:
            raise ValueError(f"{spec.symbol}: tick_size and lot_size must be positive")
        if not 0 < spec.maintenance_margin <= spec.initial_margin:
            raise ValueError(f"{spec.symbol}: need 0 < maintenance_margin <= initial_margin")
        if spec.price_band < 0 or spec.max_order_qty <= 0 or spec.max_position <= 0:
            raise ValueError(f"{spec.symbol}: price_band, max_order_qty, max_position invalid")
        tick = Decimal(str(spec.tick_size))
        tick_value = tick * Decimal(str(spec.lot_size)) * MONEY_SCALE
        if tick_value != tick_value.to_integral_value():
            raise ValueError(f"{spec.symbol}: tick_size × lot_size must be a multiple of 1e-8")
        self.spec = spec
        self.symbol = spec.symbol
        self.tick_size = spec.tick_size
        self.tick_value = int(tick_value)
        inverse = Decimal(1) / tick
        self._ticks_per_unit = int(inverse) if inverse == inverse.to_integral_value() else 0
        self._decimals = max(0, -tick.normalize().as_tuple().exponent)  # type: ignore[operator]
        reference_ticks = self.to_ticks(spec.reference_price)
        if reference_ticks is None:
            raise ValueError(f"{spec.symbol}: reference_price is not a positive multiple of tick")
        self.reference_ticks = reference_ticks
        self.im_rate = rate_to_int(spec.initial_margin)
        self.mm_rate = rate_to_int(spec.maintenance_margin)
        self.maker_fee = rate_to_int(spec.maker_fee)
        self.taker_fee = rate_to_int(spec.taker_fee)
        self.band_e8 = rate_to_int(spec.price_band)
        self.max_order_qty = spec.max_order_qty
        self.max_position = spec.max_position
        self.info = InstrumentInfo(
            symbol=spec.symbol,
            tick_size=spec.tick_size,
            lot_size=spec.lot_size,
            reference_price=spec.reference_price,
            initial_margin=spec.initial_margin,
            maintenance_margin=spec.maintenance_margin,
            max_order_qty=spec.max_order_qty,
            max_position=spec.max_position,
            price_band=spec.price_band,
            maker_fee=spec.maker_fee,
            taker_fee=spec.taker_fee,
        )

    def to_ticks(self, price: float) -> int | None:
        """Integer ticks of a display price, or None when it is not a positive tick multiple of
        at most ``MAX_TICKS`` ticks. Never raises (NaN, infinities and huge values are None)."""
        if not 0.0 < price <= MAX_PRICE:  # also false for NaN
            return None
        if self._ticks_per_unit:
            ticks = round(price * self._ticks_per_unit)
            if ticks <= 0 or ticks > MAX_TICKS or ticks / self._ticks_per_unit != price:
                return None
            return ticks
        ticks = round(price / self.tick_size)
        if (
            ticks <= 0
            or ticks > MAX_TICKS
            or round(ticks * self.tick_size, self._decimals) != price
        ):
            return None
        return ticks

    def to_price(self, ticks: int | float) -> float:
        """Display price of a number of ticks (exact decimal rounding, no 101.25000000001)."""
        if self._ticks_per_unit:
            return ticks / self._ticks_per_unit
        return round(ticks * self.tick_size, self._decimals + 2)

    def band_limits(self, reference_ticks: int) -> tuple[int, int]:
        """Lowest and highest acceptable limit price (ticks) around ``reference_ticks``."""
        if not self.band_e8:
            return 1, 1 << 62
        width = reference_ticks * self.band_e8 // RATE_SCALE
        return max(1, reference_ticks - width), reference_ticks + width

    def notional(self, ticks: int, qty: int) -> int:
        """Money units of ``qty`` lots at ``ticks``."""
        return ticks * qty * self.tick_value
