"""Staff views of stored Stripe events: filtered listing, and the ledger entries an event produced."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.schema import BalanceTransaction, Topup, WebhookEvent
from core.parsing import id_or_none

PAGE_SIZE = 100


@dataclass(frozen=True)
class EventFilter:
    type: str = ""
    status: str = ""
    company_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None  # inclusive


def list_events(session: Session, filters: EventFilter, limit: int = PAGE_SIZE) -> list[WebhookEvent]:
    query = select(WebhookEvent).order_by(WebhookEvent.received_at.desc(), WebhookEvent.id.desc()).limit(limit)
    if filters.type:
        query = query.where(WebhookEvent.type == filters.type)
    if filters.status:
        query = query.where(WebhookEvent.status == filters.status)
    if filters.company_id is not None:
        query = query.where(WebhookEvent.company_id == filters.company_id)
    if filters.date_from:
        query = query.where(WebhookEvent.received_at >= datetime.combine(filters.date_from, time.min))
    if filters.date_to:
        query = query.where(WebhookEvent.received_at < datetime.combine(filters.date_to + timedelta(days=1), time.min))
    return list(session.scalars(query))


def event_types(session: Session) -> list[str]:
    return list(session.scalars(select(WebhookEvent.type).distinct().order_by(WebhookEvent.type)))


def event_ledger_entries(session: Session, event: WebhookEvent) -> list[BalanceTransaction]:
    """Ledger rows that belong to what the event was about: its top-up's credit and bonus, and its refunds.

    Several events concern one payment (checkout completed, payment succeeded); each links to the
    same entries, since whichever came first produced them."""
    obj = ((event.payload or {}).get("data") or {}).get("object") or {}
    refs: list[tuple[str, str]] = []
    topup = _topup_of(session, obj)
    if topup is not None:
        refs.append(("topup", str(topup.id)))
    if obj.get("object") == "charge":
        for refund in (obj.get("refunds") or {}).get("data") or []:
            refs.append(("stripe_refund", str(refund.get("id"))))
    if not refs:
        return []
    return list(session.scalars(
        select(BalanceTransaction)
        .where(or_(*[(BalanceTransaction.reference_type == t) & (BalanceTransaction.reference_id == i) for t, i in refs]))
        .order_by(BalanceTransaction.id)
    ))


def _topup_of(session: Session, obj: dict) -> Topup | None:
    kind = obj.get("object")
    if kind == "checkout.session" and obj.get("id"):
        found = session.scalar(select(Topup).where(Topup.stripe_checkout_session_id == obj["id"]))
        if found is not None:
            return found
    intent = obj.get("payment_intent") if kind in ("checkout.session", "charge") else obj.get("id")
    intent = intent.get("id") if isinstance(intent, dict) else intent
    if kind in ("checkout.session", "charge", "payment_intent") and intent:
        found = session.scalar(select(Topup).where(Topup.stripe_payment_intent_id == intent))
        if found is not None:
            return found
    topup_id = id_or_none(str((obj.get("metadata") or {}).get("topup_id", "")))
    return session.get(Topup, topup_id) if topup_id else None
