"""A top-up under review (Stripe's report did not match it): staff credit what Stripe received, or
refund the payment — from Stripe's own record, once, audited, on the failed payments page."""

from __future__ import annotations

import json

import pytest

from app.extensions import db
from core.accounts.audit import Actor
from core.backoffice import money_actions as actions
from core.schema import AuditRecord, BalanceTransaction, BonusRule, Role, Topup, TopupRefund
from core.money import eur
from tests.helpers import log_in
from tests.stripe_helpers import top_up
from tests.web.test_reconcile import since  # noqa: F401  (a fixture)
from tests.web.test_staff_money import ADMIN, SUPPORT, balance, confirm, preview, rows, staff_client
from tests.web.test_topups import forged


@pytest.fixture
def in_review(app, client, make_company, webhooks):
    """A 100 € top-up (10 % bonus from 50 €) whose payment report was refused: (company, top-up id,
    Stripe's payment intent id, the held events of the real payment)."""
    def make(**changes):
        with app.app_context():
            db.session.add(BonusRule(name="10 % ab 50 €", min_amount=eur("50"), percent_basis_points=1000))
            db.session.commit()
        company_id, email = make_company(name="Prüfung GmbH")
        log_in(client, email)
        webhooks.hold = True
        top_up(client, "100")
        held = list(webhooks.held)
        webhooks.held.clear()
        [completed] = [payload for payload, _ in held if json.loads(payload)["type"] == "checkout.session.completed"]
        assert webhooks.send(*forged(app, completed, **changes)) == 200
        [topup] = rows(app, Topup, Topup.company_id == company_id)
        assert topup.status == "review" and balance(app, company_id) == 0
        return company_id, topup.id, json.loads(completed)["data"]["object"]["payment_intent"], held

    return make


def stripe_shows(sandbox, intent_id: str, **fields) -> None:
    """Stripe's own record of the payment says this (e.g. less received than the top-up asked)."""
    with sandbox.transaction():
        intent = sandbox.get(intent_id, "payment_intent")
        intent.update(fields)
        sandbox.put(intent)


def test_an_admin_credits_what_stripe_received_once_with_the_bonus_for_that_amount(
        app, make_staff, in_review, sandbox, webhooks):
    company_id, topup_id, intent_id, held = in_review(amount_total=6000)
    stripe_shows(sandbox, intent_id, amount_received=6000)  # 60 € of 100 € arrived
    admin = staff_client(app, make_staff)
    assert 'data-testid="review-actions"' in admin.get("/admin/failed-payments").text
    url = f"/admin/topups/{topup_id}/credit-received"
    page = preview(admin, url, reason="Customer paid 60 € only")
    assert page.status_code == 200 and "€60.00" in page.text and "€66.00" in page.text  # 60 € and a 6 € bonus
    assert balance(app, company_id) == 0  # the preview moves nothing
    done = confirm(admin, url, page.text, reason="Customer paid 60 € only")
    assert done.status_code == 303
    assert balance(app, company_id) == eur("66")
    [topup] = rows(app, Topup, Topup.id == topup_id)
    assert (topup.status, topup.amount, topup.charged_cents, topup.bonus_amount) == (
        "credited", eur("60"), 6000, eur("6"))
    assert sorted(e.type for e in rows(app, BalanceTransaction, BalanceTransaction.company_id == company_id)) == [
        "bonus", "topup"]
    [audit] = rows(app, AuditRecord, AuditRecord.action == "topup.credit_received")
    assert (audit.reason, audit.after["received_cents"], audit.before["amount"]) == (
        "Customer paid 60 € only", 6000, eur("100"))
    # two clicks, a second staff member, Stripe's own events: one credit
    assert confirm(admin, url, page.text, reason="Customer paid 60 € only").status_code == 409
    assert preview(admin, url, reason="Again").status_code == 409
    for payload, signature in held:
        assert webhooks.send(payload, signature) == 200
    assert balance(app, company_id) == eur("66")


def test_support_staff_cannot_credit_a_top_up_under_review(app, make_staff, in_review):
    company_id, topup_id, _, _ = in_review(amount_total=6000)
    support = staff_client(app, make_staff, Role.STAFF_SUPPORT, SUPPORT)
    assert support.get(f"/admin/topups/{topup_id}/credit-received").status_code == 403
    assert "credit-received" not in support.get("/admin/failed-payments").text
    assert balance(app, company_id) == 0


def test_a_payment_by_another_customer_is_offered_only_the_refund_which_pays_back_and_credits_nothing(
        app, make_staff, in_review, sandbox, webhooks):
    company_id, topup_id, intent_id, held = in_review(customer="cus_of_another_company")
    admin = staff_client(app, make_staff)
    listing = admin.get("/admin/failed-payments").text
    assert "Paid by another customer" in listing and "credit-received" not in listing
    assert f"/admin/topups/{topup_id}/refund-payment" in listing
    stripe_shows(sandbox, intent_id, customer="cus_of_another_company")  # Stripe's own record says so too
    refused = preview(admin, f"/admin/topups/{topup_id}/credit-received", reason="Try")
    assert refused.status_code == 422 and "paid by another Stripe customer" in refused.text
    url = f"/admin/topups/{topup_id}/refund-payment"
    page = preview(admin, url, reason="Not this company's payment")
    assert page.status_code == 200 and "€100.00" in page.text
    webhooks.hold = True
    assert confirm(admin, url, page.text, reason="Not this company's payment").status_code == 303
    [topup] = rows(app, Topup, Topup.id == topup_id)
    assert (topup.status, topup.stripe_payment_intent_id) == ("refunded", intent_id)
    with app.app_context():
        [refund] = app.extensions["stripe_gateway"].list_refunds(intent_id)
    assert refund.amount == 10000
    for payload, signature in held + webhooks.held:  # Stripe's charge.refunded and the payment's own events
        assert webhooks.send(payload, signature) == 200
    assert balance(app, company_id) == 0 and rows(app, TopupRefund) == []
    assert rows(app, Topup, Topup.id == topup_id)[0].status == "refunded"  # its payment no longer credits it
    [audit] = rows(app, AuditRecord, AuditRecord.action == "topup.refund_in_review")
    assert audit.reason == "Not this company's payment" and audit.after["stripe_refund_id"] == refund.id
    assert confirm(admin, url, page.text, reason="Not this company's payment").status_code == 409


def test_two_staff_members_refunding_at_once_refund_at_stripe_once(app, in_review):
    company_id, topup_id, intent_id, _ = in_review(amount_total=100)
    with app.app_context():
        gateway = app.extensions["stripe_gateway"]
        first, second = (actions.check_review_action(db.session, topup_id, "Wrong amount", key)
                         for key in ("form-1", "form-2"))
        db.session.commit()
        actions.refund_in_review(db.session, gateway, Actor(None, ADMIN), first, actor_is_admin=True, support_limit=0)
        db.session.commit()
        with pytest.raises(actions.NotInReview):
            actions.refund_in_review(db.session, gateway, Actor(None, ADMIN), second, actor_is_admin=True,
                                     support_limit=0)
        db.session.rollback()
        assert len(gateway.list_refunds(intent_id)) == 1
    assert len(rows(app, AuditRecord, AuditRecord.action == "topup.refund_in_review")) == 1
    assert balance(app, company_id) == 0


def test_support_staff_refund_a_payment_under_review_only_up_to_their_limit(app, make_staff, in_review):
    company_id, topup_id, _, _ = in_review(currency="usd")
    support = staff_client(app, make_staff, Role.STAFF_SUPPORT, SUPPORT)
    assert "This payment cannot be credited as it is" in support.get("/admin/failed-payments").text
    answer = preview(support, f"/admin/topups/{topup_id}/refund-payment", reason="Wrong currency")
    assert answer.status_code == 403  # 100 € is above the support limit of 50 €
    assert rows(app, Topup, Topup.id == topup_id)[0].status == "review"


def test_reconciliation_reports_a_top_up_under_review_with_both_actions_until_staff_resolve_it(
        app, make_staff, in_review, since, webhooks):
    from tests.web.test_reconcile import reconcile

    company_id, topup_id, _, held = in_review(amount_total=100)
    result = reconcile(app, "--since", since)
    assert result.exit_code == 1 and "[topup_in_review]" in result.output
    assert "stripe_payment_not_credited" not in result.output  # the payment is accounted for by the review
    admin = staff_client(app, make_staff, language="de")
    page = admin.get(f"/admin/reconciliation?since={since[:10]}").text
    assert 'data-kind="topup_in_review"' in page and "Aufladung in Prüfung" in page
    assert f"/admin/topups/{topup_id}/credit-received" in page and f"/admin/topups/{topup_id}/refund-payment" in page
    url = f"/admin/topups/{topup_id}/credit-received"
    form = preview(admin, url, reason="Stripe hat 100 € erhalten")
    assert confirm(admin, url, form.text, reason="Stripe hat 100 € erhalten").status_code == 303
    assert balance(app, company_id) == eur("110")  # Stripe's own record: all 100 € arrived, and the bonus
    for payload, signature in held:  # Stripe's own events, late: they change nothing now
        assert webhooks.send(payload, signature) == 200
    assert balance(app, company_id) == eur("110")
    result = reconcile(app, "--since", since)
    assert result.exit_code == 0, result.output  # credited as Stripe recorded it: nothing left to find
