"""Read side of a company's money: what the dashboard, the CLI and support look at."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from core.calls.live import LIVE_CALLS
from core.calls.rating import RATE_STARTED_AT_MOMENT, terms_or_first
from core.clock import utcnow
from core.schema import BalanceFigures, Company, PrepaidBalance, User
from core.calls.usage import RUNWAY_COLUMNS, Runway, runway_of, runway_parameters
from core.parsing import id_or_none


@dataclass(frozen=True)
class AccountSummary(BalanceFigures):
    company_id: int
    company_name: str
    balance: int
    reserved: int
    low_balance_threshold: int
    auto_topup_enabled: bool
    auto_topup_threshold: int | None
    auto_topup_amount: int | None
    auto_topup_payment_method_id: str | None
    auto_topup_daily_limit: int
    auto_topup_monthly_cap: int | None
    rate_per_minute: int
    billing_increment_seconds: int
    live_calls: int  # calls holding funds right now
    runway: Runway | None  # how long the available balance lasts at the recent spend

    @property
    def minutes_left(self) -> int:
        """Whole minutes the available balance pays for at the current rate."""
        if self.available <= 0 or self.rate_per_minute <= 0:
            return 0
        return self.available // self.rate_per_minute


_BALANCE_COLUMNS = ("balance", "reserved", "low_balance_threshold", "auto_topup_enabled", "auto_topup_threshold",
                    "auto_topup_amount", "auto_topup_payment_method_id", "auto_topup_daily_limit",
                    "auto_topup_monthly_cap")
# Everything the summary shows in one round trip: the balance row, the company's name, the rate in
# force, the live calls and the runway's spend.
_SUMMARY = (select(*(PrepaidBalance.__table__.c[name] for name in _BALANCE_COLUMNS), Company.name,
                   *RATE_STARTED_AT_MOMENT, LIVE_CALLS, *RUNWAY_COLUMNS)
            .join_from(PrepaidBalance, Company, Company.id == PrepaidBalance.company_id)
            .where(PrepaidBalance.company_id == bindparam("company_id")))


def account_summary(session: Session, company_id: int, now: datetime | None = None) -> AccountSummary:
    now = now or utcnow()
    row = session.execute(_SUMMARY, {"company_id": company_id, "rate_company_id": company_id, "moment": now,
                                     **runway_parameters(now)}).one_or_none()
    if row is None:
        raise LookupError(company_id)
    rate = terms_or_first(session, company_id, row.rate_per_minute, row.billing_increment_seconds)
    summary = AccountSummary(
        company_id=company_id,
        company_name=row.name,
        **{name: getattr(row, name) for name in _BALANCE_COLUMNS},
        rate_per_minute=rate.rate_per_minute,
        billing_increment_seconds=rate.billing_increment_seconds,
        live_calls=row.live_calls,
        runway=None,
    )
    return replace(summary, runway=runway_of(row, available=summary.available, now=now))


def find_company(session: Session, key: str) -> Company | None:
    """A company by id, by exact name, or by the email of one of its users."""
    key = key.strip()
    if (company_id := id_or_none(key)) is not None:
        company = session.get(Company, company_id)
        if company is not None:
            return company
    company = session.scalar(select(Company).where(Company.name == key))
    if company is not None:
        return company
    return session.scalar(
        select(Company).join(User, User.company_id == Company.id).where(func.lower(User.email) == key.lower())
    )
