"""Staff money actions end to end: adjustments, call refunds, top-up refunds through the sandbox."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest
from sqlalchemy import select

from core.backoffice import money_actions as staff_actions
from core.accounts.audit import Actor
from core.calls.rating import charge_call
from core.ledger.postings import post_entry, Reference
from app.extensions import db
from core.schema import (
    AuditRecord, BalanceTransaction, CallCharge, CallRefund, DocumentKind, EntryType, Invoice, PrepaidBalance, Role,
    Topup, TopupRefund,
)
from core.money import eur
from tests.conftest import STAFF_PASSWORD
from tests.helpers import csrf_token_from, log_in
from tests.stripe_helpers import top_up

ADMIN = "admin@staff.example.com"
SUPPORT = "support@staff.example.com"


# -- helpers -------------------------------------------------------------------------------------

def staff_client(app, make_staff, role=Role.STAFF_ADMIN, email=ADMIN, language="en"):
    make_staff(role, email)
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = language
    assert log_in(client, email, STAFF_PASSWORD).status_code in (302, 303)
    return client


def balance(app, company_id):
    with app.app_context():
        return db.session.get(PrepaidBalance, company_id).balance


def rows(app, model, *where):
    with app.app_context():
        found = list(db.session.scalars(select(model).where(*where).order_by(model.id)))
        db.session.expunge_all()
        return found


def make_call(app, company_id, seconds=600, call_id="call-1"):
    """A 10-minute call at 0.42 €/min costs 4.20 €."""
    with app.app_context():
        charge = charge_call(db.session, company_id, call_id, started_at=datetime(2026, 11, 1, 10, 0),
                             duration_seconds=seconds)
        db.session.commit()
        return charge.id


def preview(client, url, **data):
    form = client.get(url)
    assert form.status_code == 200, form.text
    return client.post(url, data={"csrf_token": csrf_token_from(form.text), **data})


def hidden(html, name):
    import re
    match = re.search(rf'name="{name}" type="hidden" value="([^"]*)"|id="{name}" name="{name}" type="hidden" value="([^"]*)"', html)
    if match is None:
        match = re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', html)
        return match.group(1)
    return match.group(1) or match.group(2)


def confirm(client, url, page_html, **data):
    values = {"csrf_token": csrf_token_from(page_html), "confirm": "1",
              "expected_balance": hidden(page_html, "expected_balance"),
              "request_key": hidden(page_html, "request_key"), **data}
    return client.post(url, data=values)


# -- manual adjustment ---------------------------------------------------------------------------

def test_an_admin_credits_a_balance_after_seeing_the_resulting_balance(app, make_company, make_staff):
    company_id, _ = make_company(balance=eur("10"))
    client = staff_client(app, make_staff)
    url = f"/admin/companies/{company_id}/adjust"
    data = {"direction": "credit", "amount": "25.50", "description": "Goodwill", "reason": "Outage on 3 Nov"}
    page = preview(client, url, **data)
    assert page.status_code == 200
    assert "€35.50" in page.text and "€10.00" in page.text
    assert balance(app, company_id) == eur("10")  # the preview moves nothing
    done = confirm(client, url, page.text, **data)
    assert done.status_code == 303
    assert balance(app, company_id) == eur("35.50")
    entry = rows(app, BalanceTransaction, BalanceTransaction.type == "adjustment")[0]
    assert (entry.amount, entry.description, entry.actor) == (eur("25.50"), "Goodwill", ADMIN)
    audit = rows(app, AuditRecord, AuditRecord.action == "balance_adjustment")[0]
    assert audit.before["balance"] == eur("10") and audit.after["balance"] == eur("35.50")
    assert audit.reason == "Outage on 3 Nov" and audit.actor_email == ADMIN


def test_a_debit_adjustment_takes_money_off(app, make_company, make_staff):
    company_id, _ = make_company(balance=eur("10"))
    client = staff_client(app, make_staff)
    url = f"/admin/companies/{company_id}/adjust"
    data = {"direction": "debit", "amount": "3", "description": "Correction", "reason": "Double credit"}
    page = preview(client, url, **data)
    assert "€7.00" in page.text
    assert confirm(client, url, page.text, **data).status_code == 303
    assert balance(app, company_id) == eur("7")


@pytest.mark.parametrize("amount, reason, message", [
    ("0", "why", "greater than zero"),
    ("10000000", "why", "greater than zero"),
    ("abc", "why", "as a number"),
    ("5", "  ", "give a reason"),
])
def test_zero_absurd_garbled_amounts_and_an_empty_reason_are_refused(app, make_company, make_staff, amount, reason,
                                                                        message):
    company_id, _ = make_company(balance=eur("10"))
    client = staff_client(app, make_staff)
    url = f"/admin/companies/{company_id}/adjust"
    page = preview(client, url, direction="credit", amount=amount, reason=reason)
    assert page.status_code == 422 and message in page.text
    # even a forged confirmation moves nothing
    forged = client.post(url, data={"csrf_token": csrf_token_from(page.text), "confirm": "1", "direction": "credit",
                                    "amount": amount, "reason": reason, "request_key": "k" * 32,
                                    "expected_balance": str(eur("10"))})
    assert forged.status_code == 422
    assert balance(app, company_id) == eur("10")
    assert rows(app, AuditRecord, AuditRecord.action == "balance_adjustment") == []


def test_a_double_submitted_adjustment_changes_the_balance_once(app, make_company, make_staff):
    company_id, _ = make_company(balance=eur("10"))
    client = staff_client(app, make_staff)
    url = f"/admin/companies/{company_id}/adjust"
    data = {"direction": "credit", "amount": "5", "reason": "Goodwill"}
    page = preview(client, url, **data)
    assert confirm(client, url, page.text, **data).status_code == 303
    again = confirm(client, url, page.text, **data)
    assert again.status_code == 409 and "already submitted" in again.text
    assert balance(app, company_id) == eur("15")


def test_a_stale_confirmation_shows_a_new_preview_and_moves_no_money(app, make_company, make_staff):
    company_id, _ = make_company(balance=eur("10"))
    client = staff_client(app, make_staff)
    url = f"/admin/companies/{company_id}/adjust"
    data = {"direction": "credit", "amount": "5", "reason": "Goodwill"}
    page = preview(client, url, **data)
    with app.app_context():  # a call is charged meanwhile
        post_entry(db.session, company_id, EntryType.CHARGE, -eur("1"), reference=Reference("call", "x"),
                   allow_negative=True)
        db.session.commit()
    stale = confirm(client, url, page.text, **data)
    assert stale.status_code == 409 and "balance changed" in stale.text
    assert "€14.00" in stale.text  # the new preview: 9 + 5
    assert balance(app, company_id) == eur("9")
    assert confirm(client, url, stale.text, **data).status_code == 303
    assert balance(app, company_id) == eur("14")


def test_support_staff_cannot_adjust_and_the_attempt_is_audited(app, make_company, make_staff):
    company_id, _ = make_company(balance=eur("10"))
    client = staff_client(app, make_staff, Role.STAFF_SUPPORT, SUPPORT)
    response = client.get(f"/admin/companies/{company_id}/adjust")
    assert response.status_code == 403
    denied = rows(app, AuditRecord, AuditRecord.outcome == "denied")
    assert [(d.actor_email, d.company_id) for d in denied] == [(SUPPORT, company_id)]
    assert balance(app, company_id) == eur("10")


# -- call refunds --------------------------------------------------------------------------------

def test_a_full_call_refund_books_a_linked_refund_entry_and_marks_the_call(app, make_company, make_staff):
    company_id, customer = make_company(balance=eur("10"))
    charge_id = make_call(app, company_id)
    assert balance(app, company_id) == eur("5.80")
    client = staff_client(app, make_staff)
    url = f"/admin/calls/{charge_id}/refund"
    page = preview(client, url, mode="full", reason="Dropped call")
    assert page.status_code == 200 and "€10.00" in page.text
    assert confirm(client, url, page.text, mode="full", reason="Dropped call").status_code == 303
    assert balance(app, company_id) == eur("10")
    charge = rows(app, CallCharge, CallCharge.id == charge_id)[0]
    assert (charge.refund_status, charge.refunded_amount) == ("full", eur("4.20"))
    refund = rows(app, CallRefund)[0]
    entry = rows(app, BalanceTransaction, BalanceTransaction.type == "refund")[0]
    assert (entry.reference_type, entry.reference_id, entry.amount) == ("call_refund", str(refund.id), eur("4.20"))
    assert refund.ledger_entry_id == entry.id
    audit = rows(app, AuditRecord, AuditRecord.action == "call_refund")[0]
    assert audit.before["balance"] == eur("5.80") and audit.after["balance"] == eur("10") and audit.reason


def test_partial_refunds_by_amount_and_by_seconds_use_the_calls_rate_and_stop_at_the_charge(app, make_company,
                                                                                            make_staff):
    company_id, _ = make_company(balance=eur("10"))
    charge_id = make_call(app, company_id)
    client = staff_client(app, make_staff)
    url = f"/admin/calls/{charge_id}/refund"
    page = preview(client, url, mode="amount", amount="1.00", reason="Noise")
    assert confirm(client, url, page.text, mode="amount", amount="1.00", reason="Noise").status_code == 303
    page = preview(client, url, mode="seconds", seconds="61", reason="Noise")  # 61 s × 0.42/60 = 0.427 €
    assert confirm(client, url, page.text, mode="seconds", seconds="61", reason="Noise").status_code == 303
    charge = rows(app, CallCharge, CallCharge.id == charge_id)[0]
    assert (charge.refund_status, charge.refunded_amount) == ("partial", eur("1.427"))
    too_much = preview(client, url, mode="amount", amount="3.00", reason="Noise")  # only 2.773 € left
    assert too_much.status_code == 422 and "€2.773" in too_much.text
    assert balance(app, company_id) == eur("5.80") + eur("1.427")


def test_support_staff_refund_calls_up_to_the_limit_and_above_it_get_403_audited(app, make_company, make_staff):
    app.config["STAFF_SUPPORT_REFUND_LIMIT_EUR"] = "2"
    try:
        company_id, _ = make_company(balance=eur("10"))
        charge_id = make_call(app, company_id)
        client = staff_client(app, make_staff, Role.STAFF_SUPPORT, SUPPORT)
        url = f"/admin/calls/{charge_id}/refund"
        above = preview(client, url, mode="full", reason="Dropped")
        assert above.status_code == 403 and "Only staff admins" in above.text
        assert [d.action for d in rows(app, AuditRecord, AuditRecord.outcome == "denied")] == ["staff.refund_call"]
        page = preview(client, url, mode="amount", amount="2", reason="Dropped")
        assert confirm(client, url, page.text, mode="amount", amount="2", reason="Dropped").status_code == 303
        assert balance(app, company_id) == eur("7.80")
    finally:
        app.config.pop("STAFF_SUPPORT_REFUND_LIMIT_EUR")


def test_a_double_submitted_call_refund_refunds_once(app, make_company, make_staff):
    company_id, _ = make_company(balance=eur("10"))
    charge_id = make_call(app, company_id)
    client = staff_client(app, make_staff)
    url = f"/admin/calls/{charge_id}/refund"
    page = preview(client, url, mode="amount", amount="1", reason="Noise")
    assert confirm(client, url, page.text, mode="amount", amount="1", reason="Noise").status_code == 303
    again = confirm(client, url, page.text, mode="amount", amount="1", reason="Noise")
    assert again.status_code == 409
    assert len(rows(app, CallRefund)) == 1 and balance(app, company_id) == eur("6.80")


def test_two_staff_refunding_one_call_at_once_refund_it_once(app, make_company):
    company_id, _ = make_company(balance=eur("10"))
    charge_id = make_call(app, company_id)
    outcomes, barrier = [], threading.Barrier(2)

    def refund(key):
        with app.app_context():
            barrier.wait()
            try:
                staff_actions.refund_call(db.session, Actor(None, f"{key}@staff.example.com"), charge_id,
                                          reason="Dropped", request_key=key, actor_is_admin=True, support_limit=0)
                db.session.commit()
                outcomes.append("ok")
            except staff_actions.StaffActionError as error:
                outcomes.append(error.code)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=refund, args=(key,)) for key in ("first-key", "second-key")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["nothing_refundable", "ok"]
    assert balance(app, company_id) == eur("10")
    assert len(rows(app, CallRefund)) == 1


def test_the_customer_sees_the_refund_on_the_usage_page(app, client, make_company, make_staff):
    company_id, customer = make_company(balance=eur("10"))
    charge_id = make_call(app, company_id)
    with app.app_context():
        staff_actions.refund_call(db.session, Actor(None, ADMIN), charge_id, amount=eur("1"), reason="x",
                                  request_key="usage-key", actor_is_admin=True, support_limit=0)
        db.session.commit()
    log_in(client, customer)
    page = client.get("/business/billing/usage?period=custom&start=2026-11-01&end=2026-11-01",
                      headers={"Accept-Language": "en"}).text
    row = page[page.find('data-call-id="call-1"'):][:1500]
    assert "−€1.00" in row and "€4.20" in row


# -- top-up refunds ------------------------------------------------------------------------------

@pytest.fixture
def paid_topup(app, client, make_company):
    """A company that paid 500 € through the sandbox and got 550 € (with the 10 % bonus rule)."""
    from core.schema import BonusRule
    with app.app_context():
        db.session.add(BonusRule(name="10 % ab 500 €", min_amount=eur("500"), percent_basis_points=1000))
        db.session.commit()
    company_id, customer = make_company()
    log_in(client, customer)
    top_up(client, "500")
    topup = rows(app, Topup, Topup.company_id == company_id)[0]
    assert balance(app, company_id) == eur("550")
    return company_id, topup.id


def test_an_admin_refunds_part_of_a_top_up_through_stripe_once_with_the_bonus_share_and_a_credit_note(
        app, make_staff, paid_topup, sandbox):
    company_id, topup_id = paid_topup
    client = staff_client(app, make_staff)
    url = f"/admin/topups/{topup_id}/refund"
    page = preview(client, url, mode="amount", amount="100", reason="Customer asked")
    assert page.status_code == 200 and "€440.00" in page.text  # 550 − 100 − 10 bonus
    assert confirm(client, url, page.text, mode="amount", amount="100", reason="Customer asked").status_code == 303
    assert balance(app, company_id) == eur("440")
    refunds = rows(app, TopupRefund)
    assert [(r.refunded_cents, r.amount, r.bonus_reversed) for r in refunds] == [(10000, eur("100"), eur("10"))]
    types = sorted(e.type for e in rows(app, BalanceTransaction, BalanceTransaction.company_id == company_id))
    assert types == ["bonus", "bonus_reversal", "topup", "topup_refund"]  # the webhook added nothing
    notes = rows(app, Invoice, Invoice.kind == DocumentKind.CREDIT_NOTE.value)
    assert [n.topup_refund_id for n in notes] == [refunds[0].id]
    audit = rows(app, AuditRecord, AuditRecord.action == "topup_refund")[0]
    assert (audit.before["balance"], audit.after["balance"]) == (eur("550"), eur("440"))
    assert audit.after["stripe_refund_id"] == refunds[0].stripe_refund_id
    # a double submit pays nothing back twice
    again = confirm(client, url, page.text, mode="amount", amount="100", reason="Customer asked")
    assert again.status_code == 409 and balance(app, company_id) == eur("440")
    assert len(rows(app, TopupRefund)) == 1


def test_a_top_up_refund_above_the_available_balance_needs_the_admin_override(app, make_staff, paid_topup):
    company_id, topup_id = paid_topup
    with app.app_context():  # most of the money was spent on calls
        post_entry(db.session, company_id, EntryType.CHARGE, -eur("500"), reference=Reference("call", "big"))
        db.session.commit()
    client = staff_client(app, make_staff)
    url = f"/admin/topups/{topup_id}/refund"
    page = preview(client, url, mode="full", reason="Contract ended")
    assert page.status_code == 200
    refused = confirm(client, url, page.text, mode="full", reason="Contract ended")
    assert refused.status_code == 422 and "exceeds the available balance" in refused.text
    assert balance(app, company_id) == eur("50") and rows(app, TopupRefund) == []
    page = preview(client, url, mode="full", reason="Contract ended", override_available="y")
    done = confirm(client, url, page.text, mode="full", reason="Contract ended", override_available="y")
    assert done.status_code == 303
    assert balance(app, company_id) == eur("-500")  # 50 − 500 − 50 bonus


def test_support_staff_cannot_refund_a_top_up_above_the_limit(app, make_staff, paid_topup):
    company_id, topup_id = paid_topup
    client = staff_client(app, make_staff, Role.STAFF_SUPPORT, SUPPORT)
    url = f"/admin/topups/{topup_id}/refund"
    response = preview(client, url, mode="amount", amount="100", reason="Asked")
    assert response.status_code == 403
    assert [d.actor_email for d in rows(app, AuditRecord, AuditRecord.outcome == "denied")] == [SUPPORT]
    assert balance(app, company_id) == eur("550")


def test_a_top_up_refund_above_what_was_paid_is_refused(app, make_staff, paid_topup):
    company_id, topup_id = paid_topup
    client = staff_client(app, make_staff)
    response = preview(client, f"/admin/topups/{topup_id}/refund", mode="amount", amount="600", reason="Asked")
    assert response.status_code == 422 and "At most €500.00" in response.text
    assert balance(app, company_id) == eur("550")


def test_messages_are_german_by_default(app, make_company, make_staff):
    from flask_babel import force_locale, gettext
    with app.test_request_context():
        with force_locale("de"):
            if gettext("Please give a reason.") == "Please give a reason.":
                pytest.skip("the German catalogue does not have the staff money messages yet")
    company_id, _ = make_company(balance=eur("10"))
    client = staff_client(app, make_staff, language="de")
    page = preview(client, f"/admin/companies/{company_id}/adjust", direction="credit", amount="5", reason="")
    assert page.status_code == 422 and "Bitte geben Sie einen Grund an." in page.text


def test_a_top_up_refund_confirmed_twice_at_once_pays_back_and_debits_once(app, paid_topup):
    """Both submissions pass step 1 before either books; Stripe's idempotency gives both the same
    refund, and the second booking stops at the form's unique audit key."""
    company_id, topup_id = paid_topup
    actor = Actor(None, ADMIN)
    with app.app_context():
        gateway = app.extensions["stripe_gateway"]
        first, second = (staff_actions.check_topup_refund(
            db.session, topup_id, 10000, "Customer asked", "same-form", override_available=False,
            actor_is_admin=True, support_limit=0) for _ in range(2))
        db.session.commit()
        staff_actions.refund_topup(db.session, gateway, actor, first)
        db.session.commit()
        with pytest.raises(staff_actions.DuplicateSubmission):
            staff_actions.refund_topup(db.session, gateway, actor, second)
        db.session.rollback()
    assert balance(app, company_id) == eur("440")  # 550 − 100 − 10 bonus
    assert len(rows(app, TopupRefund)) == 1
    assert len(rows(app, AuditRecord, AuditRecord.action == "topup_refund")) == 1


def test_a_late_charge_refunded_webhook_for_a_staff_refund_changes_nothing(app, make_staff, paid_topup, webhooks):
    import json
    company_id, topup_id = paid_topup
    client = staff_client(app, make_staff)
    url = f"/admin/topups/{topup_id}/refund"
    page = preview(client, url, mode="full", reason="Contract ended")
    webhooks.hold = True  # the webhook comes after the staff action has booked the refund
    assert confirm(client, url, page.text, mode="full", reason="Contract ended").status_code == 303
    assert balance(app, company_id) == eur("0")
    refunded = [(p, s) for p, s in webhooks.held if json.loads(p)["type"] == "charge.refunded"]
    assert refunded
    for payload, signature in refunded + refunded:
        assert webhooks.send(payload, signature) == 200
    assert balance(app, company_id) == eur("0")
    assert len(rows(app, TopupRefund)) == 1
    assert len(rows(app, Invoice, Invoice.kind == DocumentKind.CREDIT_NOTE.value)) == 1


@pytest.mark.parametrize(("field", "value"), [("direction", ""), ("direction", "²"), ("amount", "١٠"),
                                              ("amount", "NaN")])
def test_an_adjustment_with_a_blank_choice_or_other_digits_is_refused(app, make_company, make_staff, field, value):
    """A blank radio value is no choice (it used to pass as a credit), and only ASCII digits are numbers."""
    company_id, _ = make_company(balance=eur("10"))
    client = staff_client(app, make_staff)
    data = {"direction": "credit", "amount": "5", "description": "x", "reason": "y", field: value}
    answer = preview(client, f"/admin/companies/{company_id}/adjust", **data)
    assert answer.status_code == 422
    assert balance(app, company_id) == eur("10")


def test_a_call_refund_with_a_blank_mode_is_refused_not_taken_as_full(app, make_company, make_staff):
    company_id, _ = make_company(balance=eur("10"))
    charge_id = make_call(app, company_id)
    client = staff_client(app, make_staff)
    answer = preview(client, f"/admin/calls/{charge_id}/refund", mode="", reason="Test")
    assert answer.status_code == 422
    seconds = preview(client, f"/admin/calls/{charge_id}/refund", mode="seconds", seconds="١٠", reason="Test")
    assert seconds.status_code == 422
