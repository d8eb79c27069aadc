"""Customer emails through a real SMTP server on loopback (aiosmtpd) and the outbox folder."""

from __future__ import annotations

import io
import logging
import re
import tempfile
import threading
import time
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from core.accounts.users import create_user
from app.jobs import mail_settings
from core.notifications.mail import (
    EmailKind, OutboxTransport, SmtpTransport, deliver, message_id, record_email, transport_from_config,
)
from app.extensions import db
from core.schema import Company, EmailStatus, Invoice, Role, SentEmail, User
from core.money import eur
from tests.conftest import COMPANY_PASSWORD
from tests.mail_helpers import SmtpSink, free_port, subject_of, text_of

AMOUNT = eur("1234.56")  # every money value below, so both locales' formats are easy to spot
GERMAN_AMOUNT, ENGLISH_AMOUNT = "1.234,56 €", "€1,234.56"
BASE = "http://127.0.0.1:5000"
ACTION_URL = "https://checkout.example.com/authenticate/pi_123?step=3ds&x=1"

# kind -> (context, {language: (subject, phrases the text part contains)})
CASES = {
    EmailKind.TOPUP_RECEIPT: (
        {"amount": AMOUNT, "bonus": eur("50"), "balance": AMOUNT, "topup_id": 7, "invoice_number": "RE-2025-000042"},
        {"de": (f"Beleg für Ihre Aufladung über {GERMAN_AMOUNT}",
                ["Vielen Dank für Ihre Aufladung", f"Neues Guthaben: {GERMAN_AMOUNT}", "Bonus: 50,00 €",
                 "Rechnungsnummer: RE-2025-000042", "im Anhang", f"{BASE}/business/billing/invoices"]),
         "en": (f"Receipt for your top-up of {ENGLISH_AMOUNT}",
                ["Thank you for your top-up", f"New balance: {ENGLISH_AMOUNT}", "Bonus: €50.00",
                 "Invoice number: RE-2025-000042", "attached", f"{BASE}/business/billing/invoices"])},
    ),
    EmailKind.PAYMENT_FAILED: (
        {"amount": AMOUNT, "failure_code": "card_declined", "decline_code": "insufficient_funds", "balance": eur("3.5")},
        {"de": ("Zahlung fehlgeschlagen – Handlung erforderlich",
                ["Ihre Zahlung ist fehlgeschlagen", f"Betrag: {GERMAN_AMOUNT}", "Grund: Die Karte ist nicht ausreichend gedeckt.",
                 "Aktuelles Guthaben: 3,50 €", f"{BASE}/business/billing/payment-methods", f"{BASE}/business/billing/topup"]),
         "en": ("Payment Failed – Action Required",
                ["Your payment failed", f"Amount: {ENGLISH_AMOUNT}", "Reason: Insufficient funds on the card.",
                 "Current balance: €3.50", f"{BASE}/business/billing/payment-methods", f"{BASE}/business/billing/topup"])},
    ),
    EmailKind.LOW_BALANCE: (
        {"balance": AMOUNT, "threshold": eur("2000")},
        {"de": ("Ihr Prepaid-Guthaben ist niedrig",
                ["Ihr Guthaben wird knapp", f"Aktuelles Guthaben: {GERMAN_AMOUNT}", "Warnschwelle: 2.000,00 €",
                 "automatischen Aufladung", f"{BASE}/business/billing/topup", f"{BASE}/business/billing/auto-topup"]),
         "en": ("Your prepaid balance is low",
                ["Your balance is running low", f"Current balance: {ENGLISH_AMOUNT}", "Warning threshold: €2,000.00",
                 "automatic top-up", f"{BASE}/business/billing/topup", f"{BASE}/business/billing/auto-topup"])},
    ),
    EmailKind.AUTO_TOPUP_SUCCEEDED: (
        {"amount": AMOUNT, "bonus": 0, "balance": eur("1300")},
        {"de": (f"Automatische Aufladung über {GERMAN_AMOUNT} erfolgreich",
                ["Automatische Aufladung erfolgreich", f"Aufladebetrag: {GERMAN_AMOUNT}", "Neues Guthaben: 1.300,00 €"]),
         "en": (f"Automatic top-up of {ENGLISH_AMOUNT} succeeded",
                ["Automatic top-up successful", f"Top-up amount: {ENGLISH_AMOUNT}", "New balance: €1,300.00"])},
    ),
    EmailKind.AUTO_TOPUP_FAILED: (
        {"amount": AMOUNT, "failure_code": "card_declined", "decline_code": None, "consecutive_failures": 2},
        {"de": (f"Automatische Aufladung über {GERMAN_AMOUNT} fehlgeschlagen",
                [f"Betrag: {GERMAN_AMOUNT}", "Grund: Die Karte wurde abgelehnt.", "Fehlversuche in Folge: 2",
                 f"{BASE}/business/billing/payment-methods"]),
         "en": (f"Automatic top-up of {ENGLISH_AMOUNT} failed",
                [f"Amount: {ENGLISH_AMOUNT}", "Reason: The card was declined.", "Failed attempts in a row: 2",
                 f"{BASE}/business/billing/payment-methods"])},
    ),
    EmailKind.AUTO_TOPUP_ACTION_REQUIRED: (
        {"amount": AMOUNT, "action_url": ACTION_URL},
        {"de": ("Automatische Aufladung: Bitte bestätigen Sie die Zahlung",
                [f"automatische Aufladung über {GERMAN_AMOUNT}", f"Zahlung abschließen: {ACTION_URL}",
                 f"{BASE}/business/billing/auto-topup"]),
         "en": ("Automatic top-up: please confirm the payment",
                [f"automatic top-up of {ENGLISH_AMOUNT}", f"Complete payment: {ACTION_URL}",
                 f"{BASE}/business/billing/auto-topup"])},
    ),
    EmailKind.AUTO_TOPUP_LIMIT_REACHED: (
        {"amount": AMOUNT, "limit_reason": "daily_limit", "daily_limit": 2, "monthly_cap": None, "balance": eur("5")},
        {"de": ("Automatische Aufladung pausiert: Limit erreicht",
                ["heute schon 2 Mal gelaufen", "Guthaben: 5,00 €", f"{BASE}/business/billing/auto-topup"]),
         "en": ("Automatic top-up paused: limit reached",
                ["has already run 2 times today", "Balance: €5.00", f"{BASE}/business/billing/auto-topup"])},
    ),
    EmailKind.USER_INVITE: (
        {"set_password_url": ACTION_URL},
        {"de": ("Ihr Zugang zum Abrechnungsportal", ["Passwort festlegen: " + ACTION_URL, "7 Tage gültig"]),
         "en": ("Your access to the billing portal", ["Set your password: " + ACTION_URL, "valid for 7 days"])},
    ),
    EmailKind.PAYMENT_DISPUTED: (
        {"amount": AMOUNT, "debited": eur("1300"), "balance": -eur("65.44"), "topup_id": 7},
        {"de": (f"Eine Zahlung über {GERMAN_AMOUNT} wurde angefochten",
                ["Aufladung #7", f"Angefochtene Zahlung: {GERMAN_AMOUNT}", "Von Ihrem Guthaben abgezogen: 1.300,00 €",
                 "Aktuelles Guthaben: -65,44 €", "keine neuen Anrufe", f"{BASE}/business/billing/topup"]),
         "en": (f"A payment of {ENGLISH_AMOUNT} was disputed",
                ["top-up #7", f"Disputed payment: {ENGLISH_AMOUNT}", "Taken back from your balance: €1,300.00",
                 "Current balance: -€65.44", "new calls cannot be started", f"{BASE}/business/billing/topup"])},
    ),
    EmailKind.AUTO_TOPUP_DISABLED: (
        {"failures": 3},
        {"de": ("Automatische Aufladung wurde ausgeschaltet",
                ["nach 3 fehlgeschlagenen Zahlungen in Folge ausgeschaltet", f"{BASE}/business/billing/auto-topup"]),
         "en": ("Automatic top-up has been turned off",
                ["After 3 failed payments in a row", f"{BASE}/business/billing/auto-topup"])},
    ),
}


@pytest.fixture
def smtp():
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


@pytest.fixture(scope="module")
def invoice_pdf() -> bytes:
    from weasyprint import HTML

    return HTML(string="<h1>Rechnung RE-2025-000042</h1><p>Prepaid-Guthaben 1.234,56 €</p>").write_pdf()


def add_invoice(company_id: int, pdf: bytes, number: str = "RE-2025-000042") -> int:
    invoice = Invoice(kind="invoice", number=number, year=2025, sequence=int(number.rsplit("-", 1)[1]),
                      company_id=company_id, language="de", net_cents=103_745, vat_cents=19_711, gross_cents=123_456,
                      vat_rate_basis_points=1900, pdf=pdf)
    db.session.add(invoice)
    db.session.commit()
    return invoice.id


def low_balance(company_id: int, key: str = "low-balance-1", **extra) -> SentEmail | None:
    email = record_email(db.session, company_id=company_id, kind=EmailKind.LOW_BALANCE, dedupe_key=key,
                         context={"balance": AMOUNT, "threshold": eur("2000")}, **extra)
    db.session.commit()  # the test is the entry point here
    return email


def send(email_id: int, transport) -> bool:
    """Deliver as the send job does: commit the outcome, a failure's record too, before it is raised."""
    try:
        return deliver(db.session, email_id, transport, mail_settings())
    finally:
        db.session.commit()


def row(email_id: int) -> SentEmail:
    db.session.expire_all()
    return db.session.get(SentEmail, email_id)


@pytest.mark.parametrize("language", ["de", "en"])
@pytest.mark.parametrize("kind", list(EmailKind), ids=lambda kind: kind.value)
def test_each_kind_arrives_in_the_company_language_as_text_and_html(app, ctx, make_company, smtp, invoice_pdf,
                                                                    kind, language):
    company_id, admin = make_company(name="Müller & <Söhne> GmbH", language=language)
    context, expected = CASES[kind]
    invoice_id = add_invoice(company_id, invoice_pdf) if kind is EmailKind.TOPUP_RECEIPT else None
    email = record_email(db.session, company_id=company_id, kind=kind, dedupe_key=f"{kind.value}:1",
                         context=context, invoice_id=invoice_id)

    assert send(email.id, smtp.transport()) is True

    [message] = smtp.messages
    subject, phrases = expected[language]
    assert subject_of(message) == subject
    assert message["To"] == admin and message["Content-Language"] == language
    alternative = next(part for part in message.walk() if part.get_content_type() == "multipart/alternative")
    assert [part.get_content_type() for part in alternative.iter_parts()] == ["text/plain", "text/html"]
    text, html = text_of(message), text_of(message, "html")
    for phrase in phrases:
        assert phrase in text
    assert f'<html lang="{language}">' in html and "Müller &amp; &lt;Söhne&gt; GmbH" in html
    other = ENGLISH_AMOUNT if language == "de" else GERMAN_AMOUNT
    assert other not in text and other not in html.replace("\u00a0", " ")
    stored = row(email.id)
    assert stored.status == EmailStatus.SENT.value and stored.sent_at is not None and stored.attempts == 1
    assert stored.subject.replace("\u00a0", " ") == subject and stored.language == language


def test_the_receipt_carries_the_invoice_pdf_named_for_the_language(app, ctx, make_company, smtp, invoice_pdf):
    filenames = {}
    for language in ("en", "de"):
        company_id, _admin = make_company(language=language)
        invoice_id = add_invoice(company_id, invoice_pdf, number=f"RE-2025-00010{len(filenames)}")
        email = record_email(db.session, company_id=company_id, kind=EmailKind.TOPUP_RECEIPT,
                             dedupe_key=f"receipt:{language}", context=CASES[EmailKind.TOPUP_RECEIPT][0],
                             invoice_id=invoice_id)
        send(email.id, smtp.transport())
        [attachment] = list(smtp.messages[-1].iter_attachments())
        assert attachment.get_content_type() == "application/pdf"
        content = attachment.get_content()
        assert content.startswith(b"%PDF") and content == invoice_pdf
        assert "Rechnung RE-2025-000042" in PdfReader(io.BytesIO(content)).pages[0].extract_text()
        filenames[language] = attachment.get_filename()
    assert filenames == {"en": "Invoice-RE-2025-000100.pdf", "de": "Rechnung-RE-2025-000101.pdf"}


def test_a_message_has_sender_recipient_date_and_a_message_id_derived_from_its_dedupe_key(
        app, ctx, make_company, smtp, monkeypatch):
    monkeypatch.setitem(app.config, "MAIL_FROM", "Acme Billing <invoices@acme.example>")
    monkeypatch.setitem(app.config, "PORTAL_BASE_URL", "https://billing.acme.example")
    company_id, admin = make_company()
    email = low_balance(company_id, key="low:42")
    send(email.id, smtp.transport())

    [message] = smtp.messages
    assert message["From"] == "Acme Billing <invoices@acme.example>" and message["To"] == admin
    assert message["Date"].datetime is not None
    assert message["Message-ID"] == message_id("low:42", "invoices@acme.example")
    assert re.fullmatch(r"<billing\.[0-9a-f]{40}@acme\.example>", message["Message-ID"])
    assert message_id("low:43", "invoices@acme.example") != message["Message-ID"]
    assert smtp.envelopes == [("invoices@acme.example", [admin])]
    assert "https://billing.acme.example/business/billing/topup" in text_of(message)


def test_recording_the_same_dedupe_key_twice_keeps_one_row(app, ctx, make_company):
    company_id, _admin = make_company()
    first = low_balance(company_id)
    second = low_balance(company_id)
    assert first is not None and first.status == EmailStatus.QUEUED.value
    assert second is None
    assert db.session.scalar(select(func.count()).select_from(SentEmail)) == 1


def test_concurrent_recording_of_one_key_makes_one_row_and_raises_nothing(app, make_company):
    company_id, _admin = make_company()
    threads, barrier, results, errors = 8, threading.Barrier(8), [], []

    def record():
        try:
            with app.app_context():
                barrier.wait(timeout=10)
                created = low_balance(company_id, key="low:concurrent")
                results.append(created.id if created else None)
                db.session.remove()
        except Exception as error:  # noqa: BLE001 - the assertion below shows it
            errors.append(error)

    workers = [threading.Thread(target=record) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)

    assert errors == []
    assert len(results) == threads and sum(result is not None for result in results) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(SentEmail)) == 1


def test_delivering_twice_sends_once(app, ctx, make_company, smtp):
    company_id, _admin = make_company()
    email = low_balance(company_id)
    assert send(email.id, smtp.transport()) is True
    assert send(email.id, smtp.transport()) is False
    assert len(smtp.messages) == 1 and row(email.id).attempts == 1


class SlowTransport:
    """Takes a moment before sending, so two deliveries of one message overlap."""

    def __init__(self, inner):
        self.inner = inner

    def send(self, message):
        time.sleep(0.3)
        self.inner.send(message)


def test_two_workers_delivering_one_message_at_once_send_it_once(app, make_company, smtp):
    company_id, _admin = make_company()
    with app.app_context():
        email_id = low_balance(company_id).id
    barrier, results, errors = threading.Barrier(2), [], []

    def worker():
        try:
            with app.app_context():
                barrier.wait(timeout=10)
                results.append(send(email_id, SlowTransport(smtp.transport())))
                db.session.remove()
        except Exception as error:  # noqa: BLE001 - the assertion below shows it
            errors.append(error)

    workers = [threading.Thread(target=worker) for _ in range(2)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=30)

    assert errors == [] and sorted(results) == [False, True]
    assert len(smtp.messages) == 1
    with app.app_context():
        assert row(email_id).attempts == 1


def test_an_smtp_server_that_is_down_leaves_the_message_for_a_retry_that_sends_it(app, ctx, make_company):
    company_id, _admin = make_company()
    email = low_balance(company_id)
    sink = SmtpSink(free_port())  # not started: connections are refused

    with pytest.raises(ConnectionRefusedError):
        send(email.id, sink.transport())
    failed = row(email.id)
    assert (failed.status, failed.attempts, failed.sent_at) == (EmailStatus.FAILED.value, 1, None)
    assert "ConnectionRefusedError" in failed.error

    sink.start()
    try:
        assert send(email.id, sink.transport()) is True
    finally:
        sink.stop()
    sent = row(email.id)
    assert (sent.status, sent.attempts, sent.error) == (EmailStatus.SENT.value, 2, None)
    assert len(sink.messages) == 1


def test_a_message_the_server_refuses_is_marked_failed_and_sent_on_the_next_attempt(app, ctx, make_company, smtp):
    company_id, _admin = make_company()
    email = low_balance(company_id)
    smtp.refuse = "550 5.7.1 Message rejected as spam"

    with pytest.raises(Exception, match="Message rejected as spam"):
        send(email.id, smtp.transport())
    failed = row(email.id)
    assert failed.status == EmailStatus.FAILED.value and failed.attempts == 1 and "550" in failed.error
    assert smtp.messages == []

    smtp.refuse = None
    assert send(email.id, smtp.transport()) is True
    assert len(smtp.messages) == 1 and row(email.id).status == EmailStatus.SENT.value


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # loopback only
def test_the_smtp_transport_logs_in_when_a_user_is_configured(app, ctx, make_company):
    company_id, _admin = make_company()
    email = low_balance(company_id)
    sink = SmtpSink(credentials=("mailer", "s3cret")).start()
    try:
        transport = transport_from_config(mail_config(SMTP_HOST="127.0.0.1", SMTP_PORT=sink.port, SMTP_USER="mailer",
                                                      SMTP_PASSWORD="s3cret", SMTP_STARTTLS=False))
        assert send(email.id, transport) is True
    finally:
        sink.stop()
    assert sink.logins == ["mailer"] and len(sink.messages) == 1


def mail_config(**settings):
    """Mail settings as app.config.load_config produces them (without the environment)."""
    from app.config import load_config

    config = load_config(Path(tempfile.mkdtemp()), {})
    return {**config, **settings}


def test_transport_settings_come_from_the_config(tmp_path):
    smtp = transport_from_config(mail_config(SMTP_HOST="mail.example.com", SMTP_USER="u", SMTP_PASSWORD="hunter2"))
    assert isinstance(smtp, SmtpTransport)
    assert (smtp.host, smtp.port, smtp.starttls, smtp.user, smtp.timeout) == ("mail.example.com", 587, True, "u", 15.0)
    assert smtp.password == "hunter2" and "hunter2" not in repr(smtp)
    plain = transport_from_config(mail_config(SMTP_HOST="mail.example.com", SMTP_PORT=25, SMTP_STARTTLS=False))
    assert (plain.port, plain.starttls, plain.user) == (25, False, None)
    outbox = transport_from_config(mail_config(OUTBOX_DIR=str(tmp_path)))
    assert isinstance(outbox, OutboxTransport) and outbox.directory == tmp_path


def test_without_smtp_host_messages_are_written_to_the_outbox_and_the_path_is_logged(app, ctx, make_company,
                                                                                    tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="core.notifications.mail")
    company_id, admin = make_company(language="en")
    email = low_balance(company_id)

    assert send(email.id, transport_from_config(mail_config(OUTBOX_DIR=str(tmp_path / "outbox")))) is True

    [path] = (tmp_path / "outbox").iterdir()
    assert re.fullmatch(rf"\d{{8}}T\d{{12}}Z-low_balance-{email.id}\.eml", path.name)
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert message["To"] == admin and subject_of(message) == "Your prepaid balance is low"
    assert "Current balance: €1,234.56" in text_of(message) and "<html" in text_of(message, "html")
    assert str(path) in caplog.text
    assert row(email.id).status == EmailStatus.SENT.value


def test_the_recipient_is_the_first_active_company_admin(app, ctx, make_company):
    company_id, first_admin = make_company()
    company = db.session.get(Company, company_id)
    db.session.scalar(select(User).where(User.email == first_admin)).active = False
    create_user(db.session, "member@example.com", COMPANY_PASSWORD, Role.COMPANY_MEMBER, company=company)
    create_user(db.session, "second-admin@example.com", COMPANY_PASSWORD, Role.COMPANY_ADMIN, company=company)
    create_user(db.session, "third-admin@example.com", COMPANY_PASSWORD, Role.COMPANY_ADMIN, company=company)
    db.session.commit()

    assert low_balance(company_id, key="a").recipient == "second-admin@example.com"
    assert low_balance(company_id, key="b", recipient="finance@example.com").recipient == "finance@example.com"


def test_a_company_without_an_active_admin_gets_no_message_recorded(app, ctx, make_company):
    company_id, _member = make_company(member=True)
    assert low_balance(company_id) is None
    assert db.session.scalar(select(func.count()).select_from(SentEmail)) == 0


def test_recording_checks_the_context_a_message_needs(app, ctx, make_company):
    company_id, _admin = make_company()
    with pytest.raises(ValueError, match="threshold"):
        record_email(db.session, company_id=company_id, kind=EmailKind.LOW_BALANCE, dedupe_key="k",
                     context={"balance": AMOUNT})
    with pytest.raises(ValueError, match="http"):
        record_email(db.session, company_id=company_id, kind=EmailKind.AUTO_TOPUP_ACTION_REQUIRED, dedupe_key="k",
                     context={"amount": AMOUNT, "action_url": "javascript:alert(1)"})
    assert db.session.scalar(select(func.count()).select_from(SentEmail)) == 0
