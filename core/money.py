"""The one money module.

Every amount in the system is an ``int`` of *units*: 1 unit = 0.0001 EUR (1/100 cent).
At that precision a per-second charge at 0.42 EUR/minute (0.007 EUR/s = 70 units) is exact.
Floats never appear: text is parsed into :class:`~decimal.Decimal` and then into units.

Rounding happens only in :func:`divide_half_up`, and each operation that needs it calls it once.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from functools import lru_cache

from babel import Locale
from babel.numbers import format_decimal

UNITS_PER_EUR = 10_000
UNITS_PER_CENT = 100
CURRENCY = "EUR"
DECIMAL_PLACES = 4

_MAX_EUR = Decimal("1000000000")  # no amount anywhere in the product comes near this


class InvalidAmount(ValueError):
    """Text that is not a usable money amount. ``reason`` is a stable code."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def eur(value: str | int | Decimal) -> int:
    """Units for an exact EUR value given in code, e.g. ``eur("0.42")`` → 4200."""
    if isinstance(value, float):  # pragma: no cover - a programming error, not input
        raise TypeError("floats are not money")
    return decimal_to_units(Decimal(value))


def decimal_to_units(value: Decimal) -> int:
    """Exact conversion; raises InvalidAmount if the value is finer than the ledger's precision."""
    if not value.is_finite():
        raise InvalidAmount("not_a_number")
    scaled = value * UNITS_PER_EUR
    if scaled != scaled.to_integral_value():
        raise InvalidAmount("too_precise")
    if abs(value) >= _MAX_EUR:
        raise InvalidAmount("too_large")
    return int(scaled)


def units_to_decimal(units: int) -> Decimal:
    """EUR as a Decimal with the ledger's four places, e.g. 1234500 → Decimal('123.4500')."""
    return (Decimal(units) / UNITS_PER_EUR).quantize(Decimal(1).scaleb(-DECIMAL_PLACES))


def to_decimal_string(units: int) -> str:
    """The machine format used in JSON and CLI output: ``"123.4500"``."""
    return str(units_to_decimal(units))


def parse_amount(text: str | None, locale: str = "en", max_places: int = 2) -> int:
    """Parse what a person typed ("1.234,56", "1,234.56", "50", "50 €") into units.

    ``max_places`` is how many decimal places a person may give (cents by default).
    Grouping separators are accepted only in the right places for the locale.
    """
    return decimal_to_units(parse_decimal(text, locale, max_places))


def parse_decimal(text: str | None, locale: str = "en", max_places: int = 2) -> Decimal:
    """A number as a person types it in ``locale`` (a percentage, an amount): ASCII digits, the
    locale's separators, at most ``max_places`` decimal places; never NaN, an exponent or a float."""
    if text is None:
        raise InvalidAmount("missing")
    cleaned = text.strip().replace("€", "").replace("EUR", "").replace("\u00a0", "").strip()
    if not cleaned:
        raise InvalidAmount("missing")
    group, point = (".", ",") if locale.startswith("de") else (",", ".")
    pattern = (
        r"^(?P<sign>[-+]?)(?P<int>\d{1,3}(?:" + re.escape(group) + r"\d{3})+|\d+)"
        r"(?:" + re.escape(point) + r"(?P<frac>\d+))?$"
    )
    match = re.fullmatch(pattern, cleaned, re.ASCII)  # ASCII: Decimal() reads other scripts' digits too
    if not match:
        raise InvalidAmount("not_a_number")
    fraction = match.group("frac") or ""
    if len(fraction) > max_places:
        raise InvalidAmount("too_precise")
    digits = match.group("int").replace(group, "")
    if len(digits) > 15:  # beyond any amount (and far beyond _MAX_EUR); keeps Decimal's work small
        raise InvalidAmount("too_large")
    try:
        return Decimal(f"{match.group('sign')}{digits}.{fraction or '0'}")
    except InvalidOperation:  # pragma: no cover - the regex admits only digits
        raise InvalidAmount("not_a_number") from None


def divide_half_up(numerator: int, denominator: int) -> int:
    """Integer division rounded half away from zero: the single rounding rule of the ledger."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    quotient, remainder = divmod(abs(numerator), denominator)
    if remainder * 2 >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


@lru_cache(maxsize=16)
def _currency_symbols(locale: str) -> tuple[str, str, str, str]:
    """(decimal, group, minus, €-sign) of a locale, read from CLDR once."""
    data = Locale.parse(locale)
    numbers = data.number_symbols["latn"]
    return numbers["decimal"], numbers["group"], numbers["minusSign"], data.currency_symbols[CURRENCY]


def format_money(units: int, locale: str = "de") -> str:
    """Locale-formatted EUR for people: ``1.234,56 €`` (de) / ``€1,234.56`` (en).

    At least cents; amounts finer than a cent (per-second call charges) keep their exact digits.
    Pages format hundreds of amounts, so this formats the integer directly with CLDR's symbols.
    """
    decimal, group, minus, symbol = _currency_symbols(locale)
    euros, fraction = divmod(abs(units), UNITS_PER_EUR)
    digits = f"{fraction:0{DECIMAL_PLACES}d}".rstrip("0").ljust(2, "0")
    number = f"{euros:,}".replace(",", group) + decimal + digits
    sign = minus if units < 0 else ""
    if locale.startswith("de"):
        return f"{sign}{number}\u00a0{symbol}"
    return f"{sign}{symbol}{number}"


def format_whole_number(value: int, locale: str = "de") -> str:
    """A count for people, as Babel's format_decimal writes it: ``12.345`` (de) / ``12,345`` (en),
    at a fraction of its cost (a page shows several)."""
    _decimal, group, minus, _symbol = _currency_symbols(locale)
    return (minus if value < 0 else "") + f"{abs(value):,}".replace(",", group)


def format_amount_plain(units: int, locale: str = "de") -> str:
    """A number without currency sign or grouping, for CSV cells: ``1234,5600`` / ``1234.5600``."""
    return format_decimal(units_to_decimal(units), format="0.0000", locale=locale)


def plain_amount(units: int, locale: str = "de") -> str:
    """An amount as a person types it into a form: ``150`` or ``25,50`` (de) / ``25.50`` (en).
    Amounts in forms are whole cents; finer digits are cut (they cannot be typed either)."""
    euros, rest = divmod(units, UNITS_PER_EUR)
    if not rest:
        return str(euros)
    return f"{euros}{',' if locale.startswith('de') else '.'}{rest // UNITS_PER_CENT:02d}"


def cents(units: int) -> int:
    """Whole cents for an amount that is a whole number of cents (e.g. for Stripe)."""
    if units % UNITS_PER_CENT:
        raise InvalidAmount("not_whole_cents")
    return units // UNITS_PER_CENT
