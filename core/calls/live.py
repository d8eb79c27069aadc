"""Live calls: a start holds funds, an end charges the call and lets the hold go, exactly once.

Both are idempotent per (company, call id): the first answer is stored (the reservation row, the
call charge row) and returned again for a repeated or concurrent duplicate, whose insert loses at the
unique constraint. Every change locks the company's balance row first, so they queue per company.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.calls.rating import RATE_STARTED_AT_MOMENT, ChargedCall, RateTerms, charge_call, terms_or_first
from core.clock import utcnow
from core.ledger.postings import Guard, change_reserved, lock_account
from core.schema import CallCharge, CallReservation, Company, ReservationStatus


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
class KnownCall:
    """What is stored under a call id (ours, or a sign it is another company's) and the rate of a
    call that started at the moment asked about: one query before every start and end."""

    charge_id: int | None
    reservation_id: int | None
    elsewhere: bool  # call ids come from the telephony platform and are unique there
    terms: RateTerms


def _first_id(model, *, ours: bool):
    owner = model.company_id == bindparam("company_id") if ours else model.company_id != bindparam("company_id")
    return select(model.id).where(model.call_id == bindparam("call_id"), owner).limit(1).scalar_subquery()


_CALL_LOOKUP = select(
    _first_id(CallCharge, ours=True).label("charge_id"),
    _first_id(CallReservation, ours=True).label("reservation_id"),
    or_(_first_id(CallCharge, ours=False).is_not(None), _first_id(CallReservation, ours=False).is_not(None))
    .label("elsewhere"),
    *RATE_STARTED_AT_MOMENT,
)


def _known_call(session: Session, company_id: int, call_id: str, started_at: datetime) -> KnownCall:
    row = session.connection().execute(
        _CALL_LOOKUP, {"company_id": company_id, "rate_company_id": company_id, "call_id": call_id,
                       "moment": started_at}).one()
    return KnownCall(row.charge_id, row.reservation_id, row.elsewhere,
                     terms_or_first(session, company_id, row.rate_per_minute, row.billing_increment_seconds))


def start_call(session: Session, company_id: int, call_id: str, *, started_at: datetime, policy: CallPolicy,
               from_number: str | None = None, to_number: str | None = None) -> CallReservation:
    """Hold funds for a live call: the policy's minutes at the current rate, or what is available
    if that is less but at least the minimum. A repeated start returns the first reservation."""
    known = _known_call(session, company_id, call_id, started_at)
    if known.reservation_id is not None:
        return session.get(CallReservation, known.reservation_id)
    if known.elsewhere:
        raise CallOfAnotherCompany(call_id)
    company = session.get(Company, company_id)
    if company.blocked_at is not None:
        raise CompanyBlocked(company_id)
    rate = known.terms
    balance, reserved = lock_account(session, company_id)
    available = balance - reserved
    minimum = rate.rate_per_minute * policy.minimum_minutes
    if balance <= 0 or available < minimum:
        session.rollback()
        raise InsufficientFunds(available, minimum)
    held = min(rate.rate_per_minute * policy.reservation_minutes, available)
    change_reserved(session, company_id, held)
    reservation = CallReservation(
        company_id=company_id, call_id=call_id, amount=held, started_at=started_at,
        max_seconds=_seconds_paid_for(held, rate.rate_per_minute, rate.billing_increment_seconds),
        rate_per_minute=rate.rate_per_minute, billing_increment_seconds=rate.billing_increment_seconds,
        available_after=available - held, from_number=from_number, to_number=to_number,
    )
    session.add(reservation)
    try:
        session.commit()
    except IntegrityError:  # a concurrent duplicate start won
        session.rollback()
        return session.scalars(select(CallReservation).where(
            CallReservation.company_id == company_id, CallReservation.call_id == call_id)).one()
    return reservation


def _seconds_paid_for(amount: int, rate_per_minute: int, increment: int) -> int:
    """The longest call, in whole billing increments, that ``amount`` pays for."""
    if rate_per_minute <= 0:
        return 0
    seconds = amount * 60 // rate_per_minute
    return seconds - seconds % increment


def end_call(session: Session, company_id: int, call_id: str, *, duration_seconds: int,
             ended_at: datetime | None = None, description: str = "") -> tuple[ChargedCall, bool]:
    """Charge a finished call and let its reservation go. Returns (the charge, created now?).

    The call is charged in full even below zero: the platform has already carried it. An end
    without a start is charged all the same. A repeated end returns the first charge. It commits
    (or, on an error, rolls back).

    On PostgreSQL the end of a call without a reservation is first tried as one guarded statement:
    it charges at the rate the company's previous such call had, guarded by the conditions the full
    path would check (the call id unknown, that rate still the one in force). No reads before it,
    and the company's balance row is locked only until it commits. When the guard does not hold,
    the full path looks the call up and decides.
    """
    ended_at = ended_at or utcnow()
    try:
        if session.get_bind().dialect.name == "postgresql":
            charge = _end_in_one_statement(session, company_id, call_id, duration_seconds, ended_at, description)
            if charge is not None:
                session.commit()
                return charge, True
        return _end_call(session, company_id, call_id, duration_seconds, ended_at, description)
    finally:
        session.rollback()  # whatever way it left, nothing stays open


# Per process, the rate each company's last call without a reservation was charged at: only a
# hint, which the guarded statement checks against the rate in force.
_rate_hints: dict[int, RateTerms] = {}

_UNKNOWN_CALL_AT_HINTED_RATE = Guard("unknown call at the hinted rate", and_(
    ~exists().where(CallCharge.call_id == bindparam("call_id")),
    ~exists().where(CallReservation.call_id == bindparam("call_id")),
    RATE_STARTED_AT_MOMENT[0] == bindparam("hinted_rate"),
    RATE_STARTED_AT_MOMENT[1] == bindparam("hinted_increment"),
))


def _end_in_one_statement(session: Session, company_id: int, call_id: str, duration_seconds: int,
                          ended_at: datetime, description: str) -> ChargedCall | None:
    """The charge, or None when it was not written (no hint, a free call, the guard failed)."""
    terms = _rate_hints.get(company_id)
    if terms is None:
        return None
    started_at = ended_at - timedelta(seconds=duration_seconds)
    guard_params = {"rate_company_id": company_id, "call_id": call_id, "moment": started_at,
                    "hinted_rate": terms.rate_per_minute, "hinted_increment": terms.billing_increment_seconds}
    try:
        return charge_call(session, company_id, call_id, started_at=started_at, ended_at=ended_at,
                           duration_seconds=duration_seconds, description=description, terms=terms,
                           only_if=_UNKNOWN_CALL_AT_HINTED_RATE, guard_params=guard_params)
    except IntegrityError:  # a concurrent duplicate end: the full path finds its charge
        session.rollback()
        return None


def _end_call(session: Session, company_id: int, call_id: str, duration_seconds: int, ended_at: datetime,
              description: str) -> tuple[ChargedCall, bool]:
    known = _known_call(session, company_id, call_id, ended_at - timedelta(seconds=duration_seconds))
    if known.charge_id is not None:
        return ChargedCall.of(session.get(CallCharge, known.charge_id)), False
    if known.elsewhere:
        raise CallOfAnotherCompany(call_id)
    reservation = session.get(CallReservation, known.reservation_id) if known.reservation_id else None
    started_at = reservation.started_at if reservation else ended_at - timedelta(seconds=duration_seconds)
    if ended_at < started_at:
        raise EndBeforeStart(call_id)
    terms = _terms(reservation) or known.terms
    try:  # the balance UPDATE takes the row lock first, in the same order as expire_reservations
        charge = charge_call(session, company_id, call_id, started_at=started_at, ended_at=ended_at,
                             duration_seconds=duration_seconds, description=description or _describe(reservation),
                             from_number=reservation.from_number if reservation else None,
                             to_number=reservation.to_number if reservation else None, terms=terms)
    except IntegrityError:  # a concurrent duplicate end won
        session.rollback()
        return ChargedCall.of(_charge(session, company_id, call_id)), False
    if reservation is not None:
        _resolve(session, reservation, ReservationStatus.CAPTURED)
    session.commit()
    if reservation is None:
        _rate_hints[company_id] = terms
    return charge, True


def _terms(reservation: CallReservation | None) -> RateTerms | None:
    """The rate a reservation recorded at the start (None without one: the lookup has it)."""
    if reservation is None:
        return None
    return RateTerms(reservation.rate_per_minute, reservation.billing_increment_seconds)


def _charge(session: Session, company_id: int, call_id: str) -> CallCharge:
    return session.scalars(select(CallCharge).where(
        CallCharge.company_id == company_id, CallCharge.call_id == call_id)).one()


def _describe(reservation: CallReservation | None) -> str:
    return (reservation.to_number or "") if reservation else ""


def _resolve(session: Session, reservation: CallReservation, status: ReservationStatus) -> bool:
    """Resolve an active reservation once: only the UPDATE that finds it active releases the hold."""
    resolved = session.execute(
        update(CallReservation)
        .where(CallReservation.id == reservation.id, CallReservation.status == ReservationStatus.ACTIVE.value)
        .values(status=status.value, resolved_at=utcnow())
    ).rowcount
    if resolved:
        change_reserved(session, reservation.company_id, -reservation.amount)
    return bool(resolved)


def expire_reservations(session: Session, now: datetime, older_than: timedelta) -> int:
    """Let go of holds for calls that never ended. Returns how many expired."""
    stale = session.scalars(select(CallReservation).where(
        CallReservation.status == ReservationStatus.ACTIVE.value, CallReservation.started_at <= now - older_than
    )).all()
    expired = 0
    for reservation in stale:
        lock_account(session, reservation.company_id)
        expired += _resolve(session, reservation, ReservationStatus.EXPIRED)
        session.commit()
    return expired


# How many of :company_id's calls hold funds right now, as a column any query can carry.
LIVE_CALLS = select(func.count()).select_from(CallReservation).where(
    CallReservation.company_id == bindparam("company_id"),
    CallReservation.status == ReservationStatus.ACTIVE.value).scalar_subquery().label("live_calls")
