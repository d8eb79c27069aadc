"""Live calls: a start holds funds, an end charges the call and lets the hold go, exactly once.

Both are idempotent per (company, call id): the first answer is stored (the reservation row, the
call charge row) and returned again for a repeated or concurrent duplicate, whose insert loses at the
unique constraint. Every change locks the company's balance row first, so they queue per company.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.charging import charge_call, rate_at
from core.clock import utcnow
from core.ledger import change_reserved, lock_account
from core.models import CallCharge, CallReservation, Company, ReservationStatus


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


def _owned_elsewhere(session: Session, company_id: int, call_id: str) -> bool:
    """Call ids come from the telephony platform and are unique there: one of another company is not ours."""
    for model in (CallReservation, CallCharge):
        if session.scalar(select(model.id).where(model.call_id == call_id, model.company_id != company_id).limit(1)):
            return True
    return False


def _reservation(session: Session, company_id: int, call_id: str) -> CallReservation | None:
    return session.scalar(select(CallReservation).where(
        CallReservation.company_id == company_id, CallReservation.call_id == call_id))


def start_call(session: Session, company_id: int, call_id: str, *, started_at: datetime, policy: CallPolicy,
               from_number: str | None = None, to_number: str | None = None) -> CallReservation:
    """Hold funds for a live call: the policy's minutes at the current rate, or what is available
    if that is less but at least the minimum. A repeated start returns the first reservation."""
    existing = _reservation(session, company_id, call_id)
    if existing is not None:
        return existing
    if _owned_elsewhere(session, company_id, call_id):
        raise CallOfAnotherCompany(call_id)
    company = session.get(Company, company_id)
    if company.blocked_at is not None:
        raise CompanyBlocked(company_id)
    rate = rate_at(session, company_id, started_at)
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
        return _reservation(session, company_id, call_id)
    return reservation


def _seconds_paid_for(amount: int, rate_per_minute: int, increment: int) -> int:
    """The longest call, in whole billing increments, that ``amount`` pays for."""
    if rate_per_minute <= 0:
        return 0
    seconds = amount * 60 // rate_per_minute
    return seconds - seconds % increment


def end_call(session: Session, company_id: int, call_id: str, *, duration_seconds: int,
             ended_at: datetime | None = None, description: str = "") -> tuple[CallCharge, bool]:
    """Charge a finished call and let its reservation go. Returns (charge, created now?).

    The call is charged in full even below zero: the platform has already carried it. An end
    without a start is charged all the same. A repeated end returns the first charge.
    """
    existing = _charge(session, company_id, call_id)
    if existing is not None:
        return existing, False
    if _owned_elsewhere(session, company_id, call_id):
        raise CallOfAnotherCompany(call_id)
    ended_at = ended_at or utcnow()
    reservation = _reservation(session, company_id, call_id)
    started_at = reservation.started_at if reservation else ended_at - timedelta(seconds=duration_seconds)
    if ended_at < started_at:
        raise EndBeforeStart(call_id)
    try:  # post_entry's UPDATE takes the balance row lock, in the same order as expire_reservations
        charge = charge_call(session, company_id, call_id, started_at=started_at, ended_at=ended_at,
                             duration_seconds=duration_seconds, description=description or _describe(reservation),
                             from_number=reservation.from_number if reservation else None,
                             to_number=reservation.to_number if reservation else None)
    except IntegrityError:  # a concurrent duplicate end won
        session.rollback()
        return _charge(session, company_id, call_id), False
    if reservation is not None:
        _resolve(session, reservation, ReservationStatus.CAPTURED)
    if charge.balance_after is None:  # a 0-second call posts nothing: report the balance as it stands
        charge.balance_after = lock_account(session, company_id)[0]
    session.commit()
    return charge, True


def _charge(session: Session, company_id: int, call_id: str) -> CallCharge | None:
    return session.scalar(select(CallCharge).where(CallCharge.company_id == company_id, CallCharge.call_id == call_id))


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


def live_calls(session: Session, company_id: int) -> int:
    return session.scalar(select(func.count()).select_from(CallReservation).where(
        CallReservation.company_id == company_id, CallReservation.status == ReservationStatus.ACTIVE.value))
