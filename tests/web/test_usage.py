import csv
import io
import re
from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from sqlalchemy import update

from core.calls.live import CallPolicy, start_call
from core.calls.rating import charge_call
from app.extensions import db
from core.schema import CallCharge
from core.money import eur
from core.ledger.history import Cursor
from tests.helpers import log_in

NOW = datetime(2026, 11, 21, 12, 0)  # 13:00 in Berlin; "this month" is November 1–21
JANUARY = datetime(2026, 1, 1)
USAGE = "/business/billing/usage"

# (call id, start in UTC, seconds): 0.42 €/min per second = 70 units a second
CALLS = [
    ("c1-nov-03", datetime(2026, 11, 3, 9, 0), 125),
    ("c2-nov-03-refunded", datetime(2026, 11, 3, 15, 0), 60),
    ("c3-nov-21-early", datetime(2026, 11, 20, 23, 30), 300),  # 00:30 on November 21 in Berlin
    ("c4-nov-01-early", datetime(2026, 10, 31, 23, 30), 30),  # 00:30 on November 1 in Berlin
    ("c5-oct-15", datetime(2026, 10, 15, 10, 0), 600),
    ("c6-sep-01", datetime(2026, 9, 1, 10, 0), 90),
    ("c7-aug-01", datetime(2026, 8, 1, 10, 0), 45),
]


@pytest.fixture
def fixed_now():
    """The one clock stands still at NOW for the whole test."""
    with time_machine.travel(NOW.replace(tzinfo=timezone.utc), tick=False):
        yield NOW


def seed_calls(app, company_id, calls, numbers=("+49301234567", "+49409876543")):
    with app.app_context():
        for call_id, started_at, seconds in calls:
            charge_call(db.session, company_id, call_id, started_at=started_at, duration_seconds=seconds,
                        ended_at=started_at + timedelta(seconds=seconds), posted_at=started_at + timedelta(seconds=seconds),
                        from_number=numbers[0], to_number=numbers[1])
        db.session.commit()


@pytest.fixture
def customer(app, client, make_company, fixed_now):
    """A logged-in customer with the calls above; c2 was refunded in full."""
    company_id, email = make_company(name="Nutzung Kunde GmbH", balance=eur("100"), created_at=JANUARY)
    seed_calls(app, company_id, CALLS)
    with app.app_context():
        db.session.execute(update(CallCharge).where(CallCharge.call_id == "c2-nov-03-refunded")
                           .values(refund_status="full", refunded_amount=60 * 70))
        db.session.commit()
    log_in(client, email)
    return company_id


def text_of(html: str, name: str) -> str:
    match = re.search(rf'data-testid="{name}"[^>]*>(.*?)</', html, re.S)
    assert match, f"no {name}"
    return match.group(1).strip()


def call_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-call-id="([^"]+)"', html)


def test_the_usage_page_shows_calls_minutes_cost_after_refunds_and_average_length_in_german(client, customer):
    page = client.get(USAGE)
    assert page.status_code == 200
    html = page.text
    assert "<h1>Nutzung</h1>" in html
    assert text_of(html, "range-label") == "1.–21. Nov. 2026"
    assert text_of(html, "usage-calls-count") == "4"  # c1, c2, c3 and c4 (November 1 in Berlin)
    assert text_of(html, "usage-minutes") == "8,6"  # 515 billed seconds
    assert text_of(html, "usage-cost") == "3,185\xa0€"  # (125 + 60 + 300 + 30) × 0.007 € − 0.42 € refunded
    assert text_of(html, "usage-average") == "2:09 Min."  # 515 s / 4 = 128.75 s
    assert call_ids(html) == ["c3-nov-21-early", "c2-nov-03-refunded", "c1-nov-03", "c4-nov-01-early"]
    assert "Erstattet" in html and "−0,42\xa0€" in html and "0,42\xa0€/Min." in html
    assert "+49301234567 → +49409876543" in html
    assert 'aria-current="page">Nutzung</a>' in html


def test_the_page_draws_the_daily_chart_as_an_accessible_svg_with_a_table_of_every_day(client, customer):
    html = client.get(USAGE).text
    assert html.count('role="img"') == 2  # a wide and a compact drawing; CSS shows one
    assert '<title id="usage-chart-wide-title">Ausgaben und abgerechnete Minuten pro Tag, 1.–21. Nov. 2026</title>' in html
    assert "Die höchsten Tagesausgaben waren 2,10\xa0€ am 21. November 2026." in html
    assert ">Ausgaben pro Tag<" in html and ">Abgerechnete Minuten pro Tag<" in html
    assert "21.11.2026: 1 Anruf, 5,0 Min., 2,10\xa0€" in html  # the day's hover title
    assert html.count('data-testid="usage-day"') == 21


@pytest.mark.parametrize("period, label, calls", [
    ("this_month", "1.–21. Nov. 2026", ["c3-nov-21-early", "c2-nov-03-refunded", "c1-nov-03", "c4-nov-01-early"]),
    ("last_month", "1.–31. Okt. 2026", ["c5-oct-15"]),
    ("7d", "15.–21. Nov. 2026", ["c3-nov-21-early"]),
    ("30d", "23. Okt.\u2009–\u200921. Nov. 2026", ["c3-nov-21-early", "c2-nov-03-refunded", "c1-nov-03", "c4-nov-01-early"]),
    ("90d", "24. Aug.\u2009–\u200921. Nov. 2026", ["c3-nov-21-early", "c2-nov-03-refunded", "c1-nov-03", "c4-nov-01-early",
                                       "c5-oct-15", "c6-sep-01"]),
])
def test_each_preset_period_shows_its_local_days_and_calls(client, customer, period, label, calls):
    html = client.get(f"{USAGE}?period={period}").text
    assert text_of(html, "range-label") == label
    assert call_ids(html) == calls
    assert text_of(html, "usage-calls-count") == str(len(calls))
    assert f'<option value="{period}" selected>' in html


def test_a_custom_range_shows_exactly_its_days(client, customer):
    html = client.get(f"{USAGE}?period=custom&start=2026-08-01&end=2026-08-31").text
    assert text_of(html, "range-label") == "1.–31. Aug. 2026"
    assert call_ids(html) == ["c7-aug-01"] and text_of(html, "usage-minutes") == "0,8"
    assert html.count('data-testid="usage-day"') == 31
    assert 'value="2026-08-01"' in html and 'value="2026-08-31"' in html


def test_dates_without_a_period_mean_a_custom_range(client, customer):
    html = client.get(f"{USAGE}?start=2026-10-15&end=2026-10-15").text
    assert text_of(html, "range-label") == "15. Oktober 2026" and call_ids(html) == ["c5-oct-15"]


def test_a_period_without_calls_says_so_and_draws_no_chart(client, customer):
    html = client.get(f"{USAGE}?period=custom&start=2026-06-01&end=2026-06-30").text
    assert text_of(html, "no-usage") == "Keine Anrufe in diesem Zeitraum."
    assert text_of(html, "usage-average") == "–" and "<svg" not in html


@pytest.mark.parametrize("query, message", [
    ("period=custom", "Bitte wählen Sie für einen eigenen Zeitraum ein Start- und ein Enddatum."),
    ("period=custom&start=2026-11-10", "Bitte wählen Sie für einen eigenen Zeitraum ein Start- und ein Enddatum."),
    ("period=custom&start=2026-11-10&end=2026-11-01", "Das Enddatum darf nicht vor dem Startdatum liegen."),
    ("period=custom&start=2024-01-01&end=2026-01-01", "Ein eigener Zeitraum darf höchstens 366 Tage lang sein."),
    ("period=custom&start=1900-01-01&end=1900-01-02", "Bitte wählen Sie Daten zwischen den Jahren 2000 und 2100."),
    ("period=custom&start=2026-13-01&end=2026-12-01", "Bitte prüfen Sie den Filter"),
    ("period=yesterday", "Bitte prüfen Sie den Filter"),
    ("period=", "Bitte prüfen Sie den Filter"),
    ("after=not-a-cursor", "Dieser Seitenlink ist nicht mehr gültig."),
    ("before=%FF%FE", "Dieser Seitenlink ist nicht mehr gültig."),
    ("after=" + "A" * 300, "Dieser Seitenlink ist nicht mehr gültig."),
])
def test_malformed_ranges_and_cursors_answer_400_with_a_translated_message(client, customer, query, message):
    response = client.get(f"{USAGE}?{query}")
    assert response.status_code == 400
    assert message in text_of(response.text, "usage-error")
    assert "c1-nov-03" not in response.text
    assert '<form method="get"' in response.text  # the filter stays usable


def test_the_csv_export_refuses_a_malformed_range(client, customer):
    response = client.get(f"{USAGE}.csv?period=custom&start=2026-11-10&end=2026-11-01")
    assert response.status_code == 400 and "Das Enddatum darf nicht vor dem Startdatum liegen." in response.text


@pytest.fixture
def busy_customer(app, client, make_company, fixed_now, monkeypatch):
    """23 calls on November 2, two of them at the same second; pages of 5."""
    monkeypatch.setitem(app.config, "USAGE_PAGE_SIZE", 5)
    company_id, email = make_company(name="Viel Telefonie GmbH", created_at=JANUARY)
    start = datetime(2026, 11, 2, 8, 0)
    calls = [(f"busy-{index:02d}", start + timedelta(minutes=index), 30 + index) for index in range(22)]
    seed_calls(app, company_id, calls + [("busy-tie", start + timedelta(minutes=7), 9)])
    log_in(client, email)
    return company_id


def link(html: str, testid_name: str) -> str | None:
    match = re.search(rf'<a href="([^"]+)"[^>]*data-testid="{testid_name}"', html)
    return match.group(1).replace("&amp;", "&") if match else None


def test_older_links_walk_through_every_call_without_gaps_or_repeats(client, busy_customer):
    seen, url, pages = [], f"{USAGE}?period=this_month", 0
    while url:
        html = client.get(url).text
        pages += 1
        assert 0 < len(call_ids(html)) <= 5
        seen.extend(call_ids(html))
        url = link(html, "older")
        assert url is None or "period=this_month" in url
    assert pages == 5 and len(seen) == len(set(seen)) == 23
    assert seen[0] == "busy-21" and seen[-1] == "busy-00"
    assert seen.index("busy-tie") in (seen.index("busy-07") - 1, seen.index("busy-07") + 1)


def test_the_newer_link_leads_back_to_the_previous_page(client, busy_customer):
    first = client.get(USAGE).text
    second = client.get(link(first, "older")).text
    back = client.get(link(second, "newer")).text
    assert call_ids(back) == call_ids(first) and link(back, "newer") is None


def test_a_range_change_from_htmx_gets_the_results_partial_with_vary(client, customer):
    # the form sends its stale date fields along with the newly chosen period
    response = client.get(f"{USAGE}?period=7d&start=2026-11-01&end=2026-11-21",
                          headers={"HX-Request": "true", "HX-Target": "usage-results"})
    assert response.status_code == 200
    assert response.text.strip().startswith('<section id="usage-results"')
    assert "<html" not in response.text and "<h1>" not in response.text
    assert call_ids(response.text) == ["c3-nov-21-early"]
    assert "HX-Request" in response.headers["Vary"]
    # the filter comes along out of band with the applied range, and the address bar gets the clean URL
    oob_form = response.text[response.text.index('<form method="get"'):]
    assert 'hx-swap-oob="true"' in oob_form and '<option value="7d" selected>' in oob_form
    assert 'value="2026-11-15"' in oob_form and 'value="2026-11-21"' in oob_form
    assert response.headers["HX-Push-Url"] == f"{USAGE}?period=7d"
    full = client.get(f"{USAGE}?period=7d")
    assert "<html" in full.text and "HX-Request" in full.headers["Vary"]


def test_paging_from_htmx_swaps_only_the_call_list(client, busy_customer):
    older = link(client.get(USAGE).text, "older")
    response = client.get(older, headers={"HX-Request": "true", "HX-Target": "usage-calls"})
    assert response.status_code == 200
    assert response.text.strip().startswith('<div id="usage-calls"')
    assert 'data-testid="usage-calls-count"' not in response.text and "<svg" not in response.text
    assert call_ids(response.text) == ["busy-16", "busy-15", "busy-14", "busy-13", "busy-12"]
    assert "HX-Request" in response.headers["Vary"] and "<form" not in response.text
    assert response.headers["HX-Push-Url"].startswith(f"{USAGE}?period=this_month&after=")


def test_a_bad_cursor_from_htmx_shows_the_error_in_the_call_list(client, customer):
    response = client.get(f"{USAGE}?after=nope", headers={"HX-Request": "true", "HX-Target": "usage-calls"})
    assert response.status_code == 400
    assert response.text.strip().startswith('<div id="usage-calls"') and 'data-testid="usage-error"' in response.text


def csv_rows(response, delimiter):
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=delimiter))


def test_the_csv_export_streams_the_calls_of_the_range_in_german_convention(client, customer):
    response = client.get(f"{USAGE}.csv?period=this_month")
    assert response.status_code == 200 and response.is_streamed and response.mimetype == "text/csv"
    assert 'filename="usage-2026-11-01-2026-11-21.csv"' in response.headers["Content-Disposition"]
    rows = csv_rows(response, ";")
    assert rows[0] == ["Beginn", "Ende", "Anruf-ID", "Von Rufnummer", "An Rufnummer", "Dauer (s)", "Abgerechnet (s)",
                       "Tarif pro Minute (EUR)", "Betrag (EUR)", "Erstattet (EUR)", "Erstattungsstatus"]
    assert [row[2] for row in rows[1:]] == ["c3-nov-21-early", "c2-nov-03-refunded", "c1-nov-03", "c4-nov-01-early"]
    assert rows[1] == ["2026-11-21 00:30:00", "2026-11-21 00:35:00", "c3-nov-21-early", "'+49301234567",
                       "'+49409876543", "300", "300", "0,4200", "2,1000", "0,0000", "Nicht erstattet"]  # numbers text
    assert rows[2][8:] == ["0,4200", "0,4200", "Erstattet"]


def test_the_csv_export_in_english_uses_commas_and_dots(client, customer):
    response = client.get(f"{USAGE}.csv?period=custom&start=2026-10-01&end=2026-10-31",
                          headers={"Accept-Language": "en"})
    rows = csv_rows(response, ",")
    assert rows[0][:3] == ["Start", "End", "Call ID"]
    assert rows[1:] == [["2026-10-15 12:00:00", "2026-10-15 12:10:00", "c5-oct-15", "'+49301234567", "'+49409876543",
                         "600", "600", "0.4200", "4.2000", "0.0000", "Not refunded"]]


def test_the_page_in_english_formats_for_the_english_reader(client, customer):
    html = client.get(USAGE, headers={"Accept-Language": "en"}).text
    assert "<h1>Usage</h1>" in html and text_of(html, "range-label") == "Nov 1\u2009–\u200921, 2026"
    assert text_of(html, "usage-cost") == "€3.185" and text_of(html, "usage-minutes") == "8.6"
    assert text_of(html, "usage-average") == "2:09 min"
    assert ">Spend per day<" in html and "Nov 21, 2026: 1 call, 5.0 min, €2.10" in html
    assert "€0.42/min" in html and "Refunded" in html


def test_another_companys_calls_never_appear_in_the_page_the_chart_or_the_csv(app, client, customer, make_company):
    other_id, _ = make_company(name="Fremd Telefonie AG", created_at=JANUARY)
    seed_calls(app, other_id, [("secret-foreign-call", datetime(2026, 11, 3, 10, 0), 7777)], numbers=("+1555", "+1666"))
    with app.app_context():
        foreign = db.session.query(CallCharge).filter_by(call_id="secret-foreign-call").one()
        token = Cursor(foreign.started_at + timedelta(seconds=1), foreign.id + 1).encode()
    html = client.get(USAGE).text
    assert "secret-foreign-call" not in html and "+1555" not in html and text_of(html, "usage-calls-count") == "4"
    assert "secret-foreign-call" not in client.get(f"{USAGE}?after={token}").text
    assert "secret-foreign-call" not in client.get(f"{USAGE}.csv").get_data(as_text=True)


def test_members_can_see_and_export_usage(client, make_company, fixed_now):
    _, email = make_company(member=True, balance=eur("5"))
    log_in(client, email)
    assert client.get(USAGE).status_code == 200
    assert client.get(f"{USAGE}.csv").status_code == 200


def test_the_usage_page_needs_a_login(client):
    response = client.get(USAGE)
    assert response.status_code in (302, 303) and "/login" in response.headers["Location"]


# ---- dashboard additions ----

def test_the_dashboard_shows_how_many_live_calls_hold_funds(app, client, make_company, fixed_now):
    company_id, email = make_company(balance=eur("50"), created_at=JANUARY)
    log_in(client, email)
    assert text_of(client.get("/business/billing").text, "live-calls") == "Derzeit keine laufenden Anrufe"
    with app.app_context():
        for call_id in ("live-1", "live-2"):
            start_call(db.session, company_id, call_id, started_at=NOW, policy=CallPolicy())
        db.session.commit()
    page = client.get("/business/billing").text
    assert text_of(page, "reserved") == "4,20\xa0€"
    assert text_of(page, "live-calls") == "Gebunden durch 2 laufende Anrufe"
    english = client.get("/business/billing", headers={"Accept-Language": "en"}).text
    assert text_of(english, "live-calls") == "Held by 2 live calls"


def test_the_dashboard_estimates_how_long_the_balance_lasts_at_the_last_14_days_spend(app, client, make_company,
                                                                                      fixed_now):
    company_id, email = make_company(balance=eur("100"), created_at=JANUARY)
    seed_calls(app, company_id, [("recent", NOW - timedelta(days=3), 2000),  # 14 €: 1 € a day
                                 ("old", NOW - timedelta(days=20), 1000)])  # outside the window
    log_in(client, email)
    page = client.get("/business/billing").text
    # available 100 − 14 − 7 = 79 € at 1 € a day
    assert text_of(page, "runway") == ("Bei Ihren durchschnittlichen Tagesausgaben der letzten 14 Tage (1,00\xa0€) "
                                      "reicht das Guthaben noch ≈ 79 Tage.")
    english = client.get("/business/billing", headers={"Accept-Language": "en"}).text
    assert text_of(english, "runway") == ("At your average daily spend of the last 14 days (€1.00), "
                                         "the balance lasts ≈ 79 days.")
    partial = client.get("/business/billing", headers={"HX-Request": "true"}).text
    assert 'data-testid="runway"' in partial and 'data-testid="live-calls"' in partial


def test_without_recent_spend_the_dashboard_makes_no_runway_promise(client, make_company, fixed_now):
    _, email = make_company(balance=eur("100"), created_at=JANUARY)
    log_in(client, email)
    assert text_of(client.get("/business/billing").text, "runway") == (
        "In den letzten 14 Tagen gab es keine Anrufgebühren, daher noch keine Schätzung, wie lange das Guthaben reicht.")
