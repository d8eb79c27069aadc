"""Rating calls: billed seconds and the charge, and the rate valid at a moment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.ledger.postings import Reference, change_reserved, post_entry
from core.schema import BillingRate, CallCharge, EntryType
from core.money import divide_half_up


@dataclass(frozen=True)
class RateTerms:
    """What a call is rated with: the rate per minute (units) and the billing increment (seconds)."""

    rate_per_minute: int
    billing_increment_seconds: int


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


def _rate_started(column):
    return (select(column).where(BillingRate.company_id == bindparam("rate_company_id"),
                                 BillingRate.valid_from <= bindparam("moment"))
            .order_by(BillingRate.valid_from.desc(), BillingRate.id.desc()).limit(1).scalar_subquery())


# The rate of :rate_company_id that had started at :moment, as two columns any query can carry along
# (a call's lookup does: one round trip fewer); NULL for a moment before the company's first rate.
RATE_STARTED_AT_MOMENT = (_rate_started(BillingRate.rate_per_minute).label("rate_per_minute"),
                          _rate_started(BillingRate.billing_increment_seconds).label("billing_increment_seconds"))
_RATE_AT = select(*RATE_STARTED_AT_MOMENT)
_FIRST_RATE = (select(BillingRate.rate_per_minute, BillingRate.billing_increment_seconds)
               .where(BillingRate.company_id == bindparam("company_id"))
               .order_by(BillingRate.valid_from, BillingRate.id).limit(1))


def rate_at(session: Session, company_id: int, moment: datetime | None = None) -> RateTerms:
    """The company's rate valid at ``moment`` (now by default): the newest that had started, or the
    first one for a moment before any rate began (a call reported with a clock running behind)."""
    started = session.connection().execute(_RATE_AT, {"rate_company_id": company_id,
                                                      "moment": moment or utcnow()}).one()
    return terms_or_first(session, company_id, *started)


def terms_or_first(session: Session, company_id: int, rate_per_minute: int | None,
                   billing_increment_seconds: int | None) -> RateTerms:
    """The terms :data:`RATE_STARTED_AT_MOMENT` found, or the company's first rate if it found none."""
    if rate_per_minute is None:
        rate_per_minute, billing_increment_seconds = session.connection().execute(
            _FIRST_RATE, {"company_id": company_id}).one()
    return RateTerms(rate_per_minute, billing_increment_seconds)


@dataclass(frozen=True)
class ChargedCall:
    """A call charge as it was written: the answer to the call's end, the same for every repeat."""

    id: int  # of the call charge row
    call_id: str
    amount: int
    billed_seconds: int
    rate_per_minute: int
    balance_after: int

    @classmethod
    def of(cls, charge: CallCharge) -> ChargedCall:
        return cls(charge.id, charge.call_id, charge.amount, charge.billed_seconds, charge.rate_per_minute,
                   charge.balance_after)


# Built once: every charge only executes it with its values.
_INSERT_CHARGE = insert(CallCharge.__table__).returning(CallCharge.__table__.c.id)


def charge_call(session: Session, company_id: int, call_id: str, *, started_at: datetime, duration_seconds: int,
                ended_at: datetime | None = None, description: str = "", posted_at: datetime | None = None,
                from_number: str | None = None, to_number: str | None = None, terms: RateTerms | None = None,
                release: int = 0) -> ChargedCall:
    """Rate a finished call, debit it and keep its call charge row.

    ``terms`` are the rate and increment valid when the call started: those its reservation
    recorded or its lookup found, else looked up here. ``release`` is the call's hold, let go of
    in the same balance UPDATE. A call in progress is charged in full even below zero (the
    platform already carried it). A free call (0 s) gets its row but no ledger row; its balance
    after is the balance as it stands. The caller commits; a second charge of the same call fails
    at the unique (call id, company).
    """
    terms = terms or rate_at(session, company_id, started_at)
    rating = rate_call(duration_seconds, terms.rate_per_minute, terms.billing_increment_seconds)
    if rating.amount:
        entry = post_entry(session, company_id, EntryType.CHARGE, -rating.amount, description=description,
                           reference=Reference("call", call_id), actor="telephony", allow_negative=True,
                           created_at=posted_at, release=release)
        ledger_entry_id, balance_after = entry.id, entry.balance_after
    else:
        ledger_entry_id, balance_after = None, change_reserved(session, company_id, -release)[0]
    charge_id = session.connection().execute(_INSERT_CHARGE, dict(
        company_id=company_id, call_id=call_id, started_at=started_at, ended_at=ended_at,
        duration_seconds=duration_seconds, billed_seconds=rating.billed_seconds,
        rate_per_minute=terms.rate_per_minute, billing_increment_seconds=terms.billing_increment_seconds,
        amount=rating.amount, refund_status="none", refunded_amount=0, from_number=from_number, to_number=to_number,
        created_at=utcnow(), ledger_entry_id=ledger_entry_id, balance_after=balance_after,
    )).scalar_one()
    return ChargedCall(charge_id, call_id, rating.amount, rating.billed_seconds, terms.rate_per_minute, balance_after)
