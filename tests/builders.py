"""Rows the tests start from, made through core's services on whichever session the test runs on:
the app context's (web tests) or a plain SQLAlchemy session (unit tests). The caller commits."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.accounts.users import create_company, create_user
from core.clock import utcnow
from core.ledger.postings import Reference, change_reserved, post_entry
from core.schema import DEFAULT_RATE_PER_MINUTE, CallReservation, EntryType, Role

COMPANY_PASSWORD = "company-password"


def add_company(session: Session, number: int, name: str | None = None, balance: int = 0, member: bool = False,
                **details) -> tuple[int, str]:
    """A company (with an optional opening top-up) and one user of it; returns its id and the user's email."""
    company = create_company(session, name or f"Company {number} GmbH", **details)
    role = Role.COMPANY_MEMBER if member else Role.COMPANY_ADMIN
    email = f"user{company.id}-{number}@example.com"
    create_user(session, email, COMPANY_PASSWORD, role, company=company)
    if balance:
        post_entry(session, company.id, EntryType.TOPUP, balance,
                   reference=Reference("test_topup", f"{company.id}-{number}"), description="Opening top-up")
    return company.id, email


def add_hold(session: Session, company_id: int, amount: int, call_id: str = "live-call") -> None:
    """``amount`` held for a live call, as a start leaves it: the reservation row and the reserved funds."""
    change_reserved(session, company_id, amount)
    session.add(CallReservation(company_id=company_id, call_id=call_id, amount=amount, started_at=utcnow(),
                                max_seconds=0, rate_per_minute=DEFAULT_RATE_PER_MINUTE, billing_increment_seconds=1,
                                available_after=0))
