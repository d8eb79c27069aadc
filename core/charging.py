"""Rating calls: billed seconds and the charge, and the rate valid at a moment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.ledger import Reference, post_entry
from core.models import BillingRate, CallCharge, EntryType
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
    """The company's rate valid at ``moment`` (now by default): the newest that had started, or the
    first one for a moment before any rate began (a call reported with a clock running behind)."""
    started = session.scalars(
        select(BillingRate)
        .where(BillingRate.company_id == company_id, BillingRate.valid_from <= (moment or utcnow()))
        .order_by(BillingRate.valid_from.desc(), BillingRate.id.desc())
        .limit(1)
    ).first()
    if started is not None:
        return started
    return session.scalars(
        select(BillingRate).where(BillingRate.company_id == company_id)
        .order_by(BillingRate.valid_from, BillingRate.id).limit(1)
    ).one()


def charge_call(session: Session, company_id: int, call_id: str, *, started_at: datetime, duration_seconds: int,
                ended_at: datetime | None = None, description: str = "", posted_at: datetime | None = None,
                from_number: str | None = None, to_number: str | None = None) -> CallCharge:
    """Rate a finished call at the rate valid when it started, debit it and keep its call charge row.

    A call in progress is charged in full even below zero (the platform already carried it).
    The caller commits; a second charge of the same call fails at the unique (company, call id).
    """
    rate = rate_at(session, company_id, started_at)
    rating = rate_call(duration_seconds, rate.rate_per_minute, rate.billing_increment_seconds)
    charge = CallCharge(
        company_id=company_id, call_id=call_id, started_at=started_at, ended_at=ended_at,
        duration_seconds=duration_seconds, billed_seconds=rating.billed_seconds,
        rate_per_minute=rate.rate_per_minute, billing_increment_seconds=rate.billing_increment_seconds,
        amount=rating.amount, from_number=from_number, to_number=to_number,
    )
    session.add(charge)
    session.flush()
    if rating.amount:
        entry = post_entry(session, company_id, EntryType.CHARGE, -rating.amount, description=description,
                           reference=Reference("call", call_id), actor="telephony", allow_negative=True,
                           created_at=posted_at)
        charge.ledger_entry_id, charge.balance_after = entry.id, entry.balance_after
    return charge
