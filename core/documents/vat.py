"""VAT on top-ups: whether an amount includes VAT, and the split into net, VAT and gross (in cents)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.money import cents, divide_half_up

BASIS_POINTS = 10_000


@dataclass(frozen=True)
class VatPolicy:
    rate_basis_points: int  # 1900 = 19 %
    amounts_include_vat: bool  # True: a 100 € top-up costs 100 € gross; False: 100 € + VAT

    @classmethod
    def from_config(cls, config) -> VatPolicy:
        rate = Decimal(str(config["VAT_RATE_PERCENT"])) * 100
        if rate != rate.to_integral_value() or not 0 <= rate < BASIS_POINTS:
            raise ValueError("VAT_RATE_PERCENT must be a percentage with at most two decimals")
        return cls(int(rate), bool(config["TOPUP_AMOUNTS_INCLUDE_VAT"]))


@dataclass(frozen=True)
class VatSplit:
    net_cents: int
    vat_cents: int
    gross_cents: int
    rate_basis_points: int


def split_topup(amount: int, policy: VatPolicy) -> VatSplit:
    """Net, VAT and gross of a top-up of ``amount`` units (whole cents). One half-up rounding."""
    value = cents(amount)
    rate = policy.rate_basis_points
    if policy.amounts_include_vat:
        net = divide_half_up(value * BASIS_POINTS, BASIS_POINTS + rate)
        return VatSplit(net, value - net, value, rate)
    vat = divide_half_up(value * rate, BASIS_POINTS)
    return VatSplit(value, vat, value + vat, rate)
