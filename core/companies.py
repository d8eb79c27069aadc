"""Company look-ups for support staff."""

from __future__ import annotations

from sqlalchemy import String, cast, func, or_, select
from sqlalchemy.orm import Session

from core.models import Company, PrepaidBalance, User


def search_companies(session: Session, text: str = "", limit: int = 100) -> list[tuple[Company, PrepaidBalance]]:
    """Companies whose id, name or a user's email matches ``text``, by name."""
    query = select(Company, PrepaidBalance).join(PrepaidBalance, PrepaidBalance.company_id == Company.id)
    text = text.strip()
    if text:
        pattern = f"%{text.lower()}%"
        user_match = select(User.company_id).where(func.lower(User.email).like(pattern))
        query = query.where(
            or_(func.lower(Company.name).like(pattern), Company.id.in_(user_match), cast(Company.id, String) == text)
        )
    return list(session.execute(query.order_by(Company.name).limit(limit)).tuples())
