"""Read side of a company's money: what the dashboard, the CLI and support look at."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.calls import live_calls
from core.charging import rate_at
from core.clock import utcnow
from core.models import Company, PrepaidBalance, User
from core.usage import Runway, runway


@dataclass(frozen=True)
class AccountSummary:
    company_id: int
    company_name: str
    balance: int
    reserved: int
    available: int
    low_balance_threshold: int
    is_low: bool
    auto_topup_enabled: bool
    auto_topup_threshold: int | None
    auto_topup_amount: int | None
    auto_topup_payment_method_id: str | None
    auto_topup_daily_limit: int
    auto_topup_monthly_cap: int | None
    rate_per_minute: int
    billing_increment_seconds: int
    live_calls: int = 0  # calls holding funds right now
    runway: Runway | None = None  # how long the available balance lasts at the recent spend

    @property
    def minutes_left(self) -> int:
        """Whole minutes the available balance pays for at the current rate."""
        if self.available <= 0 or self.rate_per_minute <= 0:
            return 0
        return self.available // self.rate_per_minute


def account_summary(session: Session, company_id: int, now: datetime | None = None) -> AccountSummary:
    account = session.get(PrepaidBalance, company_id, populate_existing=True)
    if account is None:
        raise LookupError(company_id)
    rate = rate_at(session, company_id)
    return AccountSummary(
        company_id=company_id,
        company_name=account.company.name,
        balance=account.balance,
        reserved=account.reserved,
        available=account.available,
        low_balance_threshold=account.low_balance_threshold,
        is_low=account.is_low,
        auto_topup_enabled=account.auto_topup_enabled,
        auto_topup_threshold=account.auto_topup_threshold,
        auto_topup_amount=account.auto_topup_amount,
        auto_topup_payment_method_id=account.auto_topup_payment_method_id,
        auto_topup_daily_limit=account.auto_topup_daily_limit,
        auto_topup_monthly_cap=account.auto_topup_monthly_cap,
        rate_per_minute=rate.rate_per_minute,
        billing_increment_seconds=rate.billing_increment_seconds,
        live_calls=live_calls(session, company_id),
        runway=runway(session, company_id, available=account.available, now=now or utcnow()),
    )


def find_company(session: Session, key: str) -> Company | None:
    """A company by id, by exact name, or by the email of one of its users."""
    key = key.strip()
    if key.isdigit():
        company = session.get(Company, int(key))
        if company is not None:
            return company
    company = session.scalar(select(Company).where(Company.name == key))
    if company is not None:
        return company
    return session.scalar(
        select(Company).join(User, User.company_id == Company.id).where(func.lower(User.email) == key.lower())
    )
