"""Stripe event intake: verify, store (unique event id), then act idempotently.

Stripe retries, duplicates and reorders events. The stored row makes a second delivery a no-op,
and every handler is idempotent, so a replay of a processed event changes nothing either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.schema import Topup, WebhookEvent, WebhookStatus
from core.payments.gateway import PaymentError, StripeGateway, checkout_session_from, payment_intent_from
from core.payments.topups import (
    apply_async_payment_failed, apply_checkout_session, apply_payment_intent, record_stripe_refund,
)

log = logging.getLogger(__name__)


def receive_event(session: Session, gateway: StripeGateway, payload: bytes, signature: str | None) -> WebhookEvent:
    """Verify and store the event, then process it. Raises InvalidWebhook before storing anything."""
    event = gateway.verify_event(payload, signature)
    stored = _store(session, event)
    if stored.status in (WebhookStatus.PROCESSED.value, WebhookStatus.IGNORED.value):
        return stored
    return process_event(session, gateway, stored.id)


def _store(session: Session, event: dict) -> WebhookEvent:
    existing = session.scalar(select(WebhookEvent).where(WebhookEvent.stripe_event_id == event["id"]))
    if existing is not None:
        return existing
    row = WebhookEvent(stripe_event_id=event["id"], type=str(event.get("type", ""))[:100], payload=event,
                       status=WebhookStatus.RECEIVED.value, received_at=utcnow())
    session.add(row)
    try:
        session.commit()
    except IntegrityError:  # a concurrent delivery of the same event stored it first
        session.rollback()
        return session.scalar(select(WebhookEvent).where(WebhookEvent.stripe_event_id == event["id"]))
    return row


def process_event(session: Session, gateway: StripeGateway, event_row_id: int) -> WebhookEvent:
    """Run the handler for a stored event and record the outcome; safe to call again (replay)."""
    row = session.get(WebhookEvent, event_row_id, populate_existing=True)
    handler = HANDLERS.get(row.type)
    if handler is None:
        return _finish(session, row, WebhookStatus.IGNORED)
    session.execute(update(WebhookEvent).where(WebhookEvent.id == row.id).values(attempts=WebhookEvent.attempts + 1))
    session.commit()
    obj = (row.payload.get("data") or {}).get("object") or {}
    try:
        company_id = _run(session, handler, obj, gateway)
    except Exception as error:  # recorded for staff and for replay; never a 500 to Stripe
        session.rollback()
        log.exception("webhook %s (%s) failed", row.stripe_event_id, row.type)
        return _finish(session, row, WebhookStatus.FAILED, error=f"{type(error).__name__}: {error}"[:2000])
    return _finish(session, row, WebhookStatus.PROCESSED, company_id=company_id)


def _run(session: Session, handler: Callable, obj: dict, gateway: StripeGateway) -> int | None:
    """Run a handler; a unique-key race with a concurrent delivery means the work is done: run again to see it."""
    try:
        return handler(session, obj, gateway)
    except IntegrityError:
        session.rollback()
        return handler(session, obj, gateway)


def _finish(session: Session, row: WebhookEvent, status: WebhookStatus, *, error: str | None = None,
            company_id: int | None = None) -> WebhookEvent:
    values = {"status": status.value, "error": error, "processed_at": utcnow()}
    if company_id is not None:
        values["company_id"] = company_id
    session.execute(update(WebhookEvent).where(WebhookEvent.id == row.id).values(**values))
    session.commit()
    return session.get(WebhookEvent, row.id, populate_existing=True)


def replay(session: Session, gateway: StripeGateway, stripe_event_id: str) -> WebhookEvent | None:
    row = session.scalar(select(WebhookEvent).where(WebhookEvent.stripe_event_id == stripe_event_id))
    return None if row is None else process_event(session, gateway, row.id)


def replay_failed(session: Session, gateway: StripeGateway) -> list[WebhookEvent]:
    ids = session.scalars(
        select(WebhookEvent.id).where(WebhookEvent.status == WebhookStatus.FAILED.value).order_by(WebhookEvent.id)
    ).all()
    return [process_event(session, gateway, row_id) for row_id in ids]


# -- handlers: take the event's object, return the company it concerned ---------------------------------

def _company_of(topup: Topup | None) -> int | None:
    return topup.company_id if topup is not None else None


def _checkout_completed(session: Session, obj: dict, _gateway: StripeGateway) -> int | None:
    checkout = checkout_session_from(obj)
    if checkout.mode == "setup":
        return _company_from_metadata(checkout.metadata)
    return _company_of(apply_checkout_session(session, checkout))


def _checkout_async_failed(session: Session, obj: dict, gateway: StripeGateway) -> int | None:
    checkout = checkout_session_from(obj)
    intent = None
    if checkout.payment_intent_id:
        try:
            intent = gateway.retrieve_payment_intent(checkout.payment_intent_id)
        except PaymentError:
            intent = None
    return _company_of(apply_async_payment_failed(session, checkout, intent))


def _payment_intent_changed(session: Session, obj: dict, _gateway: StripeGateway) -> int | None:
    return _company_of(apply_payment_intent(session, payment_intent_from(obj)))


def _charge_refunded(session: Session, obj: dict, gateway: StripeGateway) -> int | None:
    intent_id = obj.get("payment_intent")
    intent_id = intent_id.get("id") if isinstance(intent_id, dict) else intent_id
    if not intent_id:
        return None
    refunds = (obj.get("refunds") or {}).get("data")
    if refunds is None:
        refunds = [{"id": r.id, "amount": r.amount, "status": r.status} for r in gateway.list_refunds(intent_id)]
    for refund in refunds:
        if refund.get("status") in ("succeeded", "pending"):
            record_stripe_refund(session, intent_id, refund["id"], int(refund["amount"]))
    topup = session.scalar(select(Topup).where(Topup.stripe_payment_intent_id == intent_id))
    return _company_of(topup)


def _company_from_metadata(metadata: dict) -> int | None:
    raw = str(metadata.get("company_id", ""))
    return int(raw) if raw.isdigit() else None


HANDLERS: dict[str, Callable[[Session, dict, StripeGateway], int | None]] = {
    "checkout.session.completed": _checkout_completed,
    "checkout.session.async_payment_succeeded": _checkout_completed,
    "checkout.session.expired": _checkout_completed,
    "checkout.session.async_payment_failed": _checkout_async_failed,
    "payment_intent.succeeded": _payment_intent_changed,
    "payment_intent.processing": _payment_intent_changed,
    "payment_intent.payment_failed": _payment_intent_changed,
    "charge.refunded": _charge_refunded,
}
