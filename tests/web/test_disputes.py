"""Disputes end to end: paid in the sandbox's hosted checkout, disputed by the sandbox, reported by signed
webhooks; the balance is debited once, whatever the order and however often the events arrive."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from app.extensions import db
from core.calls.api_keys import create_api_key
from core.ledger.postings import Reference, post_entry
from core.money import eur
from core.schema import BalanceTransaction, Dispute, EntryType, PrepaidBalance, SentEmail, Topup
from tests.conftest import STAFF_PASSWORD
from tests.helpers import log_in
from tests.stripe_helpers import top_up

CARD_DISPUTED = "card:4000000000000259"
IBAN_RETURNED = "sepa:DE35370400440532013002"


@pytest.fixture
def customer(app, client, make_company):
    company_id, email = make_company(name="Streitfall GmbH")
    log_in(client, email)
    return company_id


def balance(app, company_id):
    with app.app_context():
        return db.session.get(PrepaidBalance, company_id).balance


def ledger(app, company_id):
    with app.app_context():
        return [(e.type, e.amount) for e in db.session.scalars(
            select(BalanceTransaction).where(BalanceTransaction.company_id == company_id).order_by(BalanceTransaction.id))]


def only(app, model):
    with app.app_context():
        [row] = db.session.scalars(select(model)).all()
        db.session.expunge_all()
        return row


def event_types(held):
    return [json.loads(payload)["type"] for payload, _ in held]


def test_the_dispute_test_card_is_credited_then_debited_once_and_the_customer_is_told(app, client, customer, sandbox):
    _, paid = top_up(client, "100", CARD_DISPUTED)
    assert paid.status_code == 303
    assert balance(app, customer) == 0
    assert ledger(app, customer) == [("topup", eur("100")), ("dispute", -eur("100"))]
    dispute = only(app, Dispute)
    assert (dispute.status, dispute.reason, dispute.disputed_cents, dispute.amount) == (
        "needs_response", "fraudulent", 10000, eur("100"))
    [email] = [e for e in only_emails(app) if e.kind == "payment_disputed"]
    assert (email.status, email.context["debited"], email.language) == ("sent", eur("100"), "de")
    dashboard = client.get("/business/billing").text
    assert 'data-testid="dispute-notice"' in dashboard and "Antwort nötig" in dashboard


def test_duplicate_and_reordered_dispute_events_debit_once(app, client, customer, sandbox, webhooks):
    webhooks.hold = True
    top_up(client, "100", CARD_DISPUTED)
    held = list(webhooks.held)
    assert {"charge.dispute.created", "charge.dispute.funds_withdrawn"} <= set(event_types(held))
    disputes = [item for item in held if json.loads(item[0])["type"].startswith("charge.dispute.")]
    for payload, signature in disputes:  # the dispute first, before the payment is even known: nothing
        assert webhooks.send(payload, signature) == 200
    for payload, signature in reversed(held):  # then everything, newest first, twice
        assert webhooks.send(payload, signature) == 200
    webhooks.hold = False
    for event in sandbox.events:  # and every event once more, in order
        sandbox.redeliver(event["id"])
    assert balance(app, customer) == 0
    assert sorted(ledger(app, customer)) == [("dispute", -eur("100")), ("topup", eur("100"))]
    assert len([e for e in only_emails(app) if e.kind == "payment_disputed"]) == 1


def only_emails(app):
    with app.app_context():
        rows = db.session.scalars(select(SentEmail)).all()
        db.session.expunge_all()
        return rows


def test_a_dispute_won_gives_the_amount_back_once(app, client, customer, sandbox, webhooks):
    top_up(client, "100", CARD_DISPUTED)
    dispute_id = only(app, Dispute).stripe_dispute_id
    webhooks.hold = True
    sandbox.submit_dispute_evidence(dispute_id, "winning_evidence")
    assert event_types(webhooks.held) == ["charge.dispute.updated", "charge.dispute.closed",
                                          "charge.dispute.funds_reinstated"]
    for payload, signature in webhooks.held + webhooks.held:
        assert webhooks.send(payload, signature) == 200
    assert balance(app, customer) == eur("100")
    assert ledger(app, customer) == [("topup", eur("100")), ("dispute", -eur("100")), ("dispute_won", eur("100"))]
    dispute = only(app, Dispute)
    assert dispute.status == "won" and dispute.closed_at is not None and dispute.given_back_at is not None
    assert 'data-testid="dispute-notice"' not in client.get("/business/billing").text  # no longer flagged


def test_a_dispute_lost_keeps_the_debit_and_a_late_older_report_does_not_reopen_it(app, client, customer, sandbox,
                                                                                     webhooks):
    webhooks.hold = True
    top_up(client, "100", CARD_DISPUTED)
    created = [item for item in webhooks.held if json.loads(item[0])["type"] == "charge.dispute.created"]
    for payload, signature in webhooks.held:
        webhooks.send(payload, signature)
    webhooks.held.clear()
    sandbox.submit_dispute_evidence(only(app, Dispute).stripe_dispute_id, "losing_evidence")
    for payload, signature in webhooks.held:
        assert webhooks.send(payload, signature) == 200
    import stripe
    text = json.loads(created[0][0])
    text["id"] += "_late_copy"  # the same report again under a new event id, after the close
    late = json.dumps(text)
    assert webhooks.send(late, stripe.WebhookSignature.generate_signature_header(late, sandbox.webhook_secret)) == 200
    assert balance(app, customer) == 0 and only(app, Dispute).status == "lost"
    assert ledger(app, customer) == [("topup", eur("100")), ("dispute", -eur("100"))]


def test_a_dispute_takes_back_the_bonus_share_and_never_more_than_was_left_after_a_refund(app, client, customer,
                                                                                           sandbox):
    from core.payments.bonuses import create_rule
    with app.app_context():
        create_rule(db.session, "Bonus 10 % ab 500 €", eur("500"), percent_basis_points=1000)
        db.session.commit()
    top_up(client, "500", CARD_DISPUTED)  # the dispute arrives at once, for all 500 €
    assert balance(app, customer) == 0  # 500 € and the 50 € bonus taken back
    assert sorted(ledger(app, customer)) == sorted([("topup", eur("500")), ("bonus", eur("50")),
                                                   ("dispute", -eur("500")), ("bonus_reversal", -eur("50"))])


def test_a_negative_balance_after_a_dispute_refuses_new_calls(app, client, customer, sandbox):
    top_up(client, "100", CARD_DISPUTED)
    with app.app_context():
        post_entry(db.session, customer, EntryType.ADJUSTMENT, -eur("30"), reference=Reference("adjustment", "spent"),
                   allow_negative=True)
        _, key = create_api_key(db.session, customer, "Platform")
        db.session.commit()
    assert balance(app, customer) == -eur("30")
    started = client.post("/api/v1/calls/c-after-dispute/start", headers={"Authorization": f"Bearer {key}"},
                          json={"started_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")})
    assert started.status_code == 402, started.text


def test_a_settled_sepa_payment_returned_by_the_bank_is_debited_once_and_lost(app, client, customer, sandbox):
    top_up(client, "100", IBAN_RETURNED)
    assert balance(app, customer) == 0
    sandbox.settle_pending()  # the bank settles it, then returns it
    assert balance(app, customer) == 0
    assert ledger(app, customer) == [("topup", eur("100")), ("dispute", -eur("100"))]
    dispute = only(app, Dispute)
    assert dispute.status == "lost" and dispute.closed_at is not None
    assert 'data-testid="dispute-notice"' in client.get("/business/billing").text  # a lost dispute stays flagged


def test_a_sandbox_return_weeks_later_of_a_settled_sepa_payment_is_debited(app, client, customer, sandbox):
    top_up(client, "100", "sepa:DE89370400440532013000")
    sandbox.settle_pending()
    assert balance(app, customer) == eur("100")
    with app.app_context():
        intent_id = db.session.scalar(select(Topup.stripe_payment_intent_id))
    dispute = sandbox.dispute_payment(intent_id, reason="debit_not_authorized")
    assert dispute["status"] == "lost"
    assert balance(app, customer) == 0 and only(app, Dispute).reason == "debit_not_authorized"


def test_staff_see_disputes_on_the_list_and_the_company_page(app, client, customer, make_staff, sandbox):
    top_up(client, "100", CARD_DISPUTED)
    staff = app.test_client()
    staff.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    log_in(staff, make_staff(), STAFF_PASSWORD)
    listing = staff.get("/admin/disputes")
    assert listing.status_code == 200 and "Streitfall GmbH" in listing.text and "Response needed" in listing.text
    assert 'data-dispute-status="needs_response"' in staff.get("/admin/disputes?open=1").text
    page = staff.get(f"/admin/companies/{customer}").text
    assert 'data-testid="dispute-flag"' in page and only(app, Dispute).stripe_dispute_id in page
    german = app.test_client()
    log_in(german, "staff-user@example.com", STAFF_PASSWORD)
    assert "Anfechtungen" in german.get("/admin/disputes").text
