"""POST /api/stripe/webhook: signed Stripe events (CSRF-exempt; the signature is the check).

The endpoint commits each named step of :mod:`core.payments.webhooks` as its own unit of work: the
event is stored (step 1) and committed before it is acted on; then its attempt is counted (step 2)
and its handler run (step 3), each committed — or, when the handler fails, its work rolled back and
the event committed as failed (see :func:`app.events.process_stored_event`)."""

from __future__ import annotations

from flask import jsonify, request

from app.extensions import db
from core.payments.gateway import InvalidWebhook
from app.web import stripe_gateway
from app.events import process_stored_event
from core.payments.webhooks import DONE, store_event
from api import bp


MAX_EVENT_BYTES = 512 * 1024


@bp.post("/stripe/webhook")
def stripe_webhook():
    payload = request.get_data(cache=False)
    if len(payload) > MAX_EVENT_BYTES:
        return jsonify(error={"code": "payload_too_large", "message": "Event body too large."}), 413
    try:
        event = store_event(db.session, stripe_gateway(), payload, request.headers.get("Stripe-Signature"))
    except InvalidWebhook:
        return jsonify(error={"code": "invalid_signature", "message": "Signature missing, invalid or too old."}), 400
    db.session.commit()  # step 1: stored before it is acted on
    if event.status not in DONE:
        event = process_stored_event(db.session, stripe_gateway(), event.id)
    return jsonify(received=True, event=event.stripe_event_id, status=event.status)
