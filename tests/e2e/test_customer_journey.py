"""A customer logs in, reads the dashboard, filters transactions in place and switches to English."""

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import log_in_as

from core.clock import utcnow
from core.ledger.postings import Reference, post_entry
from app.extensions import db
from core.schema import EntryType
from core.money import eur

pytestmark = pytest.mark.e2e


@pytest.fixture
def customer(app, make_company):
    company_id, email = make_company(name="Browser Test GmbH", balance=eur("1200"))
    now = utcnow()
    with app.app_context():
        for minutes in range(1, 31):
            post_entry(db.session, company_id, EntryType.CHARGE, -eur("0.427"), description=f"Anruf {minutes}",
                       created_at=now - timedelta(minutes=minutes))
        post_entry(db.session, company_id, EntryType.TOPUP, eur("34.56"), description="Zweite Aufladung",
                   reference=Reference("e2e", "2"), created_at=now)
        db.session.commit()
    return email


def test_customer_logs_in_filters_transactions_in_place_and_switches_to_english(page, live_url, customer):
    log_in_as(page, live_url, customer)

    expect(page.get_by_test_id("balance")).to_have_text("1.221,75\xa0€")  # 1200 + 34.56 - 30 × 0.427
    expect(page.get_by_test_id("available")).to_have_text("1.221,75\xa0€")
    expect(page.get_by_role("heading", name="Browser Test GmbH")).to_be_visible()

    page.get_by_role("link", name="Alle Buchungen").click()
    expect(page.locator("#transactions tbody tr")).to_have_count(32)
    page.evaluate("window.__sameDocument = true")
    page.get_by_test_id("filter-type").select_option("topup")
    expect(page.locator("#transactions tbody tr")).to_have_count(2)
    expect(page).to_have_url(f"{live_url}/business/billing/transactions?type=topup&start=&end=")
    assert page.evaluate("window.__sameDocument") is True, "the filter should not reload the page"
    expect(page.locator("#transactions")).to_contain_text("Zweite Aufladung")

    page.get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", name="Transactions")).to_be_visible()
    expect(page.locator("#transactions tbody tr")).to_have_count(2)  # the filter survived the switch
    page.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_test_id("balance")).to_have_text("€1,221.75")

    # The usage page's filter reloads its results in place too (htmx triggers without eval: the CSP).
    page.goto(f"{live_url}/business/billing/usage")
    page.evaluate("window.__sameDocument = true")
    page.get_by_test_id("period").select_option("7d")
    expect(page).to_have_url(re.compile(r"/business/billing/usage\?period=7d"))
    assert page.evaluate("window.__sameDocument") is True, "the period filter should not reload the page"
