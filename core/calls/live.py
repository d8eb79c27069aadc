"""Live calls: a start holds funds, an end charges the call and lets the hold go, exactly once.

Both are idempotent per (company, call id): the first answer is stored (the reservation row, the
call charge row) and returned again for a repeated or concurrent duplicate, whose insert loses at the
unique constraint. Each is one transaction: one read of everything stored under the call id, then
the writes. Every hold and every charge changes the company's balance row, so they queue per company;
an end (and an expiry) locks the reservation row before the balance row, and nothing locks them the
other way round.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, exists, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from core.calls.rating import RATE_STARTED_AT_MOMENT, ChargedCall, RateTerms, charge_call, terms_or_first
from core.clock import utcnow
from core.ledger.postings import change_reserved
from core.schema import CallCharge, CallReservation, Company, PrepaidBalance, ReservationStatus


class CallError(Exception):
    code = "call_error"


class CompanyBlocked(CallError):
    code = "company_blocked"


class InsufficientFunds(CallError):
    code = "insufficient_funds"

    def __init__(self, available: int, required: int):
        super().__init__(f"available {available}, required {required}")
        self.available = available
        self.required = required


class CallOfAnotherCompany(CallError):
    code = "call_not_found"


class ConcurrentDuplicate(Exception):
    """A concurrent start or end of the same call got there first: roll back and ask again."""

    def __init__(self, call_id: str):
        super().__init__(call_id)
        self.call_id = call_id


class EndBeforeStart(CallError):
    code = "end_before_start"


@dataclass(frozen=True)
class CallPolicy:
    reservation_minutes: int = 5
    minimum_minutes: int = 1

    @classmethod
    def from_config(cls, config) -> CallPolicy:
        return cls(config["CALL_RESERVATION_MINUTES"], config["CALL_MINIMUM_MINUTES"])


@dataclass(frozen=True)
class Hold:
    """A live call's reservation as the start answers it, the same for every repeat."""

    call_id: str
    amount: int  # units held
    available_after: int
    max_seconds: int  # the longest call the hold pays for
    ended: bool = False  # the call had ended already: nothing is held for it


@dataclass(frozen=True)
class Reservation:
    """What a start stored, as an end needs it."""

    id: int
    active: bool  # not yet captured or expired (as read: resolving it finds out for sure)
    started_at: datetime
    terms: RateTerms  # recorded at the start
    from_number: str | None
    to_number: str | None
    hold: Hold


@dataclass(frozen=True)
class KnownCall:
    """Everything stored under a call id (ours, or a sign it is another company's), the company's
    standing and the rate of a call that started at the moment asked about: one read before every
    start and end."""

    charge: ChargedCall | None
    reservation: Reservation | None
    elsewhere: bool  # call ids come from the telephony platform and are unique there
    blocked: bool
    auto_topup_enabled: bool
    terms: RateTerms
    available: int  # balance − reserved, as read


def _elsewhere(model):
    other = aliased(model)  # not the outer query's row of our own
    return (select(other.id).where(other.call_id == bindparam("call_id"), other.company_id != Company.id)
            .limit(1).scalar_subquery().is_not(None))


_OURS = {model: and_(model.call_id == bindparam("call_id"), model.company_id == Company.id)
         for model in (CallCharge, CallReservation)}
_CALL_LOOKUP = (
    select(
        Company.blocked_at, PrepaidBalance.auto_topup_enabled, PrepaidBalance.balance, PrepaidBalance.reserved,
        CallCharge.id.label("charge_id"), CallCharge.amount.label("charge_amount"), CallCharge.billed_seconds,
        CallCharge.rate_per_minute.label("charge_rate"), CallCharge.balance_after,
        CallReservation.id.label("reservation_id"), CallReservation.status, CallReservation.started_at,
        CallReservation.rate_per_minute.label("reservation_rate"),
        CallReservation.billing_increment_seconds.label("reservation_increment"), CallReservation.from_number,
        CallReservation.to_number, CallReservation.amount.label("held"), CallReservation.available_after,
        CallReservation.max_seconds,
        or_(_elsewhere(CallCharge), _elsewhere(CallReservation)).label("elsewhere"),
        *RATE_STARTED_AT_MOMENT,
    )
    .join_from(Company, PrepaidBalance, PrepaidBalance.company_id == Company.id)
    .outerjoin(CallCharge, _OURS[CallCharge])
    .outerjoin(CallReservation, _OURS[CallReservation])
    .where(Company.id == bindparam("company_id"))
)


def _known_call(session: Session, company_id: int, call_id: str, started_at: datetime) -> KnownCall:
    row = session.connection().execute(
        _CALL_LOOKUP, {"company_id": company_id, "rate_company_id": company_id, "call_id": call_id,
                       "moment": started_at}).one()
    charge = None if row.charge_id is None else ChargedCall(
        row.charge_id, call_id, row.charge_amount, row.billed_seconds, row.charge_rate, row.balance_after)
    reservation = None if row.reservation_id is None else Reservation(
        row.reservation_id, row.status == ReservationStatus.ACTIVE.value, row.started_at,
        RateTerms(row.reservation_rate, row.reservation_increment), row.from_number, row.to_number,
        Hold(call_id, row.held, row.available_after, row.max_seconds))
    return KnownCall(charge, reservation, row.elsewhere, row.blocked_at is not None, row.auto_topup_enabled,
                     terms_or_first(session, company_id, row.rate_per_minute, row.billing_increment_seconds),
                     row.balance - row.reserved)


def start_call(session: Session, company_id: int, call_id: str, *, started_at: datetime, policy: CallPolicy,
               from_number: str | None = None, to_number: str | None = None) -> Hold:
    """Hold funds for a live call: the policy's minutes at the current rate, or what is available
    if that is less but at least the minimum. A repeated start returns the first hold; the start of
    a call that has ended already (it arrived late, or raced the end) holds nothing. The caller
    commits; on a domain error it rolls back (which takes a refused hold back), and on
    :class:`ConcurrentDuplicate` it rolls back and asks again, to get the first start's hold."""
    known = _known_call(session, company_id, call_id, started_at)
    if known.reservation is not None:
        return known.reservation.hold
    if known.charge is not None:
        return Hold(call_id, 0, known.available, 0, ended=True)
    if known.elsewhere:
        raise CallOfAnotherCompany(call_id)
    if known.blocked:
        raise CompanyBlocked(company_id)
    rate = known.terms
    wanted = rate.rate_per_minute * policy.reservation_minutes
    balance, reserved = change_reserved(session, company_id, wanted)  # locks the account, then it decides
    available = balance - reserved + wanted  # before this hold
    minimum = rate.rate_per_minute * policy.minimum_minutes
    if balance <= 0 or available < minimum:
        raise InsufficientFunds(available, minimum)
    held = min(wanted, available)
    if held < wanted:
        change_reserved(session, company_id, held - wanted)
    hold = Hold(call_id, held, available - held, _seconds_paid_for(held, rate.rate_per_minute,
                                                                   rate.billing_increment_seconds))
    values = dict(company_id=company_id, call_id=call_id, amount=held, started_at=started_at,
                  max_seconds=hold.max_seconds, rate_per_minute=rate.rate_per_minute,
                  billing_increment_seconds=rate.billing_increment_seconds, available_after=hold.available_after,
                  from_number=from_number, to_number=to_number)
    try:
        # Only while the call has no charge: an end that committed while this start waited for the
        # account's lock makes the INSERT write nothing, and the hold is given back.
        inserted = session.execute(insert(CallReservation).from_select(
            list(values), select(*(literal(value, CallReservation.__table__.c[name].type)
                                   for name, value in values.items()))
            .where(~exists().where(CallCharge.company_id == company_id, CallCharge.call_id == call_id)))
            .returning(CallReservation.id)).scalar()
    except IntegrityError:
        raise ConcurrentDuplicate(call_id) from None
    if inserted is None:
        balance, reserved = change_reserved(session, company_id, -held)
        return Hold(call_id, 0, balance - reserved, 0, ended=True)
    return hold


def _seconds_paid_for(amount: int, rate_per_minute: int, increment: int) -> int:
    """The longest call, in whole billing increments, that ``amount`` pays for."""
    if rate_per_minute <= 0:
        return 0
    seconds = amount * 60 // rate_per_minute
    return seconds - seconds % increment


@dataclass(frozen=True)
class EndedCall:
    charge: ChargedCall
    created: bool  # charged now, not a repeat
    auto_topup_enabled: bool  # as read with the call: only then may the charge start an automatic top-up


def end_call(session: Session, company_id: int, call_id: str, *, duration_seconds: int,
             ended_at: datetime | None = None, description: str = "") -> EndedCall:
    """Charge a finished call and let its reservation go.

    The call is charged in full even below zero: the platform has already carried it. An end
    without a start is charged all the same. A repeated end returns the first charge. The caller
    commits; on :class:`ConcurrentDuplicate` it rolls back and asks again, to get the first charge.
    """
    ended_at = ended_at or utcnow()
    known = _known_call(session, company_id, call_id, ended_at - timedelta(seconds=duration_seconds))
    if known.charge is not None:
        return EndedCall(known.charge, False, known.auto_topup_enabled)
    if known.elsewhere:
        raise CallOfAnotherCompany(call_id)
    reservation = known.reservation
    started_at = reservation.started_at if reservation else ended_at - timedelta(seconds=duration_seconds)
    if ended_at < started_at:
        raise EndBeforeStart(call_id)
    try:
        captured = reservation is not None and reservation.active  # not already expired
        released = _resolve(session, reservation.id, ReservationStatus.CAPTURED) if captured else None
        charge = charge_call(session, company_id, call_id, started_at=started_at, ended_at=ended_at,
                             duration_seconds=duration_seconds, description=description or _describe(reservation),
                             from_number=reservation.from_number if reservation else None,
                             to_number=reservation.to_number if reservation else None,
                             terms=reservation.terms if reservation else known.terms, release=released or 0)
        if reservation is None:
            _capture_late_start(session, company_id, call_id)
    except IntegrityError:
        raise ConcurrentDuplicate(call_id) from None
    return EndedCall(charge, True, known.auto_topup_enabled)


def _capture_late_start(session: Session, company_id: int, call_id: str) -> None:
    """A start that committed after this end read the call and before it locked the account left a
    hold (its own re-check could not see this uncommitted charge): capture it and let it go."""
    held = session.execute(
        update(CallReservation)
        .where(CallReservation.company_id == company_id, CallReservation.call_id == call_id,
               CallReservation.status == ReservationStatus.ACTIVE.value)
        .values(status=ReservationStatus.CAPTURED.value, resolved_at=utcnow())
        .returning(CallReservation.amount)
    ).scalar_one_or_none()
    if held:
        change_reserved(session, company_id, -held)


def _describe(reservation: Reservation | None) -> str:
    return (reservation.to_number or "") if reservation else ""


def _resolve(session: Session, reservation_id: int, status: ReservationStatus) -> int | None:
    """Resolve an active reservation once: only the UPDATE that finds it active gets the amount it
    held, for the caller to release in the same transaction; None when it was resolved already."""
    return session.execute(
        update(CallReservation)
        .where(CallReservation.id == reservation_id, CallReservation.status == ReservationStatus.ACTIVE.value)
        .values(status=status.value, resolved_at=utcnow())
        .returning(CallReservation.amount)
    ).scalar_one_or_none()


def stale_reservations(session: Session, now: datetime, older_than: timedelta) -> list[int]:
    """The ids of holds for calls that started ``older_than`` ago and never ended."""
    return list(session.scalars(select(CallReservation.id).where(
        CallReservation.status == ReservationStatus.ACTIVE.value, CallReservation.started_at <= now - older_than)))


def expire_reservation(session: Session, reservation_id: int) -> bool:
    """Let go of one stale hold, once; False when it was resolved meanwhile. The caller commits
    each one (a run over many holds keeps no company's balance row locked for long)."""
    company_id = session.scalar(select(CallReservation.company_id).where(CallReservation.id == reservation_id))
    held = _resolve(session, reservation_id, ReservationStatus.EXPIRED)
    if held is None:
        return False
    change_reserved(session, company_id, -held)
    return True


# How many of :company_id's calls hold funds right now, as a column any query can carry.
LIVE_CALLS = select(func.count()).select_from(CallReservation).where(
    CallReservation.company_id == bindparam("company_id"),
    CallReservation.status == ReservationStatus.ACTIVE.value).scalar_subquery().label("live_calls")
