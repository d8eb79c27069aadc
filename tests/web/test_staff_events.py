"""Staff: Stripe events (list, filter, payload, replay) and failed payments (retry link by email)."""

import json

import pytest
from sqlalchemy import func, select

from app.jobs import mail_settings
from core.notifications.mail import build_message
from app.extensions import db
from core.schema import (
    AuditRecord, BalanceTransaction, PrepaidBalance, Role, SentEmail, Topup, WebhookEvent,
)
from core.money import eur
from tests.conftest import STAFF_PASSWORD
from tests.helpers import csrf_token_from, log_in
from tests.stripe_helpers import CARD_DECLINED, pay, top_up

ROUTES = [("get", "/admin/stripe-events"), ("get", "/admin/stripe-events/1"),
          ("post", "/admin/stripe-events/1/replay"), ("post", "/admin/stripe-events/replay-failed"),
          ("get", "/admin/failed-payments"), ("post", "/admin/failed-payments/1/retry"),
          ("get", "/admin/reconciliation")]


@pytest.fixture
def customer(app, make_company):
    return make_company(name="Ereignis GmbH")


def staff_client(app, make_staff, role=Role.STAFF_SUPPORT):
    client = app.test_client()
    email = make_staff(role, email=f"{role.value}@example.com")
    assert log_in(client, email, STAFF_PASSWORD).status_code == 303
    return client


def paid_topup(app, customer, amount="100"):
    client = app.test_client()
    log_in(client, customer[1])
    _, answer = top_up(client, amount)
    assert answer.status_code == 303
    return client


def balance(app, company_id):
    with app.app_context():
        return db.session.get(PrepaidBalance, company_id).balance


def ledger_count(app):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(BalanceTransaction))


def post(client, path, data=None, page="/admin/stripe-events"):
    token = csrf_token_from(client.get(page).text)
    return client.post(path, data={"csrf_token": token, **(data or {})})


def call(client, method, path):
    if method == "get":
        return client.get(path)
    return client.post(path, data={"csrf_token": csrf_token_from(client.get("/login").text)})


@pytest.mark.parametrize("method,path", ROUTES)
def test_anonymous_users_are_sent_to_the_login_page(client, method, path):
    answer = call(client, method, path)
    assert answer.status_code in (302, 303) and "/login" in answer.headers["Location"]


@pytest.mark.parametrize("method,path", ROUTES)
def test_customers_get_a_404_on_every_staff_route(app, customer, method, path):
    client = app.test_client()
    log_in(client, customer[1])
    if method == "post":  # a valid CSRF token, so the 404 is the access rule's answer
        token = csrf_token_from(client.get("/business/billing/topup").text)
        assert client.post(path, data={"csrf_token": token}).status_code == 404
    else:
        assert client.get(path).status_code == 404


def test_the_event_list_shows_stored_events_and_filters_by_type_status_company_and_date(app, customer, make_staff):
    paid_topup(app, customer)
    staff = staff_client(app, make_staff)
    page = staff.get("/admin/stripe-events")
    assert page.status_code == 200 and "checkout.session.completed" in page.text
    assert "HX-Request" in page.headers["Vary"]
    only = staff.get("/admin/stripe-events?type=payment_intent.succeeded").text
    assert "<td>payment_intent.succeeded</td>" in only and "<td>checkout.session.completed</td>" not in only
    assert "data-status" not in staff.get("/admin/stripe-events?status=failed").text
    assert 'data-status="processed"' in staff.get(f"/admin/stripe-events?company={customer[0]}").text
    assert 'data-status' not in staff.get(f"/admin/stripe-events?company={customer[0] + 999}").text
    assert 'data-status' not in staff.get("/admin/stripe-events?to=2000-01-01").text
    partial = staff.get("/admin/stripe-events?status=processed", headers={"HX-Request": "true"}).text
    assert partial.startswith('<div id="event-rows"') and "<html" not in partial


def test_an_event_shows_its_payload_and_the_ledger_entries_it_produced(app, customer, make_staff):
    paid_topup(app, customer)
    with app.app_context():
        event = db.session.scalar(select(WebhookEvent).where(WebhookEvent.type == "payment_intent.succeeded"))
        entry_id = db.session.scalar(select(BalanceTransaction.id).where(BalanceTransaction.reference_type == "topup"))
    staff = staff_client(app, make_staff)
    page = staff.get(f"/admin/stripe-events/{event.id}").text
    assert event.stripe_event_id in page and "&#34;object&#34;: &#34;event&#34;" in page
    assert f'data-entry-id="{entry_id}"' in page
    assert staff.get("/admin/stripe-events/999999").status_code == 404


def test_replaying_a_processed_event_changes_nothing_and_is_audited(app, customer, make_staff):
    paid_topup(app, customer)
    before_balance, before_rows = balance(app, customer[0]), ledger_count(app)
    with app.app_context():
        event_id = db.session.scalar(select(WebhookEvent.id).where(WebhookEvent.type == "payment_intent.succeeded"))
    staff = staff_client(app, make_staff)
    answer = post(staff, f"/admin/stripe-events/{event_id}/replay")
    assert answer.status_code == 303
    assert (balance(app, customer[0]), ledger_count(app)) == (before_balance, before_rows)
    with app.app_context():
        assert db.session.get(WebhookEvent, event_id).status == "processed"
        assert db.session.scalar(select(AuditRecord.action).where(AuditRecord.target_id == str(event_id))) == \
            "webhook.replay"


def test_replaying_all_failed_events_credits_the_payment_once(app, customer, make_staff, webhooks):
    webhooks.hold = True
    client = app.test_client()
    log_in(client, customer[1])
    top_up(client, "50")
    assert balance(app, customer[0]) == 0  # the webhooks are held: nothing credited yet
    held = [json.loads(p) for p, _ in webhooks.held]
    with app.app_context():  # as if each delivery had been stored and then failed in its handler
        for event in held:
            db.session.add(WebhookEvent(stripe_event_id=event["id"], type=event["type"], payload=event,
                                        status="failed", error="RuntimeError: database was down", attempts=1))
        db.session.commit()
    staff = staff_client(app, make_staff)
    assert 'data-status="failed"' in staff.get("/admin/stripe-events?status=failed").text
    answer = post(staff, "/admin/stripe-events/replay-failed")
    assert answer.status_code == 303
    assert balance(app, customer[0]) == eur("50")
    rows = ledger_count(app)
    with app.app_context():
        statuses = set(db.session.scalars(select(WebhookEvent.status)))
        assert statuses <= {"processed", "ignored"}
        assert db.session.scalar(select(Topup.status).where(Topup.company_id == customer[0])) == "credited"
    post(staff, "/admin/stripe-events/replay-failed")  # nothing failed any more: a no-op
    assert (balance(app, customer[0]), ledger_count(app)) == (eur("50"), rows)


def test_a_failing_replay_stays_failed_with_its_error(app, make_staff):
    with app.app_context():
        row = WebhookEvent(stripe_event_id="evt_broken", type="payment_intent.succeeded",
                           payload={"id": "evt_broken", "data": {"object": {"object": "payment_intent"}}},
                           status="failed", error="old", attempts=1)
        db.session.add(row)
        db.session.commit()
        event_id = row.id
    staff = staff_client(app, make_staff)
    post(staff, f"/admin/stripe-events/{event_id}/replay")
    with app.app_context():
        row = db.session.get(WebhookEvent, event_id)
        assert (row.status, row.attempts) == ("failed", 2) and "KeyError" in row.error


def test_failed_payments_list_codes_and_a_retry_emails_a_new_checkout_link(app, customer, make_staff):
    client = app.test_client()
    log_in(client, customer[1])
    top_up(client, "100", CARD_DECLINED)
    with app.app_context():
        failed = db.session.scalar(select(Topup).where(Topup.company_id == customer[0]))
        failed_id = failed.id
        assert failed.status == "failed"
    staff = staff_client(app, make_staff)
    page = staff.get("/admin/failed-payments").text
    assert f'data-topup-id="{failed_id}"' in page and "card_declined" in page and "insufficient_funds" in page
    answer = post(staff, f"/admin/failed-payments/{failed_id}/retry", page="/admin/failed-payments")
    assert answer.status_code == 303
    with app.app_context():
        topups = db.session.scalars(select(Topup).where(Topup.company_id == customer[0]).order_by(Topup.id)).all()
        assert len(topups) == 2 and topups[1].amount == topups[0].amount and topups[1].status == "pending"
        audit = db.session.scalar(select(AuditRecord).where(AuditRecord.action == "topup.retry_link"))
        assert audit.target_id == str(failed_id) and audit.after["retry_topup_id"] == topups[1].id
        email = db.session.scalar(select(SentEmail).where(SentEmail.dedupe_key == f"topup-retry:{topups[1].id}"))
        assert email.recipient == customer[1] and email.context["retry_url"].startswith("http")
        body = build_message(db.session, email, mail_settings()).get_body(("plain",)).get_content()
        assert email.context["retry_url"] in body
        retry_url = email.context["retry_url"]
    assert "Link sent" in staff.get("/admin/failed-payments").text or "Link gesendet" in \
        staff.get("/admin/failed-payments").text
    # the company pays through the emailed link: the new top-up is credited
    assert pay(client, retry_url).status_code == 303
    assert balance(app, customer[0]) == eur("100")


def test_only_failed_top_ups_can_be_retried(app, customer, make_staff):
    paid_topup(app, customer)
    with app.app_context():
        topup_id = db.session.scalar(select(Topup.id).where(Topup.company_id == customer[0]))
    staff = staff_client(app, make_staff)
    post(staff, f"/admin/failed-payments/{topup_id}/retry", page="/admin/failed-payments")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Topup)) == 1
    assert post(staff, "/admin/failed-payments/999999/retry", page="/admin/failed-payments").status_code == 404
