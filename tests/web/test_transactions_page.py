import csv
import io
import re
from datetime import datetime, timedelta

import pytest

from core.ledger.postings import Reference, post_entry
from app.extensions import db
from core.schema import EntryType
from core.money import eur
from core.ledger.history import Cursor
from tests.helpers import csrf_token_from, log_in


@pytest.fixture
def customer(app, client, make_company):
    """A logged-in customer with 60 ledger rows over 60 days (every 3rd a top-up)."""
    company_id, email = make_company(name="Ledger Kunde GmbH")
    start = datetime(2026, 8, 1, 9, 0)
    with app.app_context():
        for day in range(60):
            if day % 3 == 0:
                post_entry(db.session, company_id, EntryType.TOPUP, eur("20"), description=f"Aufladung {day}",
                           reference=Reference("t", str(day)), created_at=start + timedelta(days=day))
            else:
                post_entry(db.session, company_id, EntryType.CHARGE, -eur("1.2345"), description=f"Call {day}",
                           created_at=start + timedelta(days=day))
        db.session.commit()
    log_in(client, email)
    return company_id


def rows_of(html: str) -> list[str]:
    return [part.split('"')[0] for part in html.split('<tr data-type="')[1:]]


def test_the_ledger_lists_the_newest_fifty_rows_first(client, customer):
    page = client.get("/business/billing/transactions")
    assert page.status_code == 200
    assert len(rows_of(page.text)) == 50
    assert page.text.index("Call 59") < page.text.index("Call 58")
    assert 'data-testid="older"' in page.text


def test_following_the_older_link_shows_the_remaining_rows(client, customer):
    first = client.get("/business/billing/transactions").text
    older_link = first.split('data-testid="older"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    second = client.get(older_link).text
    assert len(rows_of(second)) == 10
    assert "Call 1<" in second and 'data-testid="older"' not in second and 'rel="prev"' in second


def test_filtering_by_type_and_dates_narrows_the_list(client, customer):
    topups = client.get("/business/billing/transactions?type=topup").text
    assert set(rows_of(topups)) == {"topup"} and len(rows_of(topups)) == 20
    window = client.get("/business/billing/transactions?start=2026-08-03&end=2026-08-05").text
    assert len(rows_of(window)) == 3


def test_a_filter_change_from_htmx_gets_only_the_list_partial(client, customer):
    response = client.get("/business/billing/transactions?type=charge", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.text.strip().startswith('<section id="transactions"')
    assert "<html" not in response.text and "<form" not in response.text
    assert "HX-Request" in response.headers["Vary"]


@pytest.mark.parametrize(
    "query",
    ["type=bogus", "start=2026-13-01", "start=yesterday", "start=2026-08-10&end=2026-08-01",
     "after=not-a-cursor", "before=%FF%FE", "after=" + "A" * 300],
)
def test_malformed_filters_and_cursors_answer_400_with_a_translated_message(client, customer, query):
    response = client.get(f"/business/billing/transactions?{query}")
    assert response.status_code == 400
    assert 'data-testid="filter-error"' in response.text
    assert ("Bitte prüfen Sie den Filter" in response.text) or ("Seitenlink ist nicht mehr gültig" in response.text)


def test_a_cursor_of_another_company_reveals_nothing_of_that_company(app, client, customer, make_company):
    other_id, _ = make_company(name="Fremd AG", balance=eur("77"))
    with app.app_context():
        entry = post_entry(db.session, other_id, EntryType.ADJUSTMENT, eur("1"), description="secret")
        db.session.commit()
        token = Cursor(entry.created_at, entry.id).encode()
    page = client.get(f"/business/billing/transactions?after={token}").text
    assert "secret" not in page and "Fremd" not in page


def test_the_csv_export_streams_the_filtered_rows_in_the_readers_convention(client, customer):
    response = client.get("/business/billing/transactions.csv?type=charge")
    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff")), delimiter=";"))
    assert rows[0][:4] == ["Datum", "Art", "Beschreibung", "Betrag (EUR)"]
    assert len(rows) == 1 + 40
    assert rows[1][1] == "Anrufgebühr" and rows[1][3] == "-1,2345"


def test_the_csv_export_never_hands_a_spreadsheet_a_formula(app, client, customer):
    """Text that a spreadsheet would run (=, +, -, @, tab, CR first) is written with a leading ';
    amounts stay numbers, negative ones too."""
    with app.app_context():
        for number, text in enumerate(["=HYPERLINK(\"http://evil\")", "+49 30 1234", "-1+1", "@SUM(A1)", "\tx"]):
            post_entry(db.session, customer, EntryType.ADJUSTMENT, -eur("0.5"), description=text,
                       reference=Reference("formula", str(number)), created_at=datetime(2026, 10, 1, 9, number))
        db.session.commit()
    response = client.get("/business/billing/transactions.csv?type=adjustment")
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff")), delimiter=";"))
    assert sorted(row[2] for row in rows[1:]) == sorted(["'=HYPERLINK(\"http://evil\")", "'+49 30 1234", "'-1+1",
                                                         "'@SUM(A1)", "'\tx"])
    assert {row[3] for row in rows[1:]} == {"-0,5000"}


def test_the_csv_export_refuses_a_malformed_filter(client, customer):
    assert client.get("/business/billing/transactions.csv?start=nope").status_code == 400


def test_members_can_filter_and_export_too(client, make_company):
    _, email = make_company(member=True, balance=eur("5"))
    log_in(client, email)
    assert client.get("/business/billing/transactions?type=topup").status_code == 200
    assert client.get("/business/billing/transactions.csv").status_code == 200


def test_the_type_filter_marks_the_chosen_type_in_the_readers_language(client, customer):
    def chosen(query: str) -> list[str]:
        page = client.get(f"/business/billing/transactions?{query}").text
        return re.findall(r'<option value="([^"]*)" selected>([^<]+)<', page)

    assert chosen("") == [("", "Alle Arten")]
    assert chosen("type=charge") == [("charge", "Anrufgebühr")]
    assert chosen("type=topup") == [("topup", "Aufladung")]
    assert chosen("type=bogus") == []  # refused (400), and no type marked
    token = csrf_token_from(client.get("/business/billing").text)
    client.post("/language", data={"language": "en", "csrf_token": token})
    assert chosen("type=charge") == [("charge", "Call charge")]
    assert chosen("") == [("", "All types")]
