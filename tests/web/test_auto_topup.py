"""Automatic top-ups through the sandbox and the real `stripe` library: settings page, the engine's
single flight, limits, declines, authentication, switching off, SEPA, exactly-once crediting."""

import re
import threading
from datetime import timedelta

import pytest
from rq import Queue
from sqlalchemy import event, select

from app.jobs import FOLLOWUP_JOBS, Job, run_auto_topup, settle_auto_topups
from app.queue import BILLING
from core.followups import Followup
from core.calls.api_keys import create_api_key
from core.payments.auto_topup import AutoTopupPolicy, maybe_trigger
from core.payments.bonuses import create_rule
from app.extensions import db
from core.schema import (
    AutoTopupAttempt, BalanceTransaction, Invoice, PrepaidBalance, SentEmail, Topup, WebhookEvent,
)
from core.money import eur
from tests.builders import add_hold
from tests.helpers import csrf_token_from, log_in
from tests.stripe_helpers import CARD_3DS, CARD_DECLINED, CARD_OK, IBAN_FAILS, IBAN_OK, authenticate, path_of, pay, top_up

PAGE = "/business/billing/auto-topup"
METHOD_ID = re.compile(r"/business/billing/payment-methods/(pm_[A-Za-z0-9]+)/remove")


# -- helpers --------------------------------------------------------------------------------------------

def save_method(client, option=CARD_OK) -> str:
    """Add a payment method through Checkout in setup mode (3-D Secure confirmed when asked); its id."""
    page = client.get("/business/billing/payment-methods").text
    before = set(METHOD_ID.findall(page))
    started = client.post("/business/billing/payment-methods", data={"csrf_token": csrf_token_from(page)})
    checkout_url = started.headers["Location"]
    done = pay(client, checkout_url, option)
    if "payment-methods?added=1" not in done.headers.get("Location", ""):
        done = authenticate(client, checkout_url, "complete")
    assert "payment-methods?added=1" in done.headers["Location"]
    [added] = set(METHOD_ID.findall(client.get(path_of(done.headers["Location"])).text)) - before
    return added


def save_settings(client, headers=None, **fields):
    token = csrf_token_from(client.get(PAGE).text)
    data = {"csrf_token": token, "enabled": "y", "threshold": "20", "amount": "100", "daily_limit": "2",
            "monthly_cap": "", "payment_method": ""}
    data.update(fields)
    return client.post(PAGE, data={key: value for key, value in data.items() if value is not None},
                       headers=headers or {})


def configure(client, option=CARD_OK, **fields) -> str:
    method_id = save_method(client, option)
    saved = save_settings(client, payment_method=method_id, **fields)
    assert saved.status_code == 303, saved.text
    return method_id


def api_key(app, company_id) -> str:
    with app.app_context():
        key = create_api_key(db.session, company_id, "Telefonanlage")[1]
        db.session.commit()
        return key


class Calls:
    """The telephony platform reporting ended calls through the usage API."""

    def __init__(self, app, company_id):
        self.client = app.test_client()
        self.key = api_key(app, company_id)
        self.count = 0

    def end(self, seconds=60):
        self.count += 1
        answer = self.client.post(f"/api/v1/calls/call-{self.count}/end", json={"duration_seconds": seconds},
                                  headers={"Authorization": f"Bearer {self.key}"})
        assert answer.status_code == 200, answer.text
        return answer.get_json()


def attempts(app, company_id):
    with app.app_context():
        rows = db.session.scalars(select(AutoTopupAttempt).where(AutoTopupAttempt.company_id == company_id)
                                  .order_by(AutoTopupAttempt.id)).all()
        db.session.expunge_all()
        return rows


def statuses(app, company_id):
    return [attempt.status for attempt in attempts(app, company_id)]


def age_attempts(app, company_id, delta):
    """Move the company's attempts into the past (as if they had been made ``delta`` earlier)."""
    with app.app_context():
        for attempt in db.session.scalars(select(AutoTopupAttempt).where(AutoTopupAttempt.company_id == company_id)):
            attempt.created_at -= delta
        db.session.commit()


def account(app, company_id) -> PrepaidBalance:
    with app.app_context():
        row = db.session.get(PrepaidBalance, company_id)
        db.session.expunge_all()
        return row


def emails(app, company_id, kind=None):
    with app.app_context():
        query = select(SentEmail).where(SentEmail.company_id == company_id).order_by(SentEmail.id)
        if kind:
            query = query.where(SentEmail.kind == kind)
        rows = db.session.scalars(query).all()
        db.session.expunge_all()
        return rows


def auto_topups(app, company_id):
    with app.app_context():
        rows = db.session.scalars(select(Topup).where(Topup.company_id == company_id, Topup.kind == "auto")
                                  .order_by(Topup.id)).all()
        db.session.expunge_all()
        return rows


@pytest.fixture
def customer(app, client, make_company):
    """A company admin, logged in, with 25 € and a welcome bonus rule of 10 € from 100 €."""
    company_id, email = make_company(name="Automatik GmbH", balance=eur("25"))
    with app.app_context():
        create_rule(db.session, "Willkommensbonus", eur("100"), fixed_amount=eur("10"))
        db.session.commit()
    log_in(client, email)
    return company_id


# -- the happy path ----------------------------------------------------------------------------------------

def test_a_call_below_the_threshold_tops_up_once_with_bonus_invoice_and_emails(app, client, customer, sandbox):
    configure(client)
    calls = Calls(app, customer)
    calls.end(seconds=15 * 60)  # 6,30 €: 25 → 18,70 €, below 20 €
    assert statuses(app, customer) == ["succeeded"]
    assert account(app, customer).balance == eur("128.70")  # 18,70 + 100 + 10 bonus

    [topup] = auto_topups(app, customer)
    assert (topup.status, topup.amount, topup.bonus_amount, topup.charged_cents) == ("credited", eur("100"), eur("10"), 10000)
    [attempt] = attempts(app, customer)
    assert attempt.topup_id == topup.id
    # The webhook for the same PaymentIntent arrived too (it found the top-up through the metadata)...
    succeeded = [event for event in sandbox.events if event["type"] == "payment_intent.succeeded"
                 and event["data"]["object"]["id"] == topup.stripe_payment_intent_id]
    assert [event["data"]["object"]["metadata"]["topup_id"] for event in succeeded] == [str(topup.id)]
    assert succeeded[0]["request"]["idempotency_key"] == f"topup-{topup.request_key}-auto"
    with app.app_context():
        assert db.session.scalar(select(WebhookEvent.status).where(WebhookEvent.stripe_event_id == succeeded[0]["id"])) == "processed"
    # ... and delivering it again changes nothing: credited once, bonus once.
    sandbox.redeliver(succeeded[0]["id"])
    with app.app_context():
        types = sorted(db.session.scalars(select(BalanceTransaction.type).where(
            BalanceTransaction.company_id == customer, BalanceTransaction.reference_id == str(topup.id))))
        assert types == ["bonus", "topup"]
        assert db.session.scalar(select(Invoice.gross_cents).where(Invoice.topup_id == topup.id)) == 10000
    assert account(app, customer).balance == eur("128.70")
    assert sorted(email.kind for email in emails(app, customer)) == ["auto_topup_succeeded", "topup_receipt"]
    [mail] = emails(app, customer, "auto_topup_succeeded")
    assert (mail.status, mail.context["amount"], mail.context["bonus"]) == ("sent", eur("100"), eur("10"))

    page = client.get(PAGE).text
    assert 'data-status="succeeded"' in page and "100,00\xa0€" in page and "10,00\xa0€" in page
    assert 'data-testid="balance">128,70\xa0€' in client.get("/business/billing").text

    calls.end()  # well above the threshold now: nothing more
    assert len(attempts(app, customer)) == 1


def test_concurrent_charges_start_a_single_attempt(app, client, customer, redis_jobs):
    configure(client)
    with app.app_context():
        add_hold(db.session, customer, eur("10"))  # available 15 € < 20 €
        db.session.commit()
    barrier = threading.Barrier(8)
    results, errors = [], []

    def charge_ended():
        try:
            with app.app_context():
                barrier.wait()
                attempt = maybe_trigger(db.session, customer, policy=AutoTopupPolicy())
                results.append(attempt.id if attempt else None)
                db.session.commit()  # as the usage API does after a call's charge
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=charge_ended) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    [attempt] = attempts(app, customer)
    assert attempt.status == "pending" and [r for r in results if r] == [attempt.id]
    [job] = Queue("billing", connection=redis_jobs).jobs
    assert (job.func, job.args) == (run_auto_topup, (attempt.id,))
    with app.app_context():  # the pending attempt blocks the next one
        assert maybe_trigger(db.session, customer, policy=AutoTopupPolicy()) is None

    with app.app_context():
        run_auto_topup(attempt.id)
        run_auto_topup(attempt.id)  # a job run twice charges and credits once
    assert statuses(app, customer) == ["succeeded"]
    assert len(auto_topups(app, customer)) == 1
    assert account(app, customer).balance == eur("135")  # 25 + 100 + 10


# -- limits ----------------------------------------------------------------------------------------------------

def test_the_daily_limit_skips_further_attempts_and_tells_the_customer_once(app, client, customer):
    configure(client, threshold="500", amount="10", daily_limit="2")  # every call is below 500 €
    calls = Calls(app, customer)
    for _ in range(4):
        calls.end()
    assert statuses(app, customer) == ["succeeded", "succeeded", "skipped"]
    skipped = attempts(app, customer)[-1]
    assert (skipped.reason, skipped.topup_id) == ("daily_limit", None)
    assert len(auto_topups(app, customer)) == 2  # nothing charged for the skipped one
    [told] = emails(app, customer, "auto_topup_limit_reached")
    assert (told.status, told.context["limit_reason"]) == ("sent", "daily_limit")
    page = client.get(PAGE).text
    assert 'data-status="skipped"' in page
    assert "Das Tageslimit für automatische Aufladungen war erreicht." in page

    # The next local day counts afresh.
    age_attempts(app, customer, timedelta(days=1))
    calls.end()
    assert statuses(app, customer) == ["succeeded", "succeeded", "skipped", "succeeded"]


def test_the_monthly_cap_skips_an_attempt_that_would_exceed_it(app, client, customer):
    configure(client, threshold="500", amount="10", daily_limit="10", monthly_cap="25")
    calls = Calls(app, customer)
    for _ in range(4):
        calls.end()
    assert statuses(app, customer) == ["succeeded", "succeeded", "skipped"]  # 10 + 10, a third 10 would make 30 > 25
    assert attempts(app, customer)[-1].reason == "monthly_cap"
    assert len(emails(app, customer, "auto_topup_limit_reached")) == 1
    assert "Die monatliche Obergrenze für automatische Aufladungen war erreicht." in client.get(PAGE).text


# -- failures ------------------------------------------------------------------------------------------------

def test_a_declined_card_records_the_reason_and_emails_the_customer(app, client, customer):
    configure(client, CARD_DECLINED)
    Calls(app, customer).end(seconds=15 * 60)
    [attempt] = attempts(app, customer)
    assert (attempt.status, attempt.reason, attempt.decline_code) == ("failed", "card_declined", "insufficient_funds")
    assert attempt.message == "Your card has insufficient funds."
    [topup] = auto_topups(app, customer)
    assert (topup.status, topup.failure_code) == ("failed", "card_declined")
    assert account(app, customer).balance == eur("18.70")
    assert account(app, customer).auto_topup_consecutive_failures == 1
    [mail] = emails(app, customer, "auto_topup_failed")
    assert (mail.status, mail.context["decline_code"], mail.context["consecutive_failures"]) == ("sent", "insufficient_funds", 1)
    page = client.get(PAGE).text
    assert 'data-status="failed"' in page and "Die Karte ist nicht ausreichend gedeckt." in page


def test_three_failed_payments_in_a_row_switch_auto_top_up_off(app, client, customer):
    configure(client, CARD_DECLINED, daily_limit="10")
    calls = Calls(app, customer)
    calls.end(seconds=15 * 60)
    for _ in range(3):
        calls.end()
    assert statuses(app, customer) == ["failed", "failed", "failed"]  # the fourth call found it switched off
    state = account(app, customer)
    assert (state.auto_topup_enabled, state.auto_topup_consecutive_failures) == (False, 3)
    assert len(emails(app, customer, "auto_topup_failed")) == 3
    [disabled] = emails(app, customer, "auto_topup_disabled")
    assert disabled.context == {"failures": 3}
    page = client.get(PAGE).text
    assert 'data-testid="auto-topup-switched-off"' in page
    assert "nach 3 fehlgeschlagenen Zahlungen in Folge ausgeschaltet" in page
    assert "Automatische Aufladung: aus" in client.get("/business/billing").text

    # Turning it back on (here with a working card) starts the count afresh.
    method_id = save_method(client, CARD_OK)
    assert save_settings(client, payment_method=method_id, daily_limit="10").status_code == 303
    assert account(app, customer).auto_topup_consecutive_failures == 0
    calls.end()
    assert statuses(app, customer)[-1] == "succeeded"


def test_a_card_that_needs_authentication_asks_the_customer_once_and_is_not_retried(app, client, customer):
    configure(client, CARD_3DS, daily_limit="10")
    calls = Calls(app, customer)
    calls.end(seconds=15 * 60)
    calls.end()
    calls.end()
    [attempt] = attempts(app, customer)  # no loop: the later calls started nothing
    assert (attempt.status, attempt.reason) == ("action_required", "authentication_required")
    assert account(app, customer).auto_topup_consecutive_failures == 0
    [mail] = emails(app, customer, "auto_topup_action_required")
    assert mail.context["action_url"].endswith("/business/billing/topup?amount=100")
    page = client.get(PAGE).text
    assert 'data-testid="auto-topup-action-required"' in page and 'href="/business/billing/topup?amount=100"' in page
    assert 'data-status="action_required"' in page

    # The customer completes the payment through the link: a normal Checkout top-up of the amount.
    form = client.get(path_of(mail.context["action_url"])).text
    assert 'value="100"' in form
    top_up(client, "100", CARD_OK)
    assert account(app, customer).balance == eur("127.86")  # 25 − 3 calls (6,30 + 0,42 + 0,42) + 100 + 10 bonus
    assert 'data-testid="auto-topup-action-required"' not in client.get(PAGE).text
    calls.end(seconds=260 * 60)  # 109,20 €: below the threshold again, and nothing holds it back any more
    assert statuses(app, customer) == ["action_required", "action_required"]
    assert len(emails(app, customer, "auto_topup_action_required")) == 2


def test_an_unanswered_authentication_request_holds_back_new_attempts_for_a_day(app, client, customer):
    configure(client, CARD_3DS, daily_limit="10")
    calls = Calls(app, customer)
    calls.end(seconds=15 * 60)
    calls.end()
    assert statuses(app, customer) == ["action_required"]
    age_attempts(app, customer, timedelta(hours=25))
    calls.end()
    assert statuses(app, customer) == ["action_required", "action_required"]


# -- SEPA ------------------------------------------------------------------------------------------------------

def test_a_sepa_attempt_stays_processing_until_the_bank_settles(app, client, customer, sandbox):
    configure(client, IBAN_OK)
    calls = Calls(app, customer)
    calls.end(seconds=15 * 60)
    assert statuses(app, customer) == ["processing"]
    [topup] = auto_topups(app, customer)
    assert (topup.status, topup.payment_method_type) == ("processing", "sepa_debit")
    assert account(app, customer).balance == eur("18.70")
    calls.end()  # still below the threshold, but one attempt is in flight
    assert len(attempts(app, customer)) == 1
    assert 'data-status="processing"' in client.get(PAGE).text

    assert sandbox.settle_pending() == 1  # the bank pays; payment_intent.succeeded credits the top-up
    assert account(app, customer).balance == eur("128.28")  # 18,70 − 0,42 + 100 + 10
    page = client.get(PAGE).text  # the attempt follows its top-up
    assert 'data-status="succeeded"' in page and 'data-status="processing"' not in page
    assert statuses(app, customer) == ["succeeded"]
    assert len(emails(app, customer, "auto_topup_succeeded")) == 1


def test_the_settled_hook_finishes_the_attempt_without_waiting_for_a_page_view(app, client, customer, sandbox):
    configure(client, IBAN_OK)
    Calls(app, customer).end(seconds=15 * 60)
    sandbox.settle_pending()
    [topup] = auto_topups(app, customer)
    from app.jobs import auto_topup_settled
    with app.app_context():
        auto_topup_settled(topup.id)
        auto_topup_settled(topup.id)  # twice: still one success email
    assert statuses(app, customer) == ["succeeded"]
    assert len(emails(app, customer, "auto_topup_succeeded")) == 1


def lose_the_job(*_ids):
    """Stands in for a follow-up job that never ran (e.g. Redis was flushed)."""


class Writes:
    """The INSERT, UPDATE and DELETE statements the app's engine sends while the block runs."""

    def __init__(self, app):
        with app.app_context():
            self.engine = db.engine
        self.statements: list[str] = []

    def _note(self, _connection, _cursor, statement, *_args):
        if statement.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            self.statements.append(statement)

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._note)
        return self

    def __exit__(self, *_exc):
        event.remove(self.engine, "before_cursor_execute", self._note)


def test_viewing_the_settings_page_writes_nothing_and_the_periodic_job_settles_a_lagging_attempt(
        app, client, customer, sandbox, monkeypatch):
    configure(client, IBAN_OK)
    Calls(app, customer).end(seconds=15 * 60)
    monkeypatch.setitem(FOLLOWUP_JOBS, Followup.AUTO_TOPUP_SETTLED, Job(lose_the_job, BILLING))
    assert sandbox.settle_pending() == 1  # the bank pays, but the attempt's follow-up job is lost
    with Writes(app) as writes:
        page = client.get(PAGE)
        history = client.get(f"{PAGE}/history")
    assert (page.status_code, history.status_code) == (200, 200)
    assert writes.statements == []
    assert 'data-status="processing"' in page.text  # shown as stored: a GET settles nothing
    assert statuses(app, customer) == ["processing"] and emails(app, customer, "auto_topup_succeeded") == []

    with app.app_context():
        assert settle_auto_topups() == 1
    assert statuses(app, customer) == ["succeeded"]
    assert len(emails(app, customer, "auto_topup_succeeded")) == 1
    assert 'data-status="succeeded"' in client.get(PAGE).text


def test_a_failed_sepa_debit_fails_the_attempt_and_counts_as_a_failure(app, client, customer, sandbox):
    configure(client, IBAN_FAILS)
    calls = Calls(app, customer)
    calls.end(seconds=15 * 60)
    assert statuses(app, customer) == ["processing"]
    sandbox.settle_pending()
    calls.end()  # the next charge brings the attempt in line first, then tries again
    first, second = attempts(app, customer)
    assert (first.status, first.reason) == ("failed", "insufficient_funds")
    assert second.status == "processing"
    assert account(app, customer).auto_topup_consecutive_failures == 1
    assert len(emails(app, customer, "auto_topup_failed")) == 1
    assert account(app, customer).balance == eur("18.28")


# -- the engine's other guards -----------------------------------------------------------------------------------

def test_the_global_switch_stops_automatic_top_ups(app, client, customer, monkeypatch):
    configure(client)
    monkeypatch.setitem(app.config, "AUTO_TOPUP_ENABLED", False)
    Calls(app, customer).end(seconds=15 * 60)
    assert attempts(app, customer) == []
    assert 'data-testid="auto-topup-paused"' in client.get(PAGE).text


def test_a_job_for_a_switched_off_setting_charges_nothing(app, client, customer, redis_jobs):
    configure(client)
    Calls(app, customer).end(seconds=15 * 60)
    [attempt] = attempts(app, customer)
    assert save_settings(client, enabled=None, payment_method="").status_code == 303
    with app.app_context():
        run_auto_topup(attempt.id)
    [attempt] = attempts(app, customer)
    assert (attempt.status, attempt.reason) == ("skipped", "disabled")
    assert auto_topups(app, customer) == []


# -- the settings page ---------------------------------------------------------------------------------------------

def test_settings_are_saved_and_shown_on_the_dashboard(app, client, customer):
    method_id = save_method(client)
    saved = save_settings(client, payment_method=method_id, threshold="30,50", amount="250", daily_limit="3",
                          monthly_cap="1.000")
    assert saved.status_code == 303 and saved.headers["Location"].endswith(PAGE)
    state = account(app, customer)
    assert (state.auto_topup_enabled, state.auto_topup_threshold, state.auto_topup_amount, state.auto_topup_payment_method_id,
            state.auto_topup_daily_limit, state.auto_topup_monthly_cap) == (
        True, eur("30.50"), eur("250"), method_id, 3, eur("1000"))
    page = client.get(PAGE).text
    assert 'value="30,50"' in page and 'value="250"' in page and f'value="{method_id}" selected' in page
    assert "Die Einstellungen für die automatische Aufladung wurden gespeichert." in page
    dashboard = client.get("/business/billing").text
    assert "Automatische Aufladung: an" in dashboard and "250,00\xa0€" in dashboard


def test_invalid_settings_answer_422_with_translated_messages(app, client, customer, make_company):
    method_id = save_method(client)
    answer = save_settings(client, payment_method=method_id, amount="5", monthly_cap="", threshold="zwanzig",
                           daily_limit="0")
    assert answer.status_code == 422
    page = answer.text
    assert "Bitte geben Sie den Betrag als Zahl ein, z. B. 150 oder 150,50." in page  # the threshold
    assert "Bitte geben Sie eine ganze Zahl von 1 bis 24 ein." in page
    answer = save_settings(client, payment_method=method_id, amount="5")
    assert answer.status_code == 422
    assert "Aufladungen sind von 10,00\xa0€ bis 10.000,00\xa0€ möglich." in answer.text
    answer = save_settings(client, payment_method=method_id, amount="100", monthly_cap="50")
    assert answer.status_code == 422
    assert "Die monatliche Obergrenze muss mindestens so hoch sein wie der Aufladebetrag (100,00\xa0€)." in answer.text
    answer = save_settings(client, payment_method="")
    assert answer.status_code == 422
    assert "Bitte wählen Sie eine gespeicherte Zahlungsmethode, um die automatische Aufladung einzuschalten." in answer.text
    assert account(app, customer).auto_topup_enabled is False  # nothing was stored

    # The same in English, and as an htmx request: only the form comes back, to be swapped in place.
    answer = save_settings(client, payment_method=method_id, amount="100", monthly_cap="50",
                           headers={"HX-Request": "true", "Accept-Language": "en"})
    assert answer.status_code == 422 and "<html" not in answer.text and 'id="auto-topup-form"' in answer.text
    assert "The monthly cap must be at least the top-up amount (€100.00)." in answer.text


def test_another_companys_payment_method_cannot_be_chosen(app, client, customer, make_company):
    _, other_email = make_company(name="Fremd GmbH")
    other = app.test_client()
    log_in(other, other_email)
    foreign = save_method(other)
    answer = save_settings(client, payment_method=foreign)
    assert answer.status_code == 422
    assert "Bitte wählen Sie eine Ihrer gespeicherten Zahlungsmethoden." in answer.text
    assert account(app, customer).auto_topup_payment_method_id is None


def test_members_see_the_settings_and_history_read_only(app, client, make_company):
    company_id, email = make_company(member=True, balance=eur("25"))
    with app.app_context():
        db.session.add(AutoTopupAttempt(company_id=company_id, amount=eur("50"), status="failed", reason="card_declined"))
        db.session.commit()
    log_in(client, email)
    page = client.get(PAGE)
    assert page.status_code == 200
    assert "<fieldset disabled>" in page.text and 'data-testid="save-auto-topup"' not in page.text
    assert 'data-status="failed"' in page.text
    answer = client.post(PAGE, data={"csrf_token": csrf_token_from(page.text), "enabled": "y", "threshold": "20",
                                     "amount": "100", "daily_limit": "2"})
    assert answer.status_code == 403
    assert account(app, company_id).auto_topup_enabled is False


def test_another_companys_attempts_are_never_visible(app, client, customer, make_company):
    other_id, _ = make_company(name="Andere AG")
    with app.app_context():
        db.session.add(AutoTopupAttempt(company_id=other_id, amount=eur("777"), status="succeeded"))
        db.session.commit()
    for url in (PAGE, PAGE + "/history"):
        page = client.get(url).text
        assert "777,00" not in page
        assert "Noch keine automatischen Aufladungen." in page


def test_the_history_polls_only_while_an_attempt_is_in_flight(app, client, customer, sandbox):
    configure(client, IBAN_OK)
    Calls(app, customer).end(seconds=15 * 60)
    polling = client.get(PAGE + "/history", headers={"HX-Request": "true"})
    assert polling.status_code == 200 and 'hx-trigger="every 5s"' in polling.text and "<html" not in polling.text
    assert "HX-Request" in polling.headers["Vary"]
    sandbox.settle_pending()
    done = client.get(PAGE + "/history", headers={"HX-Request": "true"})
    assert done.status_code == 286 and 'data-status="succeeded"' in done.text and "every 5s" not in done.text
    assert "<html" in client.get(PAGE + "/history").text  # without htmx: the whole page


def test_saving_settings_needs_csrf(client, customer):
    assert client.post(PAGE, data={"enabled": "y", "threshold": "20", "amount": "100"}).status_code == 400
