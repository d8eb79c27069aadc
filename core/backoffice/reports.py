"""Staff reports: figures computed from the ledger and the records, never from hand-kept counters.

One function per report; each takes a session and plain values (a :class:`~core.calls.usage.UsageRange`
of local days, ``now`` as naive UTC, thresholds in units) and returns rows as dataclasses with
amounts in units (1 unit = 0.0001 EUR; invoices keep their cents). No Flask here.

Definitions:
- A top-up is a ledger entry of type ``topup`` (what a top-up credited, bonus not included).
  Gross = the sum of those entries; refunds of top-ups (``topup_refund``) are shown separately.
- Usage is the net cost of calls in the ledger: −(charges + call refunds).
- Days and weeks are local days in the range's zone (weeks start on Monday).
- Weekly auto top-up success rate = succeeded / (succeeded + failed + action required);
  skipped (a limit stopped it) and unfinished attempts are counted but not rated.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Date, and_, case, cast, exists, func, literal, select
from sqlalchemy.orm import Session

from core.schema import (
    AutoTopupAttempt, AutoTopupStatus, BalanceTransaction, Company, DocumentKind, EntryType, Invoice, PrepaidBalance,
    Topup,
)
from core.money import divide_half_up, eur
from core.calls.usage import UsageRange, utc_offsets

LARGE_TOPUP = eur(1000)  # a single top-up above this is suspicious
BURST_COUNT = 5  # more than this many top-ups ...
BURST_WINDOW = timedelta(hours=24)  # ... within this window is suspicious
CHURN_DAYS = 60
CHURN_BALANCE = eur(50)
RATED_AUTO_STATUSES = (AutoTopupStatus.SUCCEEDED.value, AutoTopupStatus.FAILED.value,
                       AutoTopupStatus.ACTION_REQUIRED.value)


def local_day(session: Session, column, usage_range: UsageRange):
    """SQL for the local day of a naive-UTC ``column`` (the same technique as core.calls.usage)."""
    postgresql = session.get_bind().dialect.name == "postgresql"

    def shift(offset: timedelta):
        return offset if postgresql else f"{int(offset.total_seconds()):+d} seconds"

    segments = utc_offsets(usage_range)
    if len(segments) == 1:
        offset = literal(shift(segments[0][1]))
    else:
        offset = case(*[(column < until, shift(value)) for until, value in segments[:-1]], else_=shift(segments[-1][1]))
    if postgresql:
        return cast(column + offset, Date)
    return func.date(column, offset)


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def _between(column, usage_range: UsageRange):
    return and_(column >= usage_range.start, column < usage_range.end)


# ---- daily revenue ----

@dataclass(frozen=True)
class DailyRevenue:
    day: date
    topups: int  # number of top-up ledger entries
    gross: int  # units: sum of the top-up entries
    refunded: int  # units: top-up refunds of the day (≤ 0)
    invoiced_cents: int  # gross of the invoices issued that day
    average: int | None  # units: gross / topups, half-up; None without top-ups


def daily_revenue(session: Session, usage_range: UsageRange) -> list[DailyRevenue]:
    """Every local day of the range (zero-filled), oldest first."""
    day = local_day(session, BalanceTransaction.created_at, usage_range).label("day")
    ledger = session.execute(
        select(day,
               func.count(case((BalanceTransaction.type == EntryType.TOPUP.value, 1))),
               func.coalesce(func.sum(case((BalanceTransaction.type == EntryType.TOPUP.value,
                                             BalanceTransaction.amount), else_=0)), 0),
               func.coalesce(func.sum(case((BalanceTransaction.type == EntryType.TOPUP_REFUND.value,
                                             BalanceTransaction.amount), else_=0)), 0))
        .where(BalanceTransaction.type.in_((EntryType.TOPUP.value, EntryType.TOPUP_REFUND.value)),
               _between(BalanceTransaction.created_at, usage_range))
        .group_by("day")
    ).all()
    invoice_day = local_day(session, Invoice.issued_at, usage_range).label("day")
    invoiced = dict(session.execute(
        select(invoice_day, func.coalesce(func.sum(Invoice.gross_cents), 0))
        .where(Invoice.kind == DocumentKind.INVOICE.value, _between(Invoice.issued_at, usage_range))
        .group_by("day")
    ).all())
    invoiced = {_as_date(key): int(value) for key, value in invoiced.items()}
    found = {_as_date(key): (int(count), int(gross), int(refunded)) for key, count, gross, refunded in ledger}
    rows = []
    for one_day in usage_range.days:
        count, gross, refunded = found.get(one_day, (0, 0, 0))
        rows.append(DailyRevenue(one_day, count, gross, refunded, invoiced.get(one_day, 0),
                                 divide_half_up(gross, count) if count else None))
    return rows


# ---- billing summary per company ----

@dataclass(frozen=True)
class CompanyBillingSummary:
    company_id: int
    company_name: str
    topups: int
    topup_amount: int  # units
    bonus: int  # units (bonus minus bonus reversals)
    usage: int  # units: net call cost, positive
    balance: int  # units, now
    auto_topup_enabled: bool
    auto_topups_succeeded: int
    auto_topups_failed: int  # failed or action required


def billing_summary(session: Session, usage_range: UsageRange) -> list[CompanyBillingSummary]:
    """Per company with any activity in the range (or a balance): top-ups, usage, balance, auto top-up."""
    kind = BalanceTransaction.type

    def total(*types: EntryType):
        return func.coalesce(func.sum(case((kind.in_([t.value for t in types]), BalanceTransaction.amount),
                                           else_=0)), 0)

    ledger = {
        company_id: (int(count), int(topups), int(bonus), int(usage))
        for company_id, count, topups, bonus, usage in session.execute(
            select(BalanceTransaction.company_id,
                   func.count(case((kind == EntryType.TOPUP.value, 1))),
                   total(EntryType.TOPUP),
                   total(EntryType.BONUS, EntryType.BONUS_REVERSAL),
                   total(EntryType.CHARGE, EntryType.REFUND))
            .where(_between(BalanceTransaction.created_at, usage_range))
            .group_by(BalanceTransaction.company_id))
    }
    attempts: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for company_id, status, count in session.execute(
            select(AutoTopupAttempt.company_id, AutoTopupAttempt.status, func.count())
            .where(_between(AutoTopupAttempt.created_at, usage_range),
                   AutoTopupAttempt.status.in_(RATED_AUTO_STATUSES))
            .group_by(AutoTopupAttempt.company_id, AutoTopupAttempt.status)):
        attempts[company_id][0 if status == AutoTopupStatus.SUCCEEDED.value else 1] += int(count)
    rows = []
    for company_id, name, balance, auto_enabled in session.execute(
            select(Company.id, Company.name, PrepaidBalance.balance, PrepaidBalance.auto_topup_enabled)
            .join(PrepaidBalance, PrepaidBalance.company_id == Company.id).order_by(Company.name, Company.id)):
        count, topups, bonus, usage = ledger.get(company_id, (0, 0, 0, 0))
        succeeded, failed = attempts.get(company_id, (0, 0))
        if not (company_id in ledger or balance or succeeded or failed):
            continue
        rows.append(CompanyBillingSummary(company_id, name, count, topups, bonus, -usage, int(balance),
                                          bool(auto_enabled), succeeded, failed))
    return rows


# ---- failed payment reasons ----

@dataclass(frozen=True)
class FailedPaymentReason:
    failure_code: str
    decline_code: str  # "" when the bank gave none
    kind: str  # checkout | auto
    count: int
    amount: int  # units the failed top-ups were for


def failed_payment_reasons(session: Session, usage_range: UsageRange) -> list[FailedPaymentReason]:
    """Top-ups started in the range whose payment failed (a failure code is recorded), by code; most first."""
    failure = func.coalesce(Topup.failure_code, "")
    decline = func.coalesce(Topup.decline_code, "")
    rows = session.execute(
        select(failure.label("failure"), decline.label("decline"), Topup.kind, func.count(), func.sum(Topup.amount))
        .where(Topup.failure_code.is_not(None), _between(Topup.created_at, usage_range))
        .group_by("failure", "decline", Topup.kind)
    ).all()
    result = [FailedPaymentReason(f, d, k, int(c), int(a or 0)) for f, d, k, c, a in rows]
    return sorted(result, key=lambda row: (-row.count, row.failure_code, row.decline_code, row.kind))


# ---- weekly auto top-up success rate ----

@dataclass(frozen=True)
class AutoTopupWeek:
    week_start: date  # a Monday (local)
    attempts: int  # all attempts of the week
    succeeded: int
    failed: int
    action_required: int
    skipped: int
    other: int  # pending / processing

    @property
    def rated(self) -> int:
        return self.succeeded + self.failed + self.action_required

    @property
    def success_rate(self) -> Decimal | None:
        """0..1 with four places, None when no attempt finished."""
        if not self.rated:
            return None
        return (Decimal(self.succeeded) / self.rated).quantize(Decimal("0.0001"))


def auto_topup_weekly(session: Session, usage_range: UsageRange) -> list[AutoTopupWeek]:
    """Every week touching the range (zero-filled), oldest first."""
    day = local_day(session, AutoTopupAttempt.created_at, usage_range).label("day")
    counts: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for value, status, count in session.execute(
            select(day, AutoTopupAttempt.status, func.count())
            .where(_between(AutoTopupAttempt.created_at, usage_range))
            .group_by("day", AutoTopupAttempt.status)):
        one_day = _as_date(value)
        counts[one_day - timedelta(days=one_day.weekday())][status] += int(count)
    first = usage_range.first_day - timedelta(days=usage_range.first_day.weekday())
    weeks = []
    week = first
    while week <= usage_range.last_day:
        found = counts.get(week, {})
        succeeded = found.get(AutoTopupStatus.SUCCEEDED.value, 0)
        failed = found.get(AutoTopupStatus.FAILED.value, 0)
        action = found.get(AutoTopupStatus.ACTION_REQUIRED.value, 0)
        skipped = found.get(AutoTopupStatus.SKIPPED.value, 0)
        total = sum(found.values())
        weeks.append(AutoTopupWeek(week, total, succeeded, failed, action, skipped,
                                   total - succeeded - failed - action - skipped))
        week += timedelta(days=7)
    return weeks


# ---- suspicious activity ----

@dataclass(frozen=True)
class SuspiciousActivity:
    company_id: int
    company_name: str
    reason: str  # large_topup | many_topups
    first_at: datetime  # naive UTC
    last_at: datetime
    count: int  # top-ups involved
    amount: int  # units: their sum


def suspicious_activity(session: Session, usage_range: UsageRange, *, large: int = LARGE_TOPUP,
                        burst_count: int = BURST_COUNT, window: timedelta = BURST_WINDOW) -> list[SuspiciousActivity]:
    """Top-ups over ``large`` (one row each), and bursts of more than ``burst_count`` top-ups within
    ``window`` (one row per burst: from its first top-up, every top-up inside the window). Newest first."""
    entries = session.execute(
        select(BalanceTransaction.company_id, Company.name, BalanceTransaction.created_at, BalanceTransaction.amount)
        .join(Company, Company.id == BalanceTransaction.company_id)
        .where(BalanceTransaction.type == EntryType.TOPUP.value, _between(BalanceTransaction.created_at, usage_range))
        .order_by(BalanceTransaction.company_id, BalanceTransaction.created_at, BalanceTransaction.id)
    ).all()
    rows = [SuspiciousActivity(company_id, name, "large_topup", at, at, 1, int(amount))
            for company_id, name, at, amount in entries if amount > large]
    by_company: dict[int, list] = defaultdict(list)
    for entry in entries:
        by_company[entry.company_id].append(entry)
    for company_entries in by_company.values():
        start = 0
        while start < len(company_entries):
            end = start
            while end + 1 < len(company_entries) and \
                    company_entries[end + 1].created_at < company_entries[start].created_at + window:
                end += 1
            if end - start + 1 > burst_count:
                burst = company_entries[start:end + 1]
                rows.append(SuspiciousActivity(burst[0].company_id, burst[0].name, "many_topups", burst[0].created_at,
                                               burst[-1].created_at, len(burst), sum(int(e.amount) for e in burst)))
                start = end + 1
            else:
                start += 1
    return sorted(rows, key=lambda row: (row.first_at, row.company_id, row.reason), reverse=True)


# ---- companies: never topped up, churn risk, low balance ----

@dataclass(frozen=True)
class CompanyBalanceRow:
    company_id: int
    company_name: str
    created_at: datetime
    balance: int  # units
    threshold: int  # units: the company's low-balance threshold
    auto_topup_enabled: bool
    last_topup_at: datetime | None  # naive UTC of the newest top-up entry


def _company_rows(session: Session, *conditions, having=None) -> list[CompanyBalanceRow]:
    last_topup = (select(BalanceTransaction.company_id, func.max(BalanceTransaction.created_at).label("last_at"))
                  .where(BalanceTransaction.type == EntryType.TOPUP.value)
                  .group_by(BalanceTransaction.company_id).subquery())
    query = (select(Company.id, Company.name, Company.created_at, PrepaidBalance.balance,
                    PrepaidBalance.low_balance_threshold, PrepaidBalance.auto_topup_enabled, last_topup.c.last_at)
             .join(PrepaidBalance, PrepaidBalance.company_id == Company.id)
             .outerjoin(last_topup, last_topup.c.company_id == Company.id)
             .where(*conditions, *(having(last_topup) if having else ()))
             .order_by(PrepaidBalance.balance, Company.name, Company.id))
    return [CompanyBalanceRow(cid, name, created, int(balance), int(threshold), bool(auto), last_at)
            for cid, name, created, balance, threshold, auto, last_at in session.execute(query)]


def never_topped_up(session: Session) -> list[CompanyBalanceRow]:
    """Companies without a single top-up entry in the ledger."""
    any_topup = exists().where(BalanceTransaction.company_id == Company.id,
                               BalanceTransaction.type == EntryType.TOPUP.value)
    return _company_rows(session, ~any_topup)


def churn_risk(session: Session, now: datetime, *, days: int = CHURN_DAYS,
               balance_below: int = CHURN_BALANCE) -> list[CompanyBalanceRow]:
    """Companies that topped up before but not in the last ``days`` days, with a balance under ``balance_below``.
    (Companies that never topped up have their own report.)"""
    cutoff = now - timedelta(days=days)
    return _company_rows(session, PrepaidBalance.balance < balance_below,
                         having=lambda last: (last.c.last_at.is_not(None), last.c.last_at < cutoff))


def low_balance(session: Session) -> list[CompanyBalanceRow]:
    """Companies whose balance is below their own low-balance threshold."""
    return _company_rows(session, PrepaidBalance.balance < PrepaidBalance.low_balance_threshold)
