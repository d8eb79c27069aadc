"""Refunds that Stripe reports as failed or canceled later give back exactly once what was debited for
them (credit and bonus share), and their credit note is cancelled by a document of its own."""

from __future__ import annotations

import json

import pytest
import stripe
from sqlalchemy import select

from app.extensions import db
from app.jobs import issue_missing_documents
from core.backoffice import money_actions as staff_actions
from core.accounts.audit import Actor
from core.money import eur
from core.payments.bonuses import create_rule
from core.schema import BalanceTransaction, DocumentKind, Invoice, PrepaidBalance, Topup, TopupRefund
from tests.helpers import log_in
from tests.stripe_helpers import top_up

CARD_REFUND_FAILS = "card:4000000000005126"


@pytest.fixture
def customer(app, client, make_company):
    company_id, email = make_company(name="Erstattung GmbH")
    with app.app_context():
        create_rule(db.session, "Bonus 10 % ab 500 €", eur("500"), percent_basis_points=1000)
        db.session.commit()
    log_in(client, email)
    return company_id


def balance(app, company_id):
    with app.app_context():
        return db.session.get(PrepaidBalance, company_id).balance


def ledger_types(app, company_id):
    with app.app_context():
        return sorted(db.session.scalars(select(BalanceTransaction.type)
                                         .where(BalanceTransaction.company_id == company_id)))


def intent_of(app, company_id):
    with app.app_context():
        return db.session.scalar(select(Topup.stripe_payment_intent_id).where(Topup.company_id == company_id))


def refunds(app):
    with app.app_context():
        rows = db.session.scalars(select(TopupRefund).order_by(TopupRefund.id)).all()
        db.session.expunge_all()
        return rows


def documents(app, kind):
    with app.app_context():
        rows = db.session.scalars(select(Invoice).where(Invoice.kind == kind.value).order_by(Invoice.id)).all()
        db.session.expunge_all()
        return rows


def signed(sandbox, event: dict) -> tuple[str, str]:
    text = json.dumps(event)
    return text, stripe.WebhookSignature.generate_signature_header(text, sandbox.webhook_secret)


def test_a_refund_that_fails_later_gives_back_credit_and_bonus_once_and_cancels_its_credit_note(
        app, client, customer, sandbox, webhooks):
    top_up(client, "500", CARD_REFUND_FAILS)  # 500 € and a 50 € bonus
    webhooks.hold = True
    sandbox.refund_from_dashboard(intent_of(app, customer), amount=10000)  # 100 €, which fails later
    kinds = [json.loads(payload)["type"] for payload, _ in webhooks.held]
    assert kinds[:2] == ["charge.refunded", "refund.created"] and "charge.refund.updated" in kinds
    for payload, signature in webhooks.held + webhooks.held:  # in order, then all of it again
        assert webhooks.send(payload, signature) == 200
    assert balance(app, customer) == eur("550")
    assert ledger_types(app, customer) == ["bonus", "bonus", "bonus_reversal", "refund_failed", "topup",
                                           "topup_refund"]
    [refund] = refunds(app)
    assert (refund.status, refund.amount, refund.bonus_reversed) == ("failed", eur("100"), eur("10"))
    assert refund.given_back_at is not None
    [note] = documents(app, DocumentKind.CREDIT_NOTE)
    [cancellation] = documents(app, DocumentKind.CREDIT_NOTE_CANCELLATION)
    assert cancellation.cancels_invoice_id == note.id and cancellation.number.startswith("ST-")
    assert (cancellation.gross_cents, cancellation.vat_cents) == (note.gross_cents, note.vat_cents)
    assert "Stornierung der Gutschrift" in client.get("/business/billing/invoices").text
    with app.app_context():
        assert issue_missing_documents(send_receipts=False) == 0  # nothing lost, nothing issued twice
    with app.app_context():
        assert db.session.get(Topup, refund.topup_id).refunded_amount == 0


def test_the_failed_refunds_money_can_be_refunded_again(app, client, customer, sandbox):
    top_up(client, "500", CARD_REFUND_FAILS)
    sandbox.refund_from_dashboard(intent_of(app, customer), amount=50000)  # all of it: fails
    assert balance(app, customer) == eur("550")
    with app.app_context():  # the whole payment is refundable again: the failed refund holds nothing
        topup_id = db.session.scalar(select(Topup.id))
        assert staff_actions.preview_topup_refund(db.session, topup_id, None).refunded_cents == 50000


@pytest.mark.parametrize("late_status", ["failed", "canceled"])
def test_a_pending_refund_is_debited_at_once_and_given_back_when_it_fails_whatever_the_order(
        app, client, customer, sandbox, webhooks, late_status):
    top_up(client, "500")
    intent_id = intent_of(app, customer)
    refund = {"id": "re_pending", "object": "refund", "amount": 20000, "payment_intent": intent_id,
              "charge": None, "status": "pending"}
    charge = {"id": "ch_x", "object": "charge", "payment_intent": intent_id, "refunds": {"data": [refund]}}
    pending = signed(sandbox, {"id": "evt_refunded", "object": "event", "type": "charge.refunded",
                               "data": {"object": charge}})
    ended = signed(sandbox, {"id": "evt_refund_ended", "object": "event", "type": "charge.refund.updated",
                             "data": {"object": {**refund, "status": late_status}}})
    assert webhooks.send(*pending) == 200
    assert balance(app, customer) == eur("550") - eur("220")  # pending: debited at once, with the bonus share
    assert webhooks.send(*ended) == 200
    assert webhooks.send(*ended) == 200
    assert balance(app, customer) == eur("550")
    late_copy = signed(sandbox, {"id": "evt_refunded_late", "object": "event", "type": "charge.refunded",
                                 "data": {"object": charge}})  # the pending report again, after the failure
    assert webhooks.send(*late_copy) == 200
    assert balance(app, customer) == eur("550") and refunds(app)[0].status == late_status


def test_a_refund_first_reported_failed_debits_nothing_ever(app, client, customer, sandbox, webhooks):
    top_up(client, "500")
    intent_id = intent_of(app, customer)
    refund = {"id": "re_failed_first", "object": "refund", "amount": 20000, "payment_intent": intent_id,
              "charge": None, "status": "failed"}
    assert webhooks.send(*signed(sandbox, {"id": "evt_failed_first", "object": "event", "type": "refund.failed",
                                           "data": {"object": refund}})) == 200
    assert webhooks.send(*signed(sandbox, {"id": "evt_created_late", "object": "event", "type": "refund.updated",
                                           "data": {"object": {**refund, "status": "succeeded"}}})) == 200
    assert balance(app, customer) == eur("550") and ledger_types(app, customer) == ["bonus", "topup"]
    assert documents(app, DocumentKind.CREDIT_NOTE) == []


def test_a_staff_refund_that_fails_later_goes_the_same_way(app, client, customer, sandbox):
    top_up(client, "500", CARD_REFUND_FAILS)
    with app.app_context():
        topup_id = db.session.scalar(select(Topup.id))
        plan = staff_actions.check_topup_refund(db.session, topup_id, 10000, "asked", "staff-key-1", False, True,
                                                eur("1000"))
        db.session.rollback()
        staff_actions.refund_topup(db.session, app.extensions["stripe_gateway"], Actor(None, "a@staff.example.com"),
                                   plan)
        db.session.commit()
    assert balance(app, customer) == eur("550")
    [refund] = refunds(app)
    assert refund.status == "failed" and refund.given_back_at is not None
    assert ledger_types(app, customer).count("refund_failed") == 1


def test_a_refund_whose_event_overtakes_its_payments_events_is_not_lost(app, client, customer, sandbox, webhooks):
    """Stripe does not keep order: the charge.refunded of a refund made right after paying may come
    before checkout.session.completed. The payment is credited first, on Stripe's evidence, then the
    refund debited; the late payment events change nothing."""
    webhooks.hold = True
    top_up(client, "500")
    with app.app_context():
        checkout_id = db.session.scalar(select(Topup.stripe_checkout_session_id).where(Topup.company_id == customer))
    with sandbox.transaction(tick=False):
        intent_id = sandbox.get(checkout_id, "checkout.session")["payment_intent"]
    sandbox.refund_from_dashboard(intent_id, 10000)  # 100 € of the 500 €
    held = list(webhooks.held)
    webhooks.reset()
    refunded = [(p, s) for p, s in held if json.loads(p)["type"] == "charge.refunded"]
    assert refunded and balance(app, customer) == 0
    for payload, signature in refunded + held:  # the refund first, then everything, the refund twice
        assert webhooks.send(payload, signature) == 200
    assert balance(app, customer) == eur("440")  # 500 + 50 bonus − 100 − 10 bonus share
    assert ledger_types(app, customer) == ["bonus", "bonus_reversal", "topup", "topup_refund"]
