"""Low-balance warnings: one per company per interval while its balance stays below the threshold."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from core.schema import PrepaidBalance


@dataclass(frozen=True)
class LowBalance:
    company_id: int
    balance: int
    threshold: int


def claim_low_balance_warnings(session: Session, now: datetime, interval: timedelta,
                               company_id: int | None = None) -> list[LowBalance]:
    """Companies below their threshold that were not warned within ``interval``; marks them warned.

    The guarded UPDATE claims each company once (a concurrent run waits on the row until this one
    commits, then finds it warned), so overlapping runs cannot warn twice. The caller commits the
    claims together with the warnings it records for them.
    """
    due = (PrepaidBalance.balance < PrepaidBalance.low_balance_threshold) & or_(
        PrepaidBalance.last_warning_sent_at.is_(None), PrepaidBalance.last_warning_sent_at <= now - interval
    )
    candidates = select(PrepaidBalance.company_id).where(due)
    if company_id is not None:
        candidates = candidates.where(PrepaidBalance.company_id == company_id)
    claimed = []
    for candidate in session.scalars(candidates).all():
        row = session.execute(
            update(PrepaidBalance).where(PrepaidBalance.company_id == candidate, due)
            .values(last_warning_sent_at=now)
            .returning(PrepaidBalance.balance, PrepaidBalance.low_balance_threshold)
        ).one_or_none()
        if row is not None:
            claimed.append(LowBalance(candidate, row.balance, row.low_balance_threshold))
    return claimed
