"""Companies and their users: creation, passwords, login, language preference.

The functions that write leave committing to the caller (the view or command: one unit of work)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from core.clock import utcnow
from core.i18n import LANGUAGES
from core.ledger.postings import open_account
from core.schema import BillingRate, Company, Role, RoleChecks, User

MIN_PASSWORD_LENGTH = 10


@cache
def _unknown_user_hash() -> str:
    """Compared against when the email is unknown, so both paths cost the same hashing time. Made on
    first use, not at import: hashing costs every process (CLI commands, workers) ~0.1 s of CPU."""
    return generate_password_hash("no-such-user-placeholder")


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
    """The user for these credentials, or None; unknown email and wrong password look alike.
    A successful login notes ``last_login_at`` (the caller commits)."""
    user = find_user_by_email(session, email or "")
    if user is None:
        check_password_hash(_unknown_user_hash(), password or "")
        return None
    if not check_password_hash(user.password_hash, password or "") or not user.active:
        return None
    user.last_login_at = utcnow()
    return user


def set_language(session: Session, user_id: int, language: str) -> None:
    if language not in LANGUAGES:
        raise AccountError("unknown language")
    session.execute(update(User).where(User.id == user_id).values(locale=language))


@dataclass(frozen=True)
class CompanyStanding:
    """Whether the signed-in user's company is blocked, which every page shows."""

    blocked_at: datetime | None
    blocked_reason: str | None


@dataclass(frozen=True, eq=False)
class SignedInUser(RoleChecks):
    """Who a request comes from: a read-only copy of the user row and its company's standing.
    Every request loads it, so it comes from one plain query (an ORM object costs several times
    more); changes to the user go through the functions here, by ``id``."""

    id: int
    email: str
    role: str
    company_id: int | None
    locale: str | None
    active: bool
    company: CompanyStanding | None
    session_generation: int

    @property
    def is_active(self) -> bool:
        return self.active


_USERS, _COMPANIES = User.__table__.c, Company.__table__.c
_SIGNED_IN_USER = (select(_USERS.id, _USERS.email, _USERS.role, _USERS.company_id, _USERS.locale, _USERS.active,
                          _USERS.session_generation, _COMPANIES.blocked_at, _COMPANIES.blocked_reason)
                   .outerjoin_from(User.__table__, Company.__table__, _COMPANIES.id == _USERS.company_id)
                   .where(_USERS.id == bindparam("user_id")))


def signed_in_user(session: Session, user_id: int) -> SignedInUser | None:
    row = session.execute(_SIGNED_IN_USER, {"user_id": user_id}).one_or_none()
    if row is None:
        return None
    company = CompanyStanding(row.blocked_at, row.blocked_reason) if row.company_id is not None else None
    return SignedInUser(row.id, row.email, row.role, row.company_id, row.locale, row.active, company,
                        row.session_generation)


SET_PASSWORD_SALT = "set-password"
SET_PASSWORD_MAX_AGE = 7 * 24 * 3600


def invite_user(session: Session, company_id: int, email: str, name: str, role: Role) -> User:
    """A new company user who chooses a password through the emailed link (a random one until then)."""
    if role not in (Role.COMPANY_ADMIN, Role.COMPANY_MEMBER):
        raise AccountError("only company roles can be invited")
    if find_user_by_email(session, email) is not None:
        raise AccountError("email taken")
    company = session.get(Company, company_id)
    return create_user(session, email, secrets.token_urlsafe(32), role, company=company, name=name)


def set_password_token(user: User, secret_key: str) -> str:
    """A signed link token; it dies when the password changes (it carries part of the current hash)."""
    return URLSafeTimedSerializer(secret_key, SET_PASSWORD_SALT).dumps([user.id, user.password_hash[-16:]])


def user_for_set_password_token(session: Session, token: str, secret_key: str) -> User | None:
    try:
        user_id, fingerprint = URLSafeTimedSerializer(secret_key, SET_PASSWORD_SALT).loads(
            token, max_age=SET_PASSWORD_MAX_AGE)
    except (BadSignature, ValueError, TypeError):
        return None
    user = session.get(User, user_id) if isinstance(user_id, int) else None
    if user is None or not user.active or user.password_hash[-16:] != fingerprint:
        return None
    return user


def end_sessions(session: Session, user_id: int) -> None:
    """Ends every session of the user, on every device: each carries the generation it began in,
    and a session of an older generation is refused (the web shell compares them per request)."""
    session.execute(update(User).where(User.id == user_id)
                    .values(session_generation=User.session_generation + 1))


def set_password(session: Session, user: User, password: str) -> None:
    """A new password; every session opened with the old one ends."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError("password too short")
    user.password_hash = generate_password_hash(password)
    end_sessions(session, user.id)


def set_active(session: Session, user: User, active: bool) -> None:
    """Deactivating ends the user's sessions at once (reactivating starts from a new login anyway)."""
    user.active = active
    end_sessions(session, user.id)


def set_role(session: Session, user: User, role: Role) -> None:
    """A company user's new role; their sessions end, so the next page is seen with the new rights
    only after a new login."""
    if role not in (Role.COMPANY_ADMIN, Role.COMPANY_MEMBER) or user.company_id is None:
        raise AccountError("only company users change between company roles")
    user.role = role.value
    end_sessions(session, user.id)
