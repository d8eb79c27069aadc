"""Top-ups through the sandbox and the real `stripe` library: every path credits exactly once."""

import json
import threading

import pytest
from sqlalchemy import func, select

from core.payments.bonuses import create_rule
from app.extensions import db
from core.schema import BalanceTransaction, PrepaidBalance, Topup, TopupRefund, WebhookEvent
from core.money import eur
from tests.helpers import csrf_token_from, log_in
from tests.stripe_helpers import (
    CARD_3DS, CARD_DECLINED, CARD_OK, IBAN_FAILS, IBAN_OK, authenticate, checkout_session_id, path_of, pay,
    start_topup, top_up,
)


@pytest.fixture
def customer(app, client, make_company):
    company_id, email = make_company(name="Aufladung GmbH")
    with app.app_context():
        create_rule(db.session, "Bonus 5 % ab 250 €", eur("250"), percent_basis_points=500)
        create_rule(db.session, "Bonus 10 % ab 500 €", eur("500"), percent_basis_points=1000)
        db.session.commit()
    log_in(client, email)
    return company_id


def balance(app, company_id):
    with app.app_context():
        return db.session.get(PrepaidBalance, company_id).balance


def only_topup(app, company_id) -> Topup:
    with app.app_context():
        topups = db.session.scalars(select(Topup).where(Topup.company_id == company_id)).all()
        assert len(topups) == 1
        db.session.expunge_all()
        return topups[0]


def check_status(client, topup_id, page_text, **headers):
    """What the success page's status panel does: POST for the top-up's status (htmx sends the token)."""
    return client.post(f"/business/billing/topup/{topup_id}/status",
                       headers={"X-CSRFToken": csrf_token_from(page_text), **headers})


def ledger_types(app, company_id):
    with app.app_context():
        return sorted(db.session.scalars(select(BalanceTransaction.type).where(BalanceTransaction.company_id == company_id)))


def test_a_card_top_up_credits_the_amount_and_the_bonus(app, client, customer):
    _, paid = top_up(client, "250")
    assert paid.status_code == 303 and "/business/billing/topup/success?session_id=cs_" in paid.headers["Location"]
    success = client.get(path_of(paid.headers["Location"]))
    assert 'data-status="credited"' in success.text and "12,50\xa0€" in success.text
    assert balance(app, customer) == eur("262.50")
    assert ledger_types(app, customer) == ["bonus", "topup"]
    topup = only_topup(app, customer)
    assert (topup.status, topup.bonus_amount, topup.stripe_payment_intent_id[:3]) == ("credited", eur("12.50"), "pi_")
    dashboard = client.get("/business/billing").text
    assert "262,50\xa0€" in dashboard and "Bonus 5 % ab 250 €" in dashboard


def test_a_declined_card_fails_with_a_translated_reason_and_credits_nothing(app, client, customer):
    checkout_url, answer = top_up(client, "100", CARD_DECLINED)
    assert answer.status_code == 200  # the hosted page shows the decline, as Stripe Checkout does
    topup = only_topup(app, customer)
    assert (topup.status, topup.failure_code, topup.decline_code) == ("failed", "card_declined", "insufficient_funds")
    page = client.get("/business/billing/topup").text
    assert "Die Karte ist nicht ausreichend gedeckt." in page and "Erneut versuchen" in page
    assert balance(app, customer) == 0
    # the customer tries another card in the same checkout: now it is credited
    assert pay(client, checkout_url, CARD_OK).status_code == 303
    assert only_topup(app, customer).status == "credited" and balance(app, customer) == eur("100")


def test_a_card_that_needs_authentication_is_credited_after_the_customer_confirms(app, client, customer):
    checkout_url, answer = top_up(client, "50", CARD_3DS)
    assert balance(app, customer) == 0
    assert authenticate(client, checkout_url, "complete").status_code == 303
    assert balance(app, customer) == eur("50")


def test_sepa_shows_processing_until_the_bank_settles_then_credits(app, client, customer, sandbox):
    _, paid = top_up(client, "500", IBAN_OK)
    success = client.get(path_of(paid.headers["Location"]))
    assert 'data-status="processing"' in success.text and "SEPA-Lastschrift" in success.text
    assert balance(app, customer) == 0
    sandbox.settle_pending()
    assert only_topup(app, customer).status == "credited"
    assert balance(app, customer) == eur("550")
    status = check_status(client, only_topup(app, customer).id, success.text, **{"HX-Request": "true"})
    assert status.status_code == 286 and 'data-status="credited"' in status.text  # 286 stops htmx polling


def test_a_failed_sepa_debit_marks_the_top_up_failed(app, client, customer, sandbox):
    top_up(client, "100", IBAN_FAILS)
    sandbox.settle_pending()
    topup = only_topup(app, customer)
    assert topup.status == "failed" and balance(app, customer) == 0
    assert "Das Konto ist nicht ausreichend gedeckt." in client.get("/business/billing/topup").text
    with app.app_context():  # the customer left checkout days ago: an email tells them
        from core.schema import SentEmail

        [email] = db.session.scalars(select(SentEmail)).all()
        assert (email.kind, email.status, email.subject) == ("payment_failed", "sent",
                                                             "Zahlung fehlgeschlagen – Handlung erforderlich")


def test_cancelling_closes_the_checkout_so_it_cannot_be_paid_later(app, client, customer):
    started = start_topup(client, "100")
    checkout_url = started.headers["Location"]
    topup_id = only_topup(app, customer).id
    left = client.get(f"/business/billing/topup/cancel?topup={topup_id}")  # Stripe's cancel URL: a GET
    assert left.status_code == 200 and 'data-testid="left-checkout"' in left.text
    assert only_topup(app, customer).status == "pending"  # a GET changes nothing
    back = client.post(f"/business/billing/topup/{topup_id}/cancel", data={"csrf_token": csrf_token_from(left.text)})
    assert back.status_code == 303 and back.headers["Location"].startswith("/business/billing/topup?amount=")
    assert "Die Aufladung wurde abgebrochen" in client.get(back.headers["Location"]).text
    assert only_topup(app, customer).status == "canceled"
    assert client.get(path_of(checkout_url)).status_code == 404
    assert balance(app, customer) == 0


def test_the_success_page_confirms_with_stripe_when_the_webhook_is_late(app, client, customer, webhooks):
    webhooks.hold = True
    _, paid = top_up(client, "100")
    assert only_topup(app, customer).status == "pending"
    success = client.get(path_of(paid.headers["Location"]))
    assert 'data-status="pending"' in success.text and balance(app, customer) == 0  # the GET only shows it
    topup_id = only_topup(app, customer).id
    status = check_status(client, topup_id, success.text, **{"HX-Request": "true"})  # the panel asks Stripe
    assert status.status_code == 286 and 'data-status="credited"' in status.text
    assert balance(app, customer) == eur("100")
    for payload, signature in webhooks.held:  # the late webhooks change nothing
        assert webhooks.send(payload, signature) == 200
    assert balance(app, customer) == eur("100")
    without_script = check_status(client, topup_id, success.text)  # the button without JavaScript
    assert without_script.status_code == 303 and "/business/billing/topup/success?session_id=" in \
        without_script.headers["Location"]
    assert client.get(path_of(paid.headers["Location"])).status_code == 200  # replayed success URL
    assert balance(app, customer) == eur("100")


def test_webhooks_twice_in_reverse_order_credit_once(app, client, customer, webhooks):
    webhooks.hold = True
    top_up(client, "250")
    held = list(webhooks.held)
    assert {json.loads(p)["type"] for p, _ in held} >= {"checkout.session.completed", "payment_intent.succeeded"}
    for payload, signature in reversed(held + held):
        assert webhooks.send(payload, signature) == 200
    assert balance(app, customer) == eur("262.50")
    assert ledger_types(app, customer) == ["bonus", "topup"]
    with app.app_context():
        stored = db.session.scalar(select(func.count()).select_from(WebhookEvent))
    assert stored == len(held)


def test_concurrent_duplicate_webhooks_credit_once_and_never_answer_500(app, client, customer, webhooks):
    webhooks.hold = True
    top_up(client, "500")
    held = [(p, s) for p, s in webhooks.held if json.loads(p)["type"] in
            ("checkout.session.completed", "payment_intent.succeeded")]
    statuses, barrier = [], threading.Barrier(8)

    def deliver(payload, signature):
        barrier.wait()
        statuses.append(app.test_client().post("/api/stripe/webhook", data=payload, content_type="application/json",
                                               headers={"Stripe-Signature": signature}).status_code)

    threads = [threading.Thread(target=deliver, args=held[i % len(held)]) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 8
    assert balance(app, customer) == eur("550")


@pytest.mark.parametrize("tamper", ["body", "secret", "sandbox-development-secret", "stale", "missing"])
def test_webhooks_with_a_bad_signature_are_rejected_and_not_stored(app, client, customer, webhooks, tamper):
    import stripe

    webhooks.hold = True
    top_up(client, "100")
    payload, signature = webhooks.held[0]
    headers = {"Stripe-Signature": signature}
    if tamper == "body":
        payload = payload.replace('"livemode": false', '"livemode": true', 1).replace("100", "999", 1)
    elif tamper == "secret":
        headers["Stripe-Signature"] = stripe.WebhookSignature.generate_signature_header(payload, "whsec_wrong", None)
    elif tamper == "sandbox-development-secret":  # well known: it must never verify anything
        from stripe_sandbox import DEV_WEBHOOK_SECRET

        headers["Stripe-Signature"] = stripe.WebhookSignature.generate_signature_header(payload, DEV_WEBHOOK_SECRET)
    elif tamper == "stale":
        import time

        stamp = int(time.time()) - 301
        secret = app.extensions["stripe_sandbox"].webhook_secret
        headers["Stripe-Signature"] = stripe.WebhookSignature.generate_signature_header(payload, secret, stamp)
    else:
        headers = {}
    answer = client.post("/api/stripe/webhook", data=payload, content_type="application/json", headers=headers)
    assert answer.status_code == 400 and answer.json["error"]["code"] == "invalid_signature"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(WebhookEvent)) == 0
    assert balance(app, customer) == 0


def test_unknown_event_types_are_stored_as_ignored(app, client, customer, sandbox, webhooks):
    top_up(client, "100")
    with app.app_context():
        statuses = dict(db.session.execute(select(WebhookEvent.type, WebhookEvent.status)).all())
    assert statuses["customer.created"] == "ignored"
    assert statuses["checkout.session.completed"] == "processed"


@pytest.mark.parametrize(
    ("amount", "message"),
    [("9,99", "Aufladungen sind von 10,00\xa0€ bis 10.000,00\xa0€ möglich."),
     ("10000,01", "Aufladungen sind von 10,00\xa0€ bis 10.000,00\xa0€ möglich."),
     ("-50", "Aufladungen sind von"),
     ("abc", "Bitte geben Sie den Betrag als Zahl ein"),
     ("50,001", "höchstens zwei Nachkommastellen"),
     ("1e3", "Bitte geben Sie den Betrag als Zahl ein"),
     ("", "Bitte wählen Sie einen Betrag")],
)
def test_bad_amounts_get_a_translated_message_and_start_nothing(app, client, customer, amount, message):
    answer = start_topup(client, amount)
    assert answer.status_code == 422 and message in answer.text
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Topup)) == 0


def test_a_preset_amount_can_be_chosen_without_typing(app, client, customer):
    answer = start_topup(client, "", preset="50")
    assert answer.status_code == 303 and only_topup(app, customer).amount == eur("50")


def test_the_bonus_preview_updates_for_the_chosen_amount(client, customer):
    preview = client.get("/business/billing/topup/preview?amount=500", headers={"HX-Request": "true"})
    assert "Sie zahlen 500,00\xa0€ und erhalten 550,00\xa0€, davon 50,00\xa0€ Bonus." in preview.text
    assert "<html" not in preview.text
    assert "Aufladungen sind von" in client.get("/business/billing/topup/preview?amount=5").text


def test_htmx_form_posts_redirect_with_hx_redirect(client, customer):
    token = csrf_token_from(client.get("/business/billing/topup").text)
    answer = client.post("/business/billing/topup", data={"amount": "100", "csrf_token": token},
                         headers={"HX-Request": "true"})
    assert answer.status_code == 204 and "/sandbox/stripe/checkout/cs_" in answer.headers["HX-Redirect"]


def test_members_see_the_page_read_only_and_cannot_top_up(app, client, make_company):
    _, email = make_company(member=True)
    log_in(client, email)
    page = client.get("/business/billing/topup").text
    assert "Nur Firmen-Administratoren können aufladen." in page and "<fieldset disabled" in page
    token = csrf_token_from(page)
    assert client.post("/business/billing/topup", data={"amount": "100", "csrf_token": token}).status_code == 403


def test_another_companys_top_up_is_not_found(app, client, customer, make_company):
    _, other_email = make_company(name="Andere AG")
    other = app.test_client()
    log_in(other, other_email)
    started = start_topup(other, "100")
    session_id = checkout_session_id(started.headers["Location"])
    with app.app_context():
        foreign_id = db.session.scalar(select(Topup.id))
    assert client.get(f"/business/billing/topup/success?session_id={session_id}").status_code == 404
    page = client.get("/business/billing/topup").text
    assert check_status(client, foreign_id, page).status_code == 404
    assert client.get(f"/business/billing/topup/cancel?topup={foreign_id}").status_code == 404
    assert client.post(f"/business/billing/topup/{foreign_id}/cancel",
                       data={"csrf_token": csrf_token_from(page)}).status_code == 404
    assert client.get("/business/billing/topup/success?session_id=cs_nonsense").status_code == 404
    assert client.get("/business/billing/topup/cancel?topup=abc").status_code == 404


def test_top_up_attempts_are_rate_limited_per_company(app, client, customer):
    app.config["TOPUP_RATE_LIMIT"] = "3 per hour"
    try:
        statuses = [start_topup(client, "20").status_code for _ in range(4)]
    finally:
        app.config["TOPUP_RATE_LIMIT"] = "10 per hour"
    assert statuses == [303, 303, 303, 429]


def test_a_refund_made_in_stripe_debits_once_and_takes_back_the_bonus_share(app, client, customer, sandbox, webhooks):
    top_up(client, "500")
    intent_id = only_topup(app, customer).stripe_payment_intent_id
    assert balance(app, customer) == eur("550")
    webhooks.hold = True
    sandbox.refund_from_dashboard(intent_id, amount=10000)  # 100 € of 500 €
    refunded = [(p, s) for p, s in webhooks.held if json.loads(p)["type"] == "charge.refunded"]
    for payload, signature in refunded + refunded:
        assert webhooks.send(payload, signature) == 200
    assert balance(app, customer) == eur("440")  # 550 − 100 − 10 (a fifth of the 50 € bonus)
    assert sorted(ledger_types(app, customer)) == ["bonus", "bonus_reversal", "topup", "topup_refund"]
    assert only_topup(app, customer).refunded_amount == eur("100")


def test_the_sandbox_banner_is_shown(client, customer):
    assert "Sandbox: Zahlungen werden simuliert" in client.get("/business/billing").text


def forged(app, payload: str, **changes) -> tuple[str, str]:
    """The held event with its object changed, as a new event signed with the endpoint's secret: what a
    leaked secret, a bug at Stripe or a tampered integration could deliver."""
    import stripe

    event = json.loads(payload)
    event["id"] += "_forged"
    event["data"]["object"].update(changes)
    text = json.dumps(event)
    return text, stripe.WebhookSignature.generate_signature_header(text, app.extensions["stripe_sandbox"].webhook_secret)


@pytest.mark.parametrize("changes, code", [
    ({"amount_total": 100, "amount_received": 100}, "amount_mismatch"),  # 1 € paid for a 100 € top-up
    ({"currency": "usd"}, "currency_mismatch"),
    ({"customer": "cus_of_another_company"}, "customer_mismatch"),
    ({"livemode": True}, "livemode_mismatch"),
])
def test_a_payment_report_that_does_not_match_the_top_up_credits_nothing_and_asks_staff(
        app, client, customer, webhooks, changes, code):
    webhooks.hold = True
    top_up(client, "100")
    held = {json.loads(payload)["type"]: payload for payload, _ in webhooks.held}
    for kind in ("checkout.session.completed", "payment_intent.succeeded"):
        object_changes = {key: value for key, value in changes.items()
                          if key in json.loads(held[kind])["data"]["object"]}
        assert webhooks.send(*forged(app, held[kind], **object_changes)) == 200
    topup = only_topup(app, customer)
    assert (topup.status, topup.failure_code) == ("review", code)
    assert balance(app, customer) == 0 and ledger_types(app, customer) == []
    assert "In Prüfung" in client.get("/business/billing/topup").text  # the customer sees it is being checked


def test_stripes_own_report_after_a_refused_one_credits_what_was_paid_once(app, client, customer, webhooks):
    webhooks.hold = True
    top_up(client, "100")
    held = [(json.loads(payload)["type"], payload, signature) for payload, signature in webhooks.held]
    [completed] = [payload for kind, payload, _ in held if kind == "checkout.session.completed"]
    assert webhooks.send(*forged(app, completed, amount_total=100)) == 200
    assert only_topup(app, customer).status == "review"
    for _, payload, signature in held:  # Stripe's own events match the top-up: they prove the payment
        assert webhooks.send(payload, signature) == 200
    assert only_topup(app, customer).status == "credited" and balance(app, customer) == eur("100")


def signed_event(app, kind: str, obj: dict) -> tuple[str, str]:
    import time

    import stripe

    text = json.dumps({"id": f"evt_made_{obj['id']}_{kind}", "object": "event", "type": kind, "created": int(time.time()),
                       "livemode": False, "api_version": "2025-01-27.acacia", "data": {"object": obj}})
    return text, stripe.WebhookSignature.generate_signature_header(text, app.extensions["stripe_sandbox"].webhook_secret)


def test_refunds_reported_beyond_what_was_paid_never_debit_more_than_was_credited(app, client, customer, webhooks):
    top_up(client, "250")  # 250 € and a 12.50 € bonus
    intent_id = only_topup(app, customer).stripe_payment_intent_id
    charge = {"id": "ch_made", "object": "charge", "payment_intent": intent_id,
              "refunds": {"data": [{"id": "re_made_1", "amount": 20000, "status": "succeeded"},
                                   {"id": "re_made_2", "amount": 20000, "status": "succeeded"}]}}
    assert webhooks.send(*signed_event(app, "charge.refunded", charge)) == 200
    assert balance(app, customer) == 0  # 250 € and the whole bonus back, not 400 €
    with app.app_context():
        refunds = db.session.scalars(select(TopupRefund).order_by(TopupRefund.id)).all()
        assert [(r.stripe_refund_id, r.refunded_cents) for r in refunds] == [("re_made_1", 20000), ("re_made_2", 5000)]
    charge["refunds"]["data"].append({"id": "re_made_3", "amount": 100, "status": "succeeded"})
    assert webhooks.send(*signed_event(app, "charge.refunded", {**charge, "id": "ch_made_again"})) == 200
    assert balance(app, customer) == 0 and only_topup(app, customer).refunded_amount == eur("250")
