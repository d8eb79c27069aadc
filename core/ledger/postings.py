"""The only code that changes a balance.

:func:`post_entry` moves a company's balance and writes its ledger row in the caller's
transaction. The single ``UPDATE ... RETURNING`` both takes the row lock (PostgreSQL) or the
write lock (SQLite, ``BEGIN IMMEDIATE``) and yields the new balance, so concurrent writers queue
up and every row's ``balance_before`` is the previous row's ``balance_after``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Table, bindparam, func, insert, or_, select, true, update
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.schema import BalanceTransaction, Company, EntryType, PrepaidBalance


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
) -> BalanceTransaction:
    """Add ``amount`` (signed units) to the balance and append the matching ledger row.

    A debit that would take the available balance (balance − reserved) below zero raises
    :class:`InsufficientBalance` and changes nothing, unless ``allow_negative``. The caller
    commits; a duplicate ``reference`` for the same type fails at the unique constraint.
    """
    if amount == 0:
        raise ZeroAmount()
    new_balance = PrepaidBalance.balance + amount
    statement = (
        update(PrepaidBalance)
        .where(PrepaidBalance.company_id == company_id)
        .values(balance=new_balance, updated_at=utcnow())
        .returning(PrepaidBalance.balance)
    )
    if amount < 0 and not allow_negative:
        statement = statement.where(new_balance - PrepaidBalance.reserved >= 0)
    balance_after = session.execute(statement).scalar_one_or_none()
    if balance_after is None:
        _raise_for_refused_update(session, company_id, amount)

    entry = BalanceTransaction(
        company_id=company_id,
        type=EntryType(entry_type).value,
        amount=amount,
        balance_before=balance_after - amount,
        balance_after=balance_after,
        description=description,
        reference_type=reference.type if reference else None,
        reference_id=reference.id if reference else None,
        actor=actor,
        created_at=created_at or utcnow(),
    )
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class LinkedPosting:
    record_id: int  # the linked row's id
    entry_id: int
    balance_after: int


@dataclass(frozen=True)
class Guard:
    """A condition a posting checks in the same statement that writes it: nothing is written
    unless it holds. ``name`` identifies it (the statement is built once per guard)."""

    name: str
    condition: ColumnElement[bool]


def post_linked_entry(
    session: Session,
    company_id: int,
    entry_type: EntryType,
    amount: int,
    *,
    table: Table,
    values: dict,
    description: str = "",
    reference: Reference | None = None,
    actor: str = "system",
    allow_negative: bool = False,
    created_at: datetime | None = None,
    only_if: Guard | None = None,
    guard_params: dict | None = None,
) -> LinkedPosting | None:
    """:func:`post_entry`, and insert ``values`` into ``table`` (e.g. a call charge) pointing at the
    new ledger row: ``ledger_entry_id`` and ``balance_after``. Same rules, same errors.

    With ``only_if`` (its bind parameters in ``guard_params``) it writes nothing and returns None
    when the guard does not hold (nor when the company is unknown or a debit refused).

    On PostgreSQL the three writes are one statement, so the balance row lock is held from that
    statement to COMMIT and not across round trips from Python; elsewhere they run one by one.
    """
    if amount == 0:
        raise ZeroAmount()
    if session.get_bind().dialect.name != "postgresql":
        if only_if is not None and not session.scalar(select(only_if.condition), guard_params):
            return None
        entry = post_entry(session, company_id, entry_type, amount, description=description, reference=reference,
                           actor=actor, allow_negative=allow_negative, created_at=created_at)
        record_id = session.execute(insert(table).values(
            **values, ledger_entry_id=entry.id, balance_after=entry.balance_after).returning(table.c.id)).scalar_one()
        return LinkedPosting(record_id, entry.id, entry.balance_after)
    now = utcnow()
    params = {"account": company_id, "amount": amount, "allow_negative": allow_negative, "now": now,
              "type": EntryType(entry_type).value, "description": description, "actor": actor,
              "reference_type": reference.type if reference else None,
              "reference_id": reference.id if reference else None, "created_at": created_at or now,
              **(guard_params or {})}
    params.update({f"linked_{name}": value for name, value in values.items()})
    row = session.connection().execute(_linked_posting_statement(table, tuple(values), only_if), params).one_or_none()
    if row is not None:
        return LinkedPosting(*row)
    if only_if is None:
        _raise_for_refused_update(session, company_id, amount)
    return None


_LINKED_STATEMENTS: dict[tuple[str, tuple[str, ...], str | None], object] = {}


def _linked_posting_statement(table: Table, columns: tuple[str, ...], guard: Guard | None):
    """UPDATE the balance, INSERT the ledger row from its RETURNING, INSERT the linked row from that:
    PostgreSQL's data-modifying CTEs. Built once per table, column list and guard, then only executed."""
    key = (table.name, columns, guard.name if guard else None)
    if key not in _LINKED_STATEMENTS:
        balances, ledger = PrepaidBalance.__table__, BalanceTransaction.__table__
        amount = bindparam("amount", type_=balances.c.balance.type)
        moved = (
            update(balances)
            .where(balances.c.company_id == bindparam("account"),
                   or_(bindparam("allow_negative"), amount >= 0, balances.c.balance + amount - balances.c.reserved >= 0),
                   guard.condition if guard else true())
            .values(balance=balances.c.balance + amount, updated_at=bindparam("now", type_=balances.c.updated_at.type))
            .returning(balances.c.company_id, balances.c.balance)
            .cte("moved")
        )
        entry_values = {
            "company_id": moved.c.company_id, "amount": amount, "balance_before": moved.c.balance - amount,
            "balance_after": moved.c.balance,
            **{name: bindparam(name, type_=ledger.c[name].type)
               for name in ("type", "description", "reference_type", "reference_id", "actor", "created_at")},
        }
        entry = (
            insert(ledger).from_select(list(entry_values), select(*entry_values.values()))
            .returning(ledger.c.id, ledger.c.balance_after)
            .cte("entry")
        )
        linked_values = {name: bindparam(f"linked_{name}", type_=table.c[name].type) for name in columns}
        linked_values.update(ledger_entry_id=entry.c.id, balance_after=entry.c.balance_after)
        _LINKED_STATEMENTS[key] = (
            insert(table).from_select(list(linked_values), select(*linked_values.values()))
            .returning(table.c.id, table.c.ledger_entry_id, table.c.balance_after)
        )
    return _LINKED_STATEMENTS[key]


def lock_account(session: Session, company_id: int) -> tuple[int, int]:
    """Lock the company's balance row until the caller commits; returns (balance, reserved).

    A write, not a SELECT: on SQLite that is what opens the IMMEDIATE transaction.
    """
    row = session.execute(
        update(PrepaidBalance).where(PrepaidBalance.company_id == company_id).values(updated_at=utcnow())
        .returning(PrepaidBalance.balance, PrepaidBalance.reserved)
    ).one_or_none()
    if row is None:
        raise UnknownCompany(company_id)
    return row.balance, row.reserved


def change_reserved(session: Session, company_id: int, delta: int) -> int:
    """Hold (+) or release (−) funds for live calls; call with the account locked. Returns reserved."""
    return session.execute(
        update(PrepaidBalance).where(PrepaidBalance.company_id == company_id)
        .values(reserved=PrepaidBalance.reserved + delta).returning(PrepaidBalance.reserved)
    ).scalar_one()


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
    """Check DESIGN.md's three invariants for every company; an empty list means all hold."""
    return _balance_mismatches(session) + _row_arithmetic_mismatches(session) + _chain_mismatches(session)


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
