"""The entry points' side of Stripe event intake: the named steps of :mod:`core.payments.webhooks`,
each committed as its own unit of work (the webhook endpoint, the staff replays and the CLI share it)."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.payments.gateway import StripeGateway
from core.payments.webhooks import handle_event, record_failure, start_processing
from core.schema import WebhookEvent


def process_stored_event(session: Session, gateway: StripeGateway, event_row_id: int) -> WebhookEvent:
    """Steps 2 and 3 for a stored event, each committed; a failing handler's work is rolled back and
    the event committed as failed instead. Safe to call again (a replay)."""
    if not start_processing(session, event_row_id):
        session.commit()  # recorded as ignored
        return session.get(WebhookEvent, event_row_id)
    session.commit()  # step 2: the attempt counts even if the process dies in the handler
    try:
        _handle(session, gateway, event_row_id)
    except Exception as error:  # recorded for staff and for replay; never a 500 to Stripe
        session.rollback()
        record_failure(session, event_row_id, error)
        session.commit()
    return session.get(WebhookEvent, event_row_id)


def _handle(session: Session, gateway: StripeGateway, event_row_id: int) -> None:
    """Step 3, committed; a unique-key race with a concurrent delivery means the work is done by the
    other one: roll back and run the step again, to see it."""
    try:
        handle_event(session, gateway, event_row_id)
        session.commit()
    except IntegrityError:
        session.rollback()
        handle_event(session, gateway, event_row_id)
        session.commit()
