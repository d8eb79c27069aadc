"""The only code that changes a balance.

:func:`post_entry` is the one write path, the same on PostgreSQL and SQLite: it moves a company's
balance and writes its ledger row in the caller's transaction. Its single guarded
``UPDATE ... RETURNING`` both takes the row lock (PostgreSQL) or the write lock (SQLite,
``BEGIN IMMEDIATE``) and yields the new balance, so concurrent writers queue up and every row's
``balance_before`` is the previous row's ``balance_after``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from core.clock import utcnow
from core.schema import BalanceTransaction, CallReservation, Company, EntryType, PrepaidBalance, ReservationStatus


class LedgerError(Exception):
    """Base of the ledger's domain errors."""


class UnknownCompany(LedgerError):
    pass


class InsufficientBalance(LedgerError):
    def __init__(self, available: int, requested: int):
        super().__init__(f"available {available}, requested {requested}")
        self.available = available
        self.requested = requested


class ZeroAmount(LedgerError):
    pass


@dataclass(frozen=True)
class Reference:
    """What a ledger row is about, e.g. ``Reference("topup", "42")``."""

    type: str
    id: str


_BALANCES, _LEDGER = PrepaidBalance.__table__, BalanceTransaction.__table__
_AMOUNT = bindparam("amount", type_=_BALANCES.c.balance.type)
_RELEASE = bindparam("release", type_=_BALANCES.c.reserved.type)
# Built once, then only executed: the balance moves and yields what it became.
_MOVE = (
    update(_BALANCES)
    .where(_BALANCES.c.company_id == bindparam("account"))
    .values(balance=_BALANCES.c.balance + _AMOUNT, reserved=_BALANCES.c.reserved - _RELEASE,
            updated_at=bindparam("now", type_=_BALANCES.c.updated_at.type))
    .returning(_BALANCES.c.balance, _BALANCES.c.reserved)
)
# The guard of a debit that must stay within the available balance, in the same UPDATE.
_MOVE_WITHIN_AVAILABLE = _MOVE.where(_BALANCES.c.balance + _AMOUNT - (_BALANCES.c.reserved - _RELEASE) >= 0)
_APPEND = insert(_LEDGER).returning(_LEDGER.c.id)


def post_entry(
    session: Session,
    company_id: int,
    entry_type: EntryType,
    amount: int,
    *,
    description: str = "",
    reference: Reference | None = None,
    actor: str = "system",
    allow_negative: bool = False,
    created_at: datetime | None = None,
    release: int = 0,
) -> BalanceTransaction:
    """Add ``amount`` (signed units) to the balance and append the matching ledger row.

    A debit that would take the available balance (balance − reserved) below zero raises
    :class:`InsufficientBalance` and changes nothing, unless ``allow_negative``. ``release`` is
    held money (a live call's reservation, see :func:`change_reserved`) this posting lets go of in
    the same UPDATE. The caller commits; a duplicate ``reference`` for the same type fails at the
    unique constraint. The ledger row comes back as a loaded ``BalanceTransaction`` of the session.
    """
    if amount == 0:
        raise ZeroAmount()
    session.flush()  # what the caller added (a new account, say) is in the database before the UPDATE
    now = utcnow()
    statement = _MOVE_WITHIN_AVAILABLE if amount < 0 and not allow_negative else _MOVE
    moved = session.connection().execute(
        statement, {"account": company_id, "amount": amount, "release": release, "now": now}).one_or_none()
    if moved is None:
        _raise_for_refused_update(session, company_id, amount)
    _show_in_loaded_account(session, company_id, balance=moved.balance, reserved=moved.reserved, updated_at=now)
    values = dict(
        company_id=company_id, type=EntryType(entry_type).value, amount=amount, balance_before=moved.balance - amount,
        balance_after=moved.balance, description=description, reference_type=reference.type if reference else None,
        reference_id=reference.id if reference else None, actor=actor, created_at=created_at or now,
    )
    entry = BalanceTransaction(id=session.connection().execute(_APPEND, values).scalar_one(), **values)
    make_transient_to_detached(entry)  # written already: the session takes it as loaded, not as new
    session.add(entry)
    return entry


def _show_in_loaded_account(session: Session, company_id: int, **columns) -> None:
    """The statements above bypass the ORM: a balance row the session has loaded gets their values."""
    account = session.identity_map.get(identity_key(PrepaidBalance, company_id))
    if account is not None:
        for name, value in columns.items():
            set_committed_value(account, name, value)


def lock_account(session: Session, company_id: int) -> tuple[int, int]:
    """Lock the company's balance row until the caller commits; returns (balance, reserved).

    A write, not a SELECT: on SQLite that is what opens the IMMEDIATE transaction.
    """
    return change_reserved(session, company_id, 0)


_RESERVE = (
    update(_BALANCES)
    .where(_BALANCES.c.company_id == bindparam("account"))
    .values(reserved=_BALANCES.c.reserved + bindparam("delta", type_=_BALANCES.c.reserved.type),
            updated_at=bindparam("now", type_=_BALANCES.c.updated_at.type))
    .returning(_BALANCES.c.balance, _BALANCES.c.reserved)
)


def change_reserved(session: Session, company_id: int, delta: int) -> tuple[int, int]:
    """Hold (+) or release (−) funds for live calls; locks the account like :func:`lock_account`
    (which is a delta of 0). Returns (balance, reserved)."""
    session.flush()
    now = utcnow()
    row = session.connection().execute(_RESERVE, {"account": company_id, "delta": delta, "now": now}).one_or_none()
    if row is None:
        raise UnknownCompany(company_id)
    _show_in_loaded_account(session, company_id, reserved=row.reserved, updated_at=now)
    return row.balance, row.reserved


def book_unexplained_difference(session: Session, company_id: int, *, description: str,
                                actor: str) -> BalanceTransaction | None:
    """When a balance no longer equals its ledger (something bypassed post_entry), append the
    adjustment row that explains the difference; the balance itself is left as it is. The caller commits."""
    balance, _reserved = lock_account(session, company_id)
    last_after = session.scalar(
        select(BalanceTransaction.balance_after).where(BalanceTransaction.company_id == company_id)
        .order_by(BalanceTransaction.id.desc()).limit(1)
    ) or 0
    if balance == last_after:
        return None
    entry = BalanceTransaction(company_id=company_id, type=EntryType.ADJUSTMENT.value, amount=balance - last_after,
                               balance_before=last_after, balance_after=balance, description=description,
                               actor=actor, created_at=utcnow())
    session.add(entry)
    session.flush()
    return entry


def _raise_for_refused_update(session: Session, company_id: int, amount: int) -> None:
    account = session.get(PrepaidBalance, company_id, populate_existing=True)
    if account is None:
        raise UnknownCompany(company_id)
    raise InsufficientBalance(available=account.available, requested=-amount)


def open_account(session: Session, company: Company, **settings) -> PrepaidBalance:
    """Create a company's balance row, starting at zero (money only ever arrives via post_entry)."""
    account = PrepaidBalance(company=company, balance=0, reserved=0, **settings)
    session.add(account)
    return account


@dataclass(frozen=True)
class LedgerMismatch:
    company_id: int
    company_name: str
    problem: str


def verify_ledger(session: Session) -> list[LedgerMismatch]:
    """Check DESIGN.md's invariants for every company; an empty list means all hold."""
    return (_balance_mismatches(session) + _row_arithmetic_mismatches(session) + _chain_mismatches(session)
            + _reserved_mismatches(session))


def _balance_mismatches(session: Session) -> list[LedgerMismatch]:
    ledger_sum = (
        select(BalanceTransaction.company_id, func.sum(BalanceTransaction.amount).label("total"))
        .group_by(BalanceTransaction.company_id)
        .subquery()
    )
    rows = session.execute(
        select(Company.id, Company.name, PrepaidBalance.balance, func.coalesce(ledger_sum.c.total, 0))
        .join(PrepaidBalance, PrepaidBalance.company_id == Company.id)
        .outerjoin(ledger_sum, ledger_sum.c.company_id == Company.id)
        .where(PrepaidBalance.balance != func.coalesce(ledger_sum.c.total, 0))
    )
    return [
        LedgerMismatch(cid, name, f"balance {balance} != ledger sum {total}")
        for cid, name, balance, total in rows
    ]


def _reserved_mismatches(session: Session) -> list[LedgerMismatch]:
    """Reserved must be what the company's open holds (active reservations) add up to."""
    held = (
        select(CallReservation.company_id, func.sum(CallReservation.amount).label("total"))
        .where(CallReservation.status == ReservationStatus.ACTIVE.value)
        .group_by(CallReservation.company_id)
        .subquery()
    )
    rows = session.execute(
        select(Company.id, Company.name, PrepaidBalance.reserved, func.coalesce(held.c.total, 0))
        .join(PrepaidBalance, PrepaidBalance.company_id == Company.id)
        .outerjoin(held, held.c.company_id == Company.id)
        .where(PrepaidBalance.reserved != func.coalesce(held.c.total, 0))
    )
    return [LedgerMismatch(cid, name, f"reserved {reserved} != open holds {total}") for cid, name, reserved, total in rows]


def _row_arithmetic_mismatches(session: Session) -> list[LedgerMismatch]:
    rows = session.execute(
        select(Company.id, Company.name, func.count())
        .join(BalanceTransaction, BalanceTransaction.company_id == Company.id)
        .where(BalanceTransaction.balance_before + BalanceTransaction.amount != BalanceTransaction.balance_after)
        .group_by(Company.id, Company.name)
    )
    return [LedgerMismatch(cid, name, f"{count} rows where before + amount != after") for cid, name, count in rows]


def _chain_mismatches(session: Session) -> list[LedgerMismatch]:
    previous_after = (
        func.lag(BalanceTransaction.balance_after, 1, 0)
        .over(partition_by=BalanceTransaction.company_id, order_by=BalanceTransaction.id)
    )
    chained = select(
        BalanceTransaction.company_id,
        BalanceTransaction.balance_before,
        previous_after.label("previous_after"),
    ).subquery()
    rows = session.execute(
        select(Company.id, Company.name, func.count())
        .join(chained, chained.c.company_id == Company.id)
        .where(chained.c.balance_before != chained.c.previous_after)
        .group_by(Company.id, Company.name)
    )
    return [
        LedgerMismatch(cid, name, f"{count} rows whose before != the previous row's after")
        for cid, name, count in rows
    ]
