"""Monthly usage statements: calls, minutes, charges, top-ups, opening and closing balance."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from core.documents.invoices import Seller, render_pdf
from core.rendering import Renderer
from core.schema import BalanceTransaction, CallCharge, Company, EntryType, MonthlyStatement


def month_bounds(month: date) -> tuple[datetime, datetime]:
    start = datetime(month.year, month.month, 1)
    end = datetime(month.year + (month.month == 12), month.month % 12 + 1, 1)
    return start, end


def previous_month(today: date) -> date:
    return date(today.year - (today.month == 1), (today.month - 2) % 12 + 1, 1)


def _balance_before(session: Session, company_id: int, moment: datetime) -> int:
    return session.scalar(
        select(BalanceTransaction.balance_after)
        .where(BalanceTransaction.company_id == company_id, BalanceTransaction.created_at < moment)
        .order_by(BalanceTransaction.created_at.desc(), BalanceTransaction.id.desc()).limit(1)
    ) or 0


def statement_figures(session: Session, company_id: int, month: date) -> dict:
    """The month's figures from the ledger and the call charges (amounts in units)."""
    start, end = month_bounds(month)
    by_type = dict(session.execute(
        select(BalanceTransaction.type, func.sum(BalanceTransaction.amount))
        .where(BalanceTransaction.company_id == company_id, BalanceTransaction.created_at >= start,
               BalanceTransaction.created_at < end)
        .group_by(BalanceTransaction.type)
    ).all())
    calls, billed_seconds = session.execute(
        select(func.count(CallCharge.id), func.coalesce(func.sum(CallCharge.billed_seconds), 0))
        .where(CallCharge.company_id == company_id, CallCharge.started_at >= start, CallCharge.started_at < end)
    ).one()
    topup_count = session.scalar(
        select(func.count()).select_from(BalanceTransaction)
        .where(BalanceTransaction.company_id == company_id, BalanceTransaction.type == EntryType.TOPUP.value,
               BalanceTransaction.created_at >= start, BalanceTransaction.created_at < end)
    )
    opening, closing = _balance_before(session, company_id, start), _balance_before(session, company_id, end)
    return {
        "month": month.isoformat(),
        "opening_balance": opening,
        "closing_balance": closing,
        "calls": calls,
        "billed_seconds": int(billed_seconds),
        "call_charges": -int(by_type.get(EntryType.CHARGE.value, 0)),
        "call_refunds": int(by_type.get(EntryType.REFUND.value, 0)),
        "topups": int(by_type.get(EntryType.TOPUP.value, 0)),
        "topup_count": topup_count,
        "bonuses": int(by_type.get(EntryType.BONUS.value, 0)) + int(by_type.get(EntryType.BONUS_REVERSAL.value, 0)),
        "topup_refunds": -int(by_type.get(EntryType.TOPUP_REFUND.value, 0)),
        "adjustments": int(by_type.get(EntryType.ADJUSTMENT.value, 0)),
    }


def create_statement(session: Session, company_id: int, month: date, seller: Seller,
                     renderer: Renderer) -> MonthlyStatement:
    """The company's statement for ``month`` (first day), made once; a second call returns it. One unit
    of work, the caller commits; made concurrently, it raises IntegrityError (its unique key): the
    caller rolls back and asks again, which returns the other one's."""
    existing = session.scalar(select(MonthlyStatement).where(
        MonthlyStatement.company_id == company_id, MonthlyStatement.month == month))
    if existing is not None:
        return existing
    company = session.get(Company, company_id)
    figures = statement_figures(session, company_id, month)
    pdf = render_pdf(renderer, "documents/statement.html", company.language, company=company, seller=seller,
                     figures=figures, month=month)
    statement = MonthlyStatement(company_id=company_id, month=month, language=company.language,
                                 figures=figures, pdf=pdf)
    session.add(statement)
    session.flush()
    return statement


def companies_with_history(session: Session, month: date) -> list[int]:
    """Companies with ledger entries up to the end of the month: they get a statement."""
    _start, end = month_bounds(month)
    return sorted(session.scalars(
        select(BalanceTransaction.company_id).where(BalanceTransaction.created_at < end).distinct()))


def company_statements(session: Session, company_id: int) -> list[Row]:
    """The company's statements, newest month first: id and month only, never the PDFs."""
    return list(session.execute(select(MonthlyStatement.id, MonthlyStatement.month)
                                .where(MonthlyStatement.company_id == company_id)
                                .order_by(MonthlyStatement.month.desc())))


def company_statement(session: Session, company_id: int, statement_id: int) -> MonthlyStatement | None:
    statement = session.get(MonthlyStatement, statement_id)
    return statement if statement is not None and statement.company_id == company_id else None
