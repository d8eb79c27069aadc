"""The invoice list and the staff invoices tab: only the listed columns are read, never the PDFs, and
the lists are paged by position (keyset), limited to the company whatever a page link carries."""

import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import event

from app.extensions import db
from core.ledger.history import Cursor
from core.schema import DocumentKind, Invoice, MonthlyStatement, Role
from tests.conftest import STAFF_PASSWORD
from tests.helpers import csrf_token_from, log_in

INVOICES = "/business/billing/invoices"
FIRST_DAY = datetime(2026, 1, 5, 9, 0)
PAGE_SIZE = 2


def add_documents(app, company_id: int, prefix: str, count: int, start: datetime = FIRST_DAY) -> None:
    """``count`` stored documents a day apart (their PDFs stand in: the lists never show them)."""
    with app.app_context():
        for index in range(count):
            db.session.add(Invoice(
                kind=DocumentKind.INVOICE.value, number=f"{prefix}-{index:03d}", year=2026,
                sequence=company_id * 1000 + index, company_id=company_id, language="de", net_cents=1000,
                vat_cents=190, gross_cents=1190, vat_rate_basis_points=1900, pdf=b"%PDF-" + b"x" * 50_000,
                issued_at=start + timedelta(days=index)))
        db.session.commit()


def numbers(html: str, prefix: str) -> list[str]:
    return re.findall(rf"<td>({prefix}-\d{{3}})</td>", html)


def link(html: str, name: str) -> str | None:
    match = re.search(rf'<a href="([^"]+)"[^>]*data-testid="{name}"', html)
    return match.group(1).replace("&amp;", "&") if match else None


@pytest.fixture
def statements_seen(app):
    """The SQL statements sent while a test runs."""
    seen = []

    def record(_connection, _cursor, statement, _parameters, _context, _executemany):
        seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


@pytest.fixture
def customer(app, client, make_company, monkeypatch):
    """A company with five documents, pages of two, logged in."""
    monkeypatch.setitem(app.config, "DOCUMENTS_PAGE_SIZE", PAGE_SIZE)
    company_id, email = make_company(name="Viele Rechnungen GmbH")
    add_documents(app, company_id, "MINE", 5)
    log_in(client, email)
    return company_id


@pytest.fixture
def staff(app, client, make_staff, make_company, monkeypatch):
    """A support user and a company with five documents, pages of two."""
    monkeypatch.setitem(app.config, "DOCUMENTS_PAGE_SIZE", PAGE_SIZE)
    company_id, _ = make_company(name="Viele Rechnungen GmbH")
    add_documents(app, company_id, "MINE", 5)
    log_in(client, make_staff(Role.STAFF_SUPPORT, "support-docs@example.com"), STAFF_PASSWORD)
    return company_id


def pdf_reads(statements: list[str]) -> list[str]:
    return [sql for sql in statements if re.search(r"\bpdf\b", sql) and sql.lstrip().upper().startswith("SELECT")]


def test_the_invoice_list_reads_no_pdf(app, client, customer, statements_seen):
    with app.app_context():
        db.session.add(MonthlyStatement(company_id=customer, month=datetime(2026, 1, 1).date(), language="de",
                                        figures={}, pdf=b"%PDF-statement"))
        db.session.commit()
    statements_seen.clear()
    page = client.get(INVOICES)
    assert page.status_code == 200 and numbers(page.text, "MINE") == ["MINE-004", "MINE-003"]
    assert "Januar 2026" in page.text  # the statement is listed too
    assert any("invoices" in sql for sql in statements_seen)
    assert pdf_reads(statements_seen) == []


def test_the_staff_invoices_tab_reads_no_pdf(client, staff, statements_seen):
    page = client.get(f"/admin/companies/{staff}?tab=invoices")
    assert page.status_code == 200 and numbers(page.text, "MINE") == ["MINE-004", "MINE-003"]
    assert any("invoices" in sql for sql in statements_seen)
    assert pdf_reads(statements_seen) == []


def test_older_links_walk_through_every_document_and_newer_leads_back(client, customer):
    seen, url, pages = [], INVOICES, []
    while url:
        html = client.get(url).text
        pages.append(html)
        seen.extend(numbers(html, "MINE"))
        url = link(html, "older")
    assert seen == [f"MINE-{index:03d}" for index in (4, 3, 2, 1, 0)] and len(pages) == 3
    assert link(pages[0], "newer") is None
    back = client.get(link(pages[2], "newer")).text
    assert numbers(back, "MINE") == ["MINE-002", "MINE-001"]
    assert numbers(client.get(link(back, "newer")).text, "MINE") == ["MINE-004", "MINE-003"]


def test_the_pager_speaks_german_and_english(client, customer):
    german = client.get(INVOICES).text
    assert "Ältere" in german and "Neuere" not in german
    client.post("/language", data={"language": "en", "csrf_token": csrf_token_from(german)})
    english = client.get(link(german, "older")).text
    assert "Older" in english and "Newer" in english and "Invoices" in english


def test_another_companys_cursor_shows_nothing_of_theirs(app, client, customer, make_company):
    # the other company's documents lie between this company's, so its cursor is a real position in both
    other_id, _ = make_company(name="Fremde GmbH")
    add_documents(app, other_id, "THEIRS", 5, start=FIRST_DAY + timedelta(hours=12))
    with app.app_context():
        their_second = db.session.query(Invoice).filter_by(number="THEIRS-003").one()
        token = Cursor(their_second.issued_at, their_second.id).encode()
    for name in ("after", "before"):
        html = client.get(f"{INVOICES}?{name}={token}").text
        assert numbers(html, "THEIRS") == [] and numbers(html, "MINE")


@pytest.mark.parametrize("language, message", [
    ("de", "Dieser Seitenlink ist nicht mehr gültig."),
    ("en", "This page link is not valid any more."),
])
def test_a_broken_page_link_gets_a_translated_message(client, customer, language, message):
    if language == "en":
        client.post("/language", data={"language": "en", "csrf_token": csrf_token_from(client.get(INVOICES).text)})
    response = client.get(f"{INVOICES}?after=not-a-cursor")
    assert response.status_code == 400 and message in response.text
    assert numbers(response.text, "MINE") == []


def test_the_staff_tab_pages_inside_the_tab_with_htmx(client, staff):
    first = client.get(f"/admin/companies/{staff}?tab=invoices").text
    older = link(first, "older")
    assert older and "tab=invoices" in older and 'hx-target="#tab-content"' in first
    partial = client.get(older, headers={"HX-Request": "true", "HX-Target": "tab-content"})
    assert partial.status_code == 200 and "<html" not in partial.text
    assert numbers(partial.text, "MINE") == ["MINE-002", "MINE-001"]
    assert link(partial.text, "newer") and link(partial.text, "older")
    broken = client.get(f"/admin/companies/{staff}?tab=invoices&before=xyz")
    assert broken.status_code == 400 and "MINE-" not in broken.text
