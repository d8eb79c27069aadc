"""POST /api/stripe/webhook: signed Stripe events (CSRF-exempt; the signature is the check)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from core.schema import db
from core.payments.gateway import InvalidWebhook
from app.web import stripe_gateway
from core.payments.webhooks import receive_event

bp = Blueprint("stripe_webhook", __name__, url_prefix="/api/stripe")

MAX_EVENT_BYTES = 512 * 1024


@bp.post("/webhook")
def webhook():
    payload = request.get_data(cache=False)
    if len(payload) > MAX_EVENT_BYTES:
        return jsonify(error={"code": "payload_too_large", "message": "Event body too large."}), 413
    try:
        event = receive_event(db.session, stripe_gateway(), payload, request.headers.get("Stripe-Signature"))
    except InvalidWebhook:
        return jsonify(error={"code": "invalid_signature", "message": "Signature missing, invalid or too old."}), 400
    return jsonify(received=True, event=event.stripe_event_id, status=event.status)
