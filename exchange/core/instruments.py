"""Instruments and the integer units the core computes in.

Prices are integer ticks, quantities integer lots, money integer units of 1e-8 of the quote
currency, and rates (fees, margins) integer parts of 1e-8. Display values (JSON numbers) are
converted at the edge of the core, here, and only here (PROTOCOL.md §2, "Money is exact"):

- a price of whole ticks prints at the tick's decimals (``Instrument.to_price``);
- money, and any price that is an exact ratio (an average price, a half-tick mark), is
  rounded half-even to 8 decimals with integer arithmetic (``money_to_float``,
  ``money_ratio_to_float``, ``Instrument.avg_price``, ``Instrument.position_price``,
  ``Instrument.mark_price``).

Each returns the double nearest to that decimal, so it prints as the shortest decimal
(``19016.4045``, never ``19016.404500000004``) wherever Python's ``repr`` or msgspec prints
it (exact for up to 15 significant digits: amounts below 10^7 at 8 decimals, or larger ones
with fewer decimals).
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any, Final

import msgspec

from exchange.protocol.bounds import MAX_PRICE, MAX_TICKS
from exchange.protocol.config import InstrumentSpec
from exchange.protocol.messages import InstrumentInfo

MONEY_SCALE: Final = 100_000_000
"""Money is held as integer units of 1e-8 of the quote currency."""
RATE_SCALE: Final = 100_000_000
"""Rates (fees, margin rates) are held as integer parts of 1e-8."""
PRICE_SCALE: Final = 100_000_000
"""Display prices that are not whole ticks are rounded to whole units of 1e-8."""


_EXACT_INT: Final = 2**53
"""Integers up to this size convert to a double exactly."""


def e8_to_float(value: int) -> float:
    """``value`` x 1e-8 as the double nearest that decimal (correctly rounded for any size:
    compiled code divides short ints as doubles, exact only up to 2**53)."""
    if -_EXACT_INT <= value <= _EXACT_INT:
        return value / MONEY_SCALE
    return _exact_quotient(value, MONEY_SCALE)


def _exact_quotient(num: Any, den: Any) -> float:
    """Python's correctly rounded ``int / int`` (generic objects, so compiled code does not
    take its double fast path)."""
    return float(num / den)


def div_half_even(num: int, den: int) -> int:
    """``num / den`` rounded to an integer, ties to even; ``den`` must be positive."""
    quotient = num // den
    twice = 2 * (num - quotient * den)
    if twice > den or (twice == den and quotient & 1):
        return quotient + 1
    return quotient


def money_to_float(units: int) -> float:
    """Display value of ``units`` money units (1e-8 each): the double nearest the decimal
    ``units`` x 1e-8, so it prints as the shortest decimal with at most 8 decimals.
    (``e8_to_float``, inlined: this runs several times per account message.)"""
    if -_EXACT_INT <= units <= _EXACT_INT:
        return units / MONEY_SCALE
    return _exact_quotient(units, MONEY_SCALE)


def float_money_to_float(units: float) -> float:
    """Display value of a float amount of money units (a value derived from a half-tick
    mark): rounded half-even to a whole unit first, then as ``money_to_float``."""
    return e8_to_float(round(units))


def half_money_to_float(half_units: int) -> float:
    """Display value of ``half_units`` halves of a money unit (a value at a half-tick mark):
    rounded half-even to a whole unit, then as ``money_to_float``."""
    units = half_units >> 1
    if half_units & 1 and units & 1:
        units += 1
    if -_EXACT_INT <= units <= _EXACT_INT:
        return units / MONEY_SCALE
    return _exact_quotient(units, MONEY_SCALE)


def money_ratio_to_float(num: int, den: int) -> float:
    """Display value of the exact amount ``num / den`` money units (``den`` > 0): rounded
    half-even to a whole unit (8 decimals), with integers only."""
    units = num // den
    rest = num - units * den
    if rest:
        twice = 2 * rest
        if twice > den or (twice == den and units & 1):
            units += 1
    return e8_to_float(units)


def _ratio(value: Fraction) -> tuple[int, int]:
    """``value`` as a reduced fraction ``(numerator, denominator)``, denominator positive."""
    return value.numerator, value.denominator


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
        "_half_tick_e8",
        "_lot_e8_den",
        "_lot_e8_num",
        "_tick_e8_den",
        "_tick_e8_num",
        "_ticks_per_unit",
        "band_e8",
        "im_den",
        "im_num",
        "im_rate",
        "info",
        "maker_fee",
        "max_order_qty",
        "max_position",
        "mm_den",
        "mm_num",
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
        # A price of one tick, and the price at which one lot is worth one money unit, in
        # units of 1e-8 as exact fractions (for prices that are ratios: averages, marks).
        self._tick_e8_num, self._tick_e8_den = _ratio(Fraction(tick) * PRICE_SCALE)
        half_tick = Fraction(tick) * PRICE_SCALE / 2
        self._half_tick_e8 = int(half_tick) if half_tick.denominator == 1 else 0
        self._lot_e8_num, self._lot_e8_den = _ratio(
            Fraction(PRICE_SCALE) / (Fraction(Decimal(str(spec.lot_size))) * MONEY_SCALE)
        )
        reference_ticks = self.to_ticks(spec.reference_price)
        if reference_ticks is None:
            raise ValueError(f"{spec.symbol}: reference_price is not a positive multiple of tick")
        self.reference_ticks = reference_ticks
        self.im_rate = rate_to_int(spec.initial_margin)
        self.mm_rate = rate_to_int(spec.maintenance_margin)
        # Margin in money units per tick x lot of exposure, as reduced exact fractions
        # (usually whole numbers, so account messages add margins in small integers).
        self.im_num, self.im_den = _ratio(Fraction(self.tick_value * self.im_rate, RATE_SCALE))
        self.mm_num, self.mm_den = _ratio(Fraction(self.tick_value * self.mm_rate, RATE_SCALE))
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

    def set_reference(self, ticks: int) -> None:
        """Move the reference price to ``ticks`` (a news ``shock``): the centre of the price
        band before the first trade, the mark of a book without BBO or trades, and the
        ``reference_price`` that ``info`` (the ``instruments`` message) shows."""
        self.reference_ticks = ticks
        self.info = msgspec.structs.replace(self.info, reference_price=self.to_price(ticks))

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

    def avg_price(self, cum_cost: int, cum_qty: int) -> float:
        """Display average price of fills worth ``cum_cost`` (sum of ticks x lots) over
        ``cum_qty`` > 0 lots: at the tick's decimals when it is a whole number of ticks, else
        rounded half-even to 8 decimals, exactly (integers only)."""
        if cum_cost % cum_qty == 0:
            return self.to_price(cum_cost // cum_qty)
        return e8_to_float(div_half_even(cum_cost * self._tick_e8_num, cum_qty * self._tick_e8_den))

    def position_price(self, cost: int, qty: int) -> float:
        """Display average entry price of a position of ``qty`` != 0 lots (signed) whose
        signed cost basis is ``cost`` money units, rounded half-even to 8 decimals exactly."""
        if qty < 0:
            cost, qty = -cost, -qty
        return e8_to_float(div_half_even(cost * self._lot_e8_num, qty * self._lot_e8_den))

    def mark_price(self, mark: float) -> float:
        """Display price of a mark in ticks (a whole or half tick: the mid of the BBO): at the
        tick's decimals for a whole tick, else rounded half-even to 8 decimals."""
        twice = int(mark * 2.0)
        if self._half_tick_e8:  # a half tick is a whole number of 1e-8: exact
            return e8_to_float(twice * self._half_tick_e8)
        if not twice & 1:
            return self.to_price(twice >> 1)
        return e8_to_float(div_half_even(twice * self._tick_e8_num, 2 * self._tick_e8_den))

    def band_limits(self, reference_ticks: int) -> tuple[int, int]:
        """Lowest and highest acceptable limit price (ticks) around ``reference_ticks``."""
        if not self.band_e8:
            return 1, 1 << 62
        width = reference_ticks * self.band_e8 // RATE_SCALE
        return max(1, reference_ticks - width), reference_ticks + width

    def notional(self, ticks: int, qty: int) -> int:
        """Money units of ``qty`` lots at ``ticks``."""
        return ticks * qty * self.tick_value
