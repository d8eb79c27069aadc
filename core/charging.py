"""Rating calls: billed seconds and the charge, and the rate valid at a moment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.models import BillingRate
from core.money import divide_half_up


@dataclass(frozen=True)
class CallRating:
    billed_seconds: int
    amount: int  # units, positive: what the call costs


def billed_seconds(duration_seconds: int, increment_seconds: int) -> int:
    """The duration rounded up to the next whole billing increment."""
    if duration_seconds < 0 or increment_seconds < 1:
        raise ValueError("duration must be >= 0 and increment >= 1")
    return -(-duration_seconds // increment_seconds) * increment_seconds


def rate_call(duration_seconds: int, rate_per_minute: int, increment_seconds: int) -> CallRating:
    """billed seconds × rate per minute ÷ 60, rounded once, half-up, to the ledger's precision."""
    seconds = billed_seconds(duration_seconds, increment_seconds)
    return CallRating(seconds, divide_half_up(seconds * rate_per_minute, 60))


def rate_at(session: Session, company_id: int, moment: datetime | None = None) -> BillingRate:
    """The company's rate valid at ``moment`` (now by default): the newest that had started."""
    return session.scalars(
        select(BillingRate)
        .where(BillingRate.company_id == company_id, BillingRate.valid_from <= (moment or utcnow()))
        .order_by(BillingRate.valid_from.desc(), BillingRate.id.desc())
        .limit(1)
    ).one()
