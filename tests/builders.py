"""Rows the tests start from, made through core's services on whichever session the test runs on:
the app context's (web tests) or a plain SQLAlchemy session (unit tests). The caller commits."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.accounts.users import create_company, create_user
from core.ledger.postings import Reference, post_entry
from core.schema import EntryType, Role

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
