"""Reconciliation: `billing reconcile` and the staff page find planted drift and dropped webhooks."""

import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import update

from app.extensions import db

from core.schema import PrepaidBalance, Role
from core.money import eur
from tests.conftest import STAFF_PASSWORD
from tests.helpers import log_in
from tests.stripe_helpers import top_up


@pytest.fixture
def since():
    """A start of the Stripe range after everything earlier tests left in the (session-wide) sandbox."""
    time.sleep(1.05 - time.time() % 1)
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


@pytest.fixture
def customer(app, make_company):
    company_id, email = make_company(name="Abgleich GmbH")
    client = app.test_client()
    log_in(client, email)
    return company_id, client


def reconcile(app, *args):
    return app.test_cli_runner().invoke(args=["billing", "reconcile", *args])


def test_reconcile_exits_0_on_clean_data_including_stripes_side(app, customer, since):
    top_up(customer[1], "100")
    result = reconcile(app, "--since", since)
    assert result.exit_code == 0, result.output
    assert "reconciliation OK" in result.output


def test_a_balance_changed_outside_the_ledger_is_a_finding_with_a_suggested_fix(app, customer, make_staff):
    top_up(customer[1], "100")
    with app.app_context():
        db.session.execute(update(PrepaidBalance).where(PrepaidBalance.company_id == customer[0])
                           .values(balance=PrepaidBalance.balance + eur("5")))
        db.session.commit()
    try:
        result = reconcile(app)
        assert result.exit_code == 1
        assert "[ledger_integrity] company" in result.output and "Abgleich GmbH" in result.output
        assert "adjustment" in result.output  # the suggested fix books an entry, never overwrites
        staff = app.test_client()
        log_in(staff, make_staff(Role.STAFF_SUPPORT), STAFF_PASSWORD)
        page = staff.get("/admin/reconciliation")
        assert page.status_code == 200 and 'data-kind="ledger_integrity"' in page.text
        assert page.headers["Vary"] == "HX-Request" or "HX-Request" in page.headers["Vary"]
    finally:
        with app.app_context():
            db.session.execute(update(PrepaidBalance).where(PrepaidBalance.company_id == customer[0])
                               .values(balance=PrepaidBalance.balance - eur("5")))
            db.session.commit()


def test_a_dropped_webhook_shows_as_an_uncredited_stripe_payment_until_it_is_delivered(app, customer, webhooks,
                                                                                       since, make_staff):
    webhooks.hold = True
    _, paid = top_up(customer[1], "80")
    assert paid.status_code == 303  # Stripe has the money; the portal heard nothing
    result = reconcile(app, "--since", since)
    assert result.exit_code == 1
    assert "[stripe_payment_not_credited]" in result.output and "[event_not_received]" in result.output
    staff = app.test_client()
    log_in(staff, make_staff(Role.STAFF_ADMIN), STAFF_PASSWORD)
    page = staff.get(f"/admin/reconciliation?since={since[:10]}",
                     headers={"HX-Request": "true"}).text
    assert page.startswith('<div id="reconcile-findings"') and 'data-kind="stripe_payment_not_credited"' in page
    for payload, signature in webhooks.held:  # the late delivery fixes it
        webhooks.send(payload, signature)
    result = reconcile(app, "--since", since)
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.get(PrepaidBalance, customer[0]).balance == eur("80")


def test_the_page_without_a_date_does_not_ask_stripe_and_reports_no_findings(app, make_staff):
    staff = app.test_client()
    log_in(staff, make_staff(Role.STAFF_SUPPORT), STAFF_PASSWORD)
    page = staff.get("/admin/reconciliation").text
    assert 'data-findings="0"' in page


def test_only_staff_admins_are_offered_a_correction_for_a_finding(app, customer, make_staff):
    top_up(customer[1], "100")
    with app.app_context():
        db.session.execute(update(PrepaidBalance).where(PrepaidBalance.company_id == customer[0])
                           .values(balance=PrepaidBalance.balance + eur("5")))
        db.session.commit()
    try:
        support, admin = app.test_client(), app.test_client()
        log_in(support, make_staff(Role.STAFF_SUPPORT, email="support@example.com"), STAFF_PASSWORD)
        log_in(admin, make_staff(Role.STAFF_ADMIN, email="admin@example.com"), STAFF_PASSWORD)
        assert "book-difference" not in support.get("/admin/reconciliation").text
        admin_page = admin.get("/admin/reconciliation").text
        assert f'action="/admin/companies/{customer[0]}/book-difference"' in admin_page
        assert support.get(f"/admin/companies/{customer[0]}/adjust").status_code == 403
    finally:
        with app.app_context():
            db.session.execute(update(PrepaidBalance).where(PrepaidBalance.company_id == customer[0])
                               .values(balance=PrepaidBalance.balance - eur("5")))
            db.session.commit()


def test_a_drifted_balance_is_explained_by_an_adjustment_entry_not_an_overwrite(app, make_company, make_staff):
    from sqlalchemy import update

    from core.ledger.postings import verify_ledger
    from app.extensions import db
    from core.schema import AuditRecord, BalanceTransaction, PrepaidBalance, Role
    from core.money import eur
    from tests.helpers import csrf_token_from, log_in

    company_id, _ = make_company(balance=eur("10"))
    with app.app_context():
        db.session.execute(update(PrepaidBalance).where(PrepaidBalance.company_id == company_id)
                           .values(balance=eur("12.5")))
        db.session.commit()
    admin = app.test_client()
    log_in(admin, make_staff(Role.STAFF_ADMIN, "drift-admin@example.com"), "staff-password-1")
    page = admin.get("/admin/reconciliation").text
    assert "Differenz buchen" in page
    admin.post(f"/admin/companies/{company_id}/book-difference",
               data={"reason": "Direkte Datenbankänderung vom 3.11.", "csrf_token": csrf_token_from(page)})
    with app.app_context():
        assert verify_ledger(db.session) == []
        assert db.session.get(PrepaidBalance, company_id).balance == eur("12.5")  # the balance was not overwritten
        entry = db.session.query(BalanceTransaction).order_by(BalanceTransaction.id.desc()).first()
        assert (entry.type, entry.amount, entry.balance_before) == ("adjustment", eur("2.5"), eur("10"))
        assert db.session.query(AuditRecord.action).scalar() == "ledger.book_difference"
    assert app.test_cli_runner().invoke(args=["billing", "reconcile"]).exit_code == 0


@pytest.mark.parametrize("stripe_says, problem", [
    ({"amount_received": 100}, "amount_mismatch"),
    ({"currency": "usd"}, "currency_mismatch"),
    ({"customer": "cus_of_another_company"}, "customer_mismatch"),
])
def test_a_credited_top_up_is_compared_with_stripes_payment_not_only_found(app, customer, since, stripe_says, problem):
    from sqlalchemy import select

    from core.schema import Topup
    from tests.web.test_review_topups import stripe_shows

    top_up(customer[1], "100")
    with app.app_context():
        intent_id = db.session.scalar(select(Topup.stripe_payment_intent_id).where(Topup.company_id == customer[0]))
    assert reconcile(app, "--since", since).exit_code == 0
    stripe_shows(app.extensions["stripe_sandbox"], intent_id, **stripe_says)
    result = reconcile(app, "--since", since)
    assert result.exit_code == 1 and "[topup_evidence_mismatch]" in result.output
    with app.app_context():
        from core.backoffice.reconcile import reconcile as findings_of

        [finding] = findings_of(db.session, app.extensions["stripe_gateway"], since=datetime.fromisoformat(since))
    assert (finding.kind, finding.problem, finding.company_id) == ("topup_evidence_mismatch", problem, customer[0])

