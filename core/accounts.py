"""Companies and their users: creation, passwords, login, language preference."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from core.clock import utcnow
from core.i18n import LANGUAGES
from core.ledger import open_account
from core.models import BillingRate, Company, Role, User

MIN_PASSWORD_LENGTH = 10
# Compared against when the email is unknown, so both paths cost the same hashing time.
_UNKNOWN_USER_HASH = generate_password_hash("no-such-user-placeholder")


class AccountError(Exception):
    pass


def normalize_email(email: str) -> str:
    return email.strip().lower()


def create_company(session: Session, name: str, *, rate_per_minute: int | None = None,
                   billing_increment_seconds: int | None = None, **details) -> Company:
    """A company with its zero balance and its first billing rate (defaults: 0.42 EUR/min, 1 s)."""
    details.setdefault("created_at", utcnow())
    company = Company(name=name, **details)
    session.add(company)
    open_account(session, company)
    session.flush()
    rate = BillingRate(company_id=company.id, valid_from=company.created_at)
    if rate_per_minute is not None:
        rate.rate_per_minute = rate_per_minute
    if billing_increment_seconds is not None:
        rate.billing_increment_seconds = billing_increment_seconds
    session.add(rate)
    session.flush()
    return company


def create_user(session: Session, email: str, password: str, role: Role, *,
                company: Company | None = None, name: str = "", locale: str | None = None) -> User:
    is_staff = role in (Role.STAFF_SUPPORT, Role.STAFF_ADMIN)
    if is_staff == (company is not None):
        raise AccountError("staff users have no company; company users need one")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError("password too short")
    user = User(
        email=normalize_email(email),
        password_hash=generate_password_hash(password),
        role=role.value,
        company=company,
        name=name,
        locale=locale,
    )
    session.add(user)
    session.flush()
    return user


def find_user_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(func.lower(User.email) == normalize_email(email)))


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The user for these credentials, or None; unknown email and wrong password look alike."""
    user = find_user_by_email(session, email or "")
    if user is None:
        check_password_hash(_UNKNOWN_USER_HASH, password or "")
        return None
    if not check_password_hash(user.password_hash, password or "") or not user.active:
        return None
    user.last_login_at = utcnow()
    session.commit()
    return user


def set_language(session: Session, user: User, language: str) -> None:
    if language not in LANGUAGES:
        raise AccountError("unknown language")
    user.locale = language
    session.commit()
