"""Companies for support staff: the searchable list and the company's management (block, rate, threshold).

Each change adds its audit record to the same transaction and leaves committing to the caller."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, cast, func, or_, select, tuple_, update
from sqlalchemy.orm import Session

from core.accounts.audit import Actor, record_action
from core.calls.rating import rate_at
from core.clock import utcnow
from core.schema import BalanceFigures, BillingRate, Company, PrepaidBalance, Topup, TopupStatus, User
from core.money import to_decimal_string
from core.parsing import MAX_BIG_ID, MAX_ID, parse_json

SORTS = ("name", "balance")
FLAGS = ("low", "blocked", "negative", "auto_topup")


class InvalidListCursor(ValueError):
    pass


@dataclass(frozen=True)
class CompanyRow(BalanceFigures):
    id: int
    name: str
    balance: int
    reserved: int
    low_balance_threshold: int
    blocked: bool
    auto_topup_enabled: bool
    last_topup_at: datetime | None


@dataclass(frozen=True)
class CompanyPage:
    rows: list[CompanyRow]
    next_cursor: str | None


def _encode(sort_value, company_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([sort_value, company_id]).encode()).decode().rstrip("=")


def _decode(token: str, sort: str) -> tuple:
    try:
        value, company_id = parse_json(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, TypeError):  # InvalidInput is a ValueError
        raise InvalidListCursor(token) from None
    if sort == "name" and not isinstance(value, str):
        raise InvalidListCursor(token)
    if sort != "name" and not (isinstance(value, int) and -MAX_BIG_ID <= value <= MAX_BIG_ID):  # a BIGINT balance
        raise InvalidListCursor(token)
    if isinstance(company_id, bool) or not isinstance(company_id, int) or not 1 <= company_id <= MAX_ID:
        raise InvalidListCursor(token)
    return value, company_id


def list_companies(session: Session, *, text: str = "", flags: frozenset[str] = frozenset(), sort: str = "name",
                   after: str | None = None, limit: int = 50) -> CompanyPage:
    """Companies matching the search (id, name, a user's email) and flags, keyset-paginated."""
    last_topup = (select(Topup.company_id, func.max(Topup.credited_at).label("at"))
                  .where(Topup.status == TopupStatus.CREDITED.value).group_by(Topup.company_id).subquery())
    sort_column = Company.name if sort == "name" else PrepaidBalance.balance
    query = (select(Company.id, Company.name, PrepaidBalance.balance, PrepaidBalance.reserved,
                    PrepaidBalance.low_balance_threshold, Company.blocked_at, PrepaidBalance.auto_topup_enabled,
                    last_topup.c.at)
             .join(PrepaidBalance, PrepaidBalance.company_id == Company.id)
             .outerjoin(last_topup, last_topup.c.company_id == Company.id))
    query = _filtered(query, text.strip(), flags)
    if after:
        query = query.where(tuple_(sort_column, Company.id) > _decode(after, sort))
    rows = session.execute(query.order_by(sort_column, Company.id).limit(limit + 1)).all()
    page = [CompanyRow(r.id, r.name, r.balance, r.reserved, r.low_balance_threshold, r.blocked_at is not None,
                       r.auto_topup_enabled, r.at) for r in rows[:limit]]
    more = len(rows) > limit
    last = page[-1] if page else None
    next_cursor = _encode(last.name if sort == "name" else last.balance, last.id) if more and last else None
    return CompanyPage(page, next_cursor)


def _filtered(query, text: str, flags: frozenset[str]):
    if text:
        pattern = f"%{text.lower()}%"
        user_match = select(User.company_id).where(func.lower(User.email).like(pattern))
        query = query.where(or_(func.lower(Company.name).like(pattern), Company.id.in_(user_match),
                                cast(Company.id, String) == text))
    if "low" in flags:
        query = query.where(PrepaidBalance.balance < PrepaidBalance.low_balance_threshold)
    if "blocked" in flags:
        query = query.where(Company.blocked_at.is_not(None))
    if "negative" in flags:
        query = query.where(PrepaidBalance.balance < 0)
    if "auto_topup" in flags:
        query = query.where(PrepaidBalance.auto_topup_enabled.is_(True))
    return query


# -- managing a company (each change and its audit record: one unit of work, the caller commits) -------

def set_blocked(session: Session, actor: Actor, company_id: int, blocked: bool, reason: str) -> Company:
    """Block or unblock; asking for the state it is in already (a double-submitted form) changes nothing."""
    company = session.get(Company, company_id)
    if (company.blocked_at is not None) == blocked:
        return company
    before = {"blocked": company.blocked_at is not None, "reason": company.blocked_reason}
    company.blocked_at, company.blocked_reason = (utcnow(), reason) if blocked else (None, None)
    record_action(session, actor, "company.block" if blocked else "company.unblock", target_type="company",
                  target_id=company_id, company_id=company_id, before=before,
                  after={"blocked": blocked, "reason": company.blocked_reason}, reason=reason)
    return company


def change_rate(session: Session, actor: Actor, company_id: int, rate_per_minute: int, increment_seconds: int,
                reason: str) -> BillingRate | None:
    """A new rate from now on; calls that started before keep their rate (the old row stays).
    The rate in force already (e.g. a double-submitted form) adds nothing: None."""
    current = rate_at(session, company_id)
    if (current.rate_per_minute, current.billing_increment_seconds) == (rate_per_minute, increment_seconds):
        return None
    rate = BillingRate(company_id=company_id, rate_per_minute=rate_per_minute,
                       billing_increment_seconds=increment_seconds, valid_from=utcnow())
    session.add(rate)
    record_action(session, actor, "company.rate", target_type="company", target_id=company_id, company_id=company_id,
                  before={"rate_per_minute": to_decimal_string(current.rate_per_minute),
                          "increment": current.billing_increment_seconds},
                  after={"rate_per_minute": to_decimal_string(rate_per_minute), "increment": increment_seconds},
                  reason=reason)
    return rate


def change_threshold(session: Session, actor: Actor, company_id: int, threshold: int, reason: str) -> None:
    before = session.get(PrepaidBalance, company_id).low_balance_threshold
    if before == threshold:  # a double-submitted form
        return
    session.execute(update(PrepaidBalance).where(PrepaidBalance.company_id == company_id)
                    .values(low_balance_threshold=threshold))
    record_action(session, actor, "company.threshold", target_type="company", target_id=company_id,
                  company_id=company_id, before={"threshold": to_decimal_string(before)},
                  after={"threshold": to_decimal_string(threshold)}, reason=reason)


class AutoTopupIncomplete(Exception):
    pass


def set_auto_topup(session: Session, actor: Actor, company_id: int, enabled: bool, reason: str) -> None:
    """Staff switch a company's automatic top-up on (only with a complete setup) or off."""
    account = session.get(PrepaidBalance, company_id)
    if account.auto_topup_enabled == enabled:  # a double-submitted form
        return
    if enabled and not (account.auto_topup_payment_method_id and account.auto_topup_amount
                        and account.auto_topup_threshold is not None):
        raise AutoTopupIncomplete(company_id)
    before = {"enabled": account.auto_topup_enabled}
    account.auto_topup_enabled = enabled
    if enabled:
        account.auto_topup_consecutive_failures = 0
    record_action(session, actor, "company.auto_topup", target_type="company", target_id=company_id,
                  company_id=company_id, before=before, after={"enabled": enabled}, reason=reason)


def rate_history(session: Session, company_id: int) -> list[BillingRate]:
    return list(session.scalars(select(BillingRate).where(BillingRate.company_id == company_id)
                                .order_by(BillingRate.valid_from.desc(), BillingRate.id.desc())))
