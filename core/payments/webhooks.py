"""Stripe event intake: verify, store (unique event id), then act idempotently.

Stripe retries, duplicates and reorders events. The stored row makes a second delivery a no-op,
and every handler is idempotent, so a replay of a processed event changes nothing either.

Nothing here commits. The event must be stored before it is acted on, and a failing handler must
leave its event recorded as failed, so intake comes in named steps, each its own unit of work that
the entry point (the webhook endpoint, a staff replay, the CLI) commits before the next:

1. :func:`store_event` — verify the signature and store the event (once per Stripe event id); a
   signed body that cannot be stored as it is (see :class:`MalformedEvent`) is stored as failed, its
   text kept for staff;
2. :func:`start_processing` — count the attempt, or record the event as ignored (no handler) or as
   failed (malformed: :func:`event_problem`);
3. :func:`handle_event` — run the handler and record the event as processed; if it raises, the entry
   point rolls back and commits :func:`record_failure` instead (the event stays for staff and replay).

An event left "received" (the process died between the steps) is picked up again after
:data:`STUCK_AFTER` by :func:`replayable_event_ids`: the replay of failed events and the sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.schema import Topup, WebhookEvent, WebhookStatus, insert_or_ignore
from core.payments.disputes import apply_dispute
from core.payments.gateway import (
    MalformedEvent, PaymentError, StripeGateway, checkout_session_from, dispute_from, event_problem,
    payment_intent_from, refund_from,
)
from core.payments.refunds import apply_refund_report
from core.payments.topups import (
    apply_async_payment_failed, apply_checkout_session, apply_payment_intent,
)
from core.parsing import id_or_none

log = logging.getLogger(__name__)

DONE = (WebhookStatus.PROCESSED.value, WebhookStatus.IGNORED.value)
STUCK_AFTER = timedelta(minutes=10)  # longer than any delivery takes: a "received" event older than this was dropped
MALFORMED = "malformed_event"  # the stored payload's ``object`` when the body could not be stored as it is


def store_event(session: Session, gateway: StripeGateway, payload: bytes, signature: str | None) -> WebhookEvent:
    """Step 1: verify and store the event; a stored one is returned as it is (its status tells whether
    it still needs processing, see :data:`DONE`). Raises InvalidWebhook before storing anything."""
    try:
        event = gateway.verify_event(payload, signature)
    except MalformedEvent as malformed:
        return _store(session, malformed.event_id, malformed.event_type, _malformed_payload(malformed, payload),
                      WebhookStatus.FAILED, error=_error_text(malformed))
    return _store(session, event["id"], event.get("type") or "", event, WebhookStatus.RECEIVED)


def _store(session: Session, event_id: str, kind: str, payload: dict, status: WebhookStatus,
           error: str | None = None) -> WebhookEvent:
    # The unique event id decides between concurrent deliveries: the second INSERT does nothing.
    session.execute(insert_or_ignore(session, WebhookEvent).values(
        stripe_event_id=event_id, type=kind, payload=payload, status=status.value, error=error, attempts=0,
        received_at=utcnow()))
    return session.scalars(select(WebhookEvent).where(WebhookEvent.stripe_event_id == event_id)
                           .execution_options(populate_existing=True)).one()


def _malformed_payload(malformed: MalformedEvent, payload: bytes) -> dict:
    """What is kept of a body that cannot be stored as it is: the reason and its text, without NULs."""
    text = payload.decode("utf-8").replace("\x00", "\ufffd")
    return {"object": MALFORMED, "reason": malformed.reason, "body": text}


def _error_text(error: BaseException) -> str:
    """An error for the ``error`` column: PostgreSQL keeps no NUL in text."""
    return f"{type(error).__name__}: {error}".replace("\x00", "\ufffd")[:2000]


def start_processing(session: Session, event_row_id: int) -> bool:
    """Step 2: whether the stored event is to be handled; if so its attempt is counted. If not, it is
    recorded as failed (malformed: it stays failed however often it is replayed) or as ignored (no
    handler for its type)."""
    row = session.get(WebhookEvent, event_row_id, populate_existing=True)
    malformed = row.payload.get("object") == MALFORMED  # stored so at intake: its reason stays
    problem = row.payload.get("reason") if malformed else event_problem(row.type, row.payload)
    if problem:
        _finish(session, row.id, WebhookStatus.FAILED, error=f"{MalformedEvent.__name__}: {problem}")
        return False
    if row.type not in HANDLERS:
        _finish(session, row.id, WebhookStatus.IGNORED)
        return False
    session.execute(update(WebhookEvent).where(WebhookEvent.id == row.id).values(attempts=WebhookEvent.attempts + 1))
    return True


def handle_event(session: Session, gateway: StripeGateway, event_row_id: int) -> WebhookEvent:
    """Step 3: run the event's handler and record it processed (with the company it concerned); safe
    to call again (replay). Whatever the handler raises is raised: see :func:`record_failure`. An
    IntegrityError is a unique-key race with a concurrent delivery, so the work is done: the entry
    point rolls back and runs this step again, to see it."""
    row = session.get(WebhookEvent, event_row_id, populate_existing=True)
    obj = row.payload["data"]["object"]  # an object: start_processing checked it
    company_id = HANDLERS[row.type](session, obj, gateway)
    return _finish(session, row.id, WebhookStatus.PROCESSED, company_id=company_id)


def record_failure(session: Session, event_row_id: int, error: BaseException) -> WebhookEvent:
    """Instead of step 3's work, which was rolled back: the event failed, with the error for staff
    and for replay (never a 500 to Stripe)."""
    row = session.get(WebhookEvent, event_row_id, populate_existing=True)
    log.error("webhook %s (%s) failed", row.stripe_event_id, row.type, exc_info=error)
    return _finish(session, row.id, WebhookStatus.FAILED, error=_error_text(error))


def _finish(session: Session, row_id: int, status: WebhookStatus, *, error: str | None = None,
            company_id: int | None = None) -> WebhookEvent:
    values = {"status": status.value, "error": error, "processed_at": utcnow()}
    if company_id is not None:
        values["company_id"] = company_id
    session.execute(update(WebhookEvent).where(WebhookEvent.id == row_id).values(**values))
    return session.get(WebhookEvent, row_id, populate_existing=True)


def stored_event_id(session: Session, stripe_event_id: str) -> int | None:
    """The row id of a stored event, for a replay."""
    return session.scalar(select(WebhookEvent.id).where(WebhookEvent.stripe_event_id == stripe_event_id))


def replayable_event_ids(session: Session, *, failed: bool = True) -> list[int]:
    """The events to process again, oldest first: those left "received" for longer than STUCK_AFTER
    (the process died between the steps) and, with ``failed``, the failed ones."""
    stuck = (WebhookEvent.status == WebhookStatus.RECEIVED.value) & (WebhookEvent.received_at < utcnow() - STUCK_AFTER)
    condition = stuck | (WebhookEvent.status == WebhookStatus.FAILED.value) if failed else stuck
    return list(session.scalars(select(WebhookEvent.id).where(condition).order_by(WebhookEvent.id)))


# -- handlers: take the event's object, return the company it concerned ---------------------------------

def _company_of(topup: Topup | None) -> int | None:
    return topup.company_id if topup is not None else None


def _checkout_completed(session: Session, obj: dict, gateway: StripeGateway) -> int | None:
    checkout = checkout_session_from(obj)
    if checkout.mode == "setup":
        return _company_from_metadata(checkout.metadata)
    return _company_of(apply_checkout_session(session, checkout, live=not gateway.is_test_mode))


def _checkout_async_failed(session: Session, obj: dict, gateway: StripeGateway) -> int | None:
    checkout = checkout_session_from(obj)
    intent = None
    if checkout.payment_intent_id:
        try:
            intent = gateway.retrieve_payment_intent(checkout.payment_intent_id)
        except PaymentError:
            intent = None
    return _company_of(apply_async_payment_failed(session, checkout, intent))


def _payment_intent_changed(session: Session, obj: dict, gateway: StripeGateway) -> int | None:
    return _company_of(apply_payment_intent(session, payment_intent_from(obj), live=not gateway.is_test_mode))


def _charge_refunded(session: Session, obj: dict, gateway: StripeGateway) -> int | None:
    intent_id = obj.get("payment_intent")
    intent_id = intent_id.get("id") if isinstance(intent_id, dict) else intent_id
    if not intent_id:
        return None
    refunds = (obj.get("refunds") or {}).get("data")
    if refunds is None:
        refunds = [{"id": r.id, "amount": r.amount, "status": r.status} for r in gateway.list_refunds(intent_id)]
    _apply_payment_first(session, gateway, intent_id)
    for refund in refunds:
        apply_refund_report(session, intent_id, refund["id"], int(refund["amount"]), str(refund.get("status")))
    topup = session.scalar(select(Topup).where(Topup.stripe_payment_intent_id == intent_id))
    return _company_of(topup)


def _apply_payment_first(session: Session, gateway: StripeGateway, intent_id: str) -> None:
    """Stripe does not keep order: a refund or a dispute may come before its payment's own events.
    A refunded or disputed payment was paid, so its top-up is credited first, on Stripe's evidence
    (as those events would have), instead of the refund or dispute finding no top-up and being lost."""
    if session.scalar(select(Topup.id).where(Topup.stripe_payment_intent_id == intent_id)) is None:
        apply_payment_intent(session, gateway.retrieve_payment_intent(intent_id), live=not gateway.is_test_mode)


def _intent_of_charge(gateway: StripeGateway, intent_id: str | None, charge_id: str | None) -> str | None:
    """The payment intent a refund or dispute belongs to: named, or asked of Stripe by its charge."""
    if intent_id or not charge_id:
        return intent_id
    return gateway.retrieve_charge(charge_id).payment_intent_id


def _refund_changed(session: Session, obj: dict, gateway: StripeGateway) -> int | None:
    refund = refund_from(obj)
    intent_id = _intent_of_charge(gateway, refund.payment_intent_id, refund.charge_id)
    if not intent_id:
        return None
    _apply_payment_first(session, gateway, intent_id)
    apply_refund_report(session, intent_id, refund.id, refund.amount, refund.status)
    return _company_of(session.scalar(select(Topup).where(Topup.stripe_payment_intent_id == intent_id)))


def _dispute_changed(session: Session, obj: dict, gateway: StripeGateway) -> int | None:
    report = dispute_from(obj)
    intent_id = _intent_of_charge(gateway, report.payment_intent_id, report.charge_id)
    if not intent_id:
        return None
    _apply_payment_first(session, gateway, intent_id)
    dispute = apply_dispute(session, replace(report, payment_intent_id=intent_id))
    return dispute.company_id if dispute is not None else None


def _company_from_metadata(metadata: dict) -> int | None:
    return id_or_none(str(metadata.get("company_id", "")))


HANDLERS: dict[str, Callable[[Session, dict, StripeGateway], int | None]] = {
    "checkout.session.completed": _checkout_completed,
    "checkout.session.async_payment_succeeded": _checkout_completed,
    "checkout.session.expired": _checkout_completed,
    "checkout.session.async_payment_failed": _checkout_async_failed,
    "payment_intent.succeeded": _payment_intent_changed,
    "payment_intent.processing": _payment_intent_changed,
    "payment_intent.payment_failed": _payment_intent_changed,
    "charge.refunded": _charge_refunded,
    "charge.refund.updated": _refund_changed,
    "refund.updated": _refund_changed,
    "refund.failed": _refund_changed,
    "charge.dispute.created": _dispute_changed,
    "charge.dispute.updated": _dispute_changed,
    "charge.dispute.closed": _dispute_changed,
    "charge.dispute.funds_withdrawn": _dispute_changed,
    "charge.dispute.funds_reinstated": _dispute_changed,
}
