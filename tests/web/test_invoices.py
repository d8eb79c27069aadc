"""Invoices, credit notes and statements: issued once, numbered without gaps, PDFs that say the right thing."""

import io
import threading
from datetime import date, datetime, timedelta

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

import core.documents.invoices
from app.jobs import renderer
from core.documents.invoices import Seller, issue_topup_invoice
from core.ledger.postings import Reference, post_entry
from app.extensions import db
from core.schema import DocumentSequence, EntryType, Invoice, MonthlyStatement, Topup, TopupStatus
from core.money import eur
from core.documents.statements import create_statement, statement_figures
from core.documents.vat import VatPolicy
from tests.helpers import log_in, run_worker
from tests.stripe_helpers import top_up


def pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF")
    return " ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def invoices_of(app, company_id):
    with app.app_context():
        rows = db.session.scalars(select(Invoice).where(Invoice.company_id == company_id).order_by(Invoice.id)).all()
        db.session.expunge_all()
        return rows


def credited_topup(app, company_id, amount, bonus=0):
    """A top-up as the credit path leaves it (used where Stripe is not the point of the test)."""
    with app.app_context():
        topup = Topup(company_id=company_id, amount=amount, bonus_amount=bonus, status=TopupStatus.CREDITED.value,
                      payment_method_type="sepa_debit", charged_cents=amount // 100, credited_at=datetime(2026, 11, 2))
        db.session.add(topup)
        db.session.flush()
        post_entry(db.session, company_id, EntryType.TOPUP, amount, reference=Reference("topup", str(topup.id)))
        if bonus:
            post_entry(db.session, company_id, EntryType.BONUS, bonus, reference=Reference("topup", str(topup.id)))
        db.session.commit()
        return topup.id


def issue(app, topup_id, **vat):
    with app.app_context():
        policy = VatPolicy(vat.get("rate", 1900), vat.get("gross", True))
        invoice = issue_topup_invoice(db.session, topup_id, Seller.from_config(app.config), policy, renderer())
        db.session.commit()  # the test is the entry point here, as the job is
        db.session.refresh(invoice)
        db.session.expunge_all()
        return invoice


def test_a_credited_top_up_gets_a_german_invoice_with_every_required_detail(app, client, make_company):
    company_id, email = make_company(name="Rechnung GmbH", street="Hauptstraße 7", postal_code="80331",
                                     city="München", vat_id="DE111222333")
    with app.app_context():
        from core.payments.bonuses import create_rule

        create_rule(db.session, "Bonus", eur("250"), percent_basis_points=500)
        db.session.commit()
    log_in(client, email)
    top_up(client, "250")
    [invoice] = invoices_of(app, company_id)
    year = datetime.now().year
    assert invoice.number == f"{year}-000001" and invoice.kind == "invoice"
    assert (invoice.net_cents, invoice.vat_cents, invoice.gross_cents) == (21008, 3992, 25000)
    text = pdf_text(invoice.pdf)
    for expected in [f"Rechnung {year}-000001", "Demo Telefonie Services GmbH", "DE000000000", "30/000/00000",
                     "Rechnung GmbH", "Hauptstraße 7", "80331 München", "DE111222333", "Prepaid-Guthaben",
                     "Karte", "210,08\xa0€", "39,92\xa0€", "250,00\xa0€", "USt. 19\xa0%", "12,50\xa0€", "Leistungsdatum"]:
        assert expected in text, expected


def test_an_english_company_gets_its_invoice_in_english(app, make_company):
    company_id, _ = make_company(name="Harbour Ltd", language="en")
    invoice = issue(app, credited_topup(app, company_id, eur("100")))
    text = pdf_text(invoice.pdf)
    assert "Invoice" in text and "Prepaid credit" in text and "€100.00" in text and "VAT 19%" in text


def test_net_amounts_add_vat_on_top_and_the_invoice_net_equals_the_ledger_credit(app, make_company):
    company_id, _ = make_company()
    invoice = issue(app, credited_topup(app, company_id, eur("100")), gross=False)
    assert (invoice.net_cents, invoice.vat_cents, invoice.gross_cents) == (10000, 1900, 11900)


def test_issuing_twice_gives_the_same_invoice(app, make_company):
    company_id, _ = make_company()
    topup_id = credited_topup(app, company_id, eur("50"))
    first, second = issue(app, topup_id), issue(app, topup_id)
    assert first.id == second.id and len(invoices_of(app, company_id)) == 1


def test_numbers_stay_gapless_and_unique_when_many_are_issued_at_once(app, make_company):
    company_id, _ = make_company()
    topup_ids = [credited_topup(app, company_id, eur("10") + i * 100) for i in range(8)]
    errors, start = [], threading.Barrier(8)

    def worker(topup_id):
        start.wait()
        try:
            issue(app, topup_id)
            issue(app, topup_id)  # a retried job
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(topup_id,)) for topup_id in topup_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(invoice.sequence for invoice in invoices_of(app, company_id)) == list(range(1, 9))


def test_a_crash_while_rendering_leaves_no_invoice_and_no_gap(app, make_company, monkeypatch):
    company_id, _ = make_company()
    first, second = credited_topup(app, company_id, eur("10")), credited_topup(app, company_id, eur("20"))

    def crash(*_args, **_kwargs):
        raise MemoryError("worker killed")

    monkeypatch.setattr(core.documents.invoices, "render_pdf", crash)
    with pytest.raises(MemoryError):
        issue(app, first)
    monkeypatch.undo()
    assert invoices_of(app, company_id) == []
    assert issue(app, second).sequence == 1
    assert issue(app, first).sequence == 2
    with app.app_context():
        assert db.session.scalar(select(DocumentSequence.last_number)) == 2


def test_a_refund_in_stripe_issues_a_credit_note_for_the_invoice(app, client, make_company, sandbox):
    company_id, email = make_company()
    log_in(client, email)
    top_up(client, "100")
    with app.app_context():
        intent = db.session.scalar(select(Topup.stripe_payment_intent_id))
    sandbox.refund_from_dashboard(intent, amount=4000)
    invoice, note = invoices_of(app, company_id)
    assert note.kind == "credit_note" and note.number.startswith("GS-") and note.gross_cents == 4000
    assert note.vat_cents == 639  # 40 € of a 100 € gross invoice with 15,97 € VAT
    text = pdf_text(note.pdf)
    assert invoice.number in text and "Rechnungskorrektur" in text and "-40,00\xa0€" in text


def test_invoices_are_listed_and_downloaded_only_by_their_company(app, client, make_company):
    company_id, email = make_company(name="Eigene GmbH")
    other_id, _ = make_company(name="Fremde GmbH")
    mine = issue(app, credited_topup(app, company_id, eur("30")))
    theirs = issue(app, credited_topup(app, other_id, eur("40")))
    log_in(client, email)
    page = client.get("/business/billing/invoices").text
    assert mine.number in page and theirs.number not in page
    download = client.get(f"/business/billing/invoices/{mine.id}.pdf")
    assert download.status_code == 200 and download.mimetype == "application/pdf" and download.data == mine.pdf
    assert client.get(f"/business/billing/invoices/{theirs.id}.pdf").status_code == 404
    assert client.get("/business/billing/invoices/999999.pdf").status_code == 404


def test_the_stored_pdf_never_changes_after_issue(app, make_company):
    company_id, _ = make_company()
    topup_id = credited_topup(app, company_id, eur("30"))
    original = issue(app, topup_id).pdf
    app.config["SELLER_NAME"] = "Renamed GmbH"
    try:
        assert issue(app, topup_id).pdf == original
    finally:
        app.config["SELLER_NAME"] = "Demo Telefonie Services GmbH"


@pytest.fixture
def october(app, make_company):
    """A company with known October activity: opening 50 €, a 100 € top-up + 5 € bonus, two calls."""
    from core.calls.rating import charge_call

    company_id, email = make_company(name="Statement GmbH", created_at=datetime(2026, 1, 1))
    with app.app_context():
        post_entry(db.session, company_id, EntryType.TOPUP, eur("50"), reference=Reference("t", "sep"),
                   created_at=datetime(2026, 9, 20))
        post_entry(db.session, company_id, EntryType.TOPUP, eur("100"), reference=Reference("t", "oct"),
                   created_at=datetime(2026, 10, 3))
        post_entry(db.session, company_id, EntryType.BONUS, eur("5"), reference=Reference("t", "oct"),
                   created_at=datetime(2026, 10, 3))
        for number, seconds in enumerate((61, 3600)):
            started = datetime(2026, 10, 10, 9) + timedelta(hours=number)
            charge_call(db.session, company_id, f"oct-{number}", started_at=started, duration_seconds=seconds,
                        posted_at=started + timedelta(seconds=seconds))
        post_entry(db.session, company_id, EntryType.ADJUSTMENT, eur("1"), created_at=datetime(2026, 11, 2))
        db.session.commit()
    return company_id, email


def test_the_monthly_statement_adds_up_the_ledger(app, october):
    company_id, _ = october
    with app.app_context():
        figures = statement_figures(db.session, company_id, date(2026, 10, 1))
    assert figures["opening_balance"] == eur("50") and figures["topups"] == eur("100") and figures["bonuses"] == eur("5")
    assert figures["calls"] == 2 and figures["billed_seconds"] == 3661
    assert figures["call_charges"] == eur("0.427") + eur("25.2")
    assert figures["closing_balance"] == eur("155") - eur("25.627")


def test_a_statement_is_made_once_and_downloadable(app, client, october):
    company_id, email = october
    with app.app_context():
        first = create_statement(db.session, company_id, date(2026, 10, 1), Seller.from_config(app.config), renderer())
        again = create_statement(db.session, company_id, date(2026, 10, 1), Seller.from_config(app.config), renderer())
        db.session.commit()  # the test is the entry point here, as the job is
        assert first.id == again.id
        assert db.session.scalar(select(func.count()).select_from(MonthlyStatement)) == 1
        statement_id, pdf = first.id, first.pdf
    text = pdf_text(pdf)
    assert "Oktober 2026" in text and "129,373\xa0€" in text and "61,0" in text
    log_in(client, email)
    assert "Oktober 2026" in client.get("/business/billing/invoices").text
    assert client.get(f"/business/billing/invoices/statements/{statement_id}.pdf").data == pdf


def test_statements_for_all_companies_come_from_the_command_line(app, october):
    result = app.test_cli_runner().invoke(args=["billing", "statements", "--month", "2026-10"])
    assert result.exit_code == 0 and "Statements for 1 company" in result.output
    assert app.test_cli_runner().invoke(args=["billing", "statements", "--month", "October"]).exit_code == 2


def test_month_end_statements_are_one_job_per_company_for_the_workers(app, october, make_company, redis_jobs):
    """The month's statements are not rendered in the command (or the cron job): each company's is a job
    of its own, so the workers share the month end; a job run twice makes one statement."""
    from rq import Queue

    from app.jobs import issue_statement

    company_id, _ = october
    make_company(name="No October GmbH", created_at=datetime(2026, 11, 15))  # no history in October
    result = app.test_cli_runner().invoke(args=["billing", "statements", "--month", "2026-10"])
    assert result.exit_code == 0 and "Statements for 1 company" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(MonthlyStatement)) == 0  # nothing rendered yet
    [job] = Queue("invoices", connection=redis_jobs).jobs
    assert (job.func, job.args) == (issue_statement, (company_id, "2026-10-01"))
    run_worker(app, redis_jobs)
    with app.app_context():
        issue_statement(company_id, "2026-10-01")  # a second run (a retry) makes no second statement
        statements = db.session.execute(select(MonthlyStatement.company_id, MonthlyStatement.month)).all()
    assert statements == [(company_id, date(2026, 10, 1))]
