"""A staff admin finds a company, refunds half of a call, and the customer sees the refund."""

from datetime import datetime, timedelta

import pytest
from playwright.sync_api import expect

from core.calls.rating import charge_call
from core.clock import utcnow
from app.extensions import db
from core.schema import Role
from core.money import eur
from tests.e2e.browser import log_in_as

pytestmark = pytest.mark.e2e


@pytest.fixture
def company_with_a_call(app, make_company):
    company_id, email = make_company(name="Erstattung Browser GmbH", balance=eur("20"), created_at=datetime(2026, 1, 1))
    with app.app_context():
        started = utcnow() - timedelta(hours=1)
        charge_call(db.session, company_id, "browser-call-1", started_at=started, duration_seconds=120,
                    posted_at=started + timedelta(seconds=120), to_number="+4930555")
        db.session.commit()
    return email


def test_staff_refund_half_a_call_and_the_customer_sees_it(browser, page, live_url, company_with_a_call, make_staff):
    log_in_as(page, live_url, make_staff(Role.STAFF_ADMIN, "browser-staff@example.com"), "staff-password-1")
    page.get_by_role("searchbox").fill("Erstattung Browser")
    page.get_by_role("link", name="Erstattung Browser GmbH").click()
    expect(page.get_by_test_id("staff-balance")).to_have_text("19,16\xa0€")  # 20 − 120 s × 0,007
    page.get_by_role("link", name="Anrufe").click()
    page.get_by_test_id("refund-call").click()
    page.get_by_label("Teilweise, nach Sekunden").check()
    page.get_by_role("textbox", name="Sekunden").fill("60")
    page.get_by_role("textbox", name="Grund").fill("Verbindung schlecht, halbe Erstattung")
    page.get_by_role("button", name="Vorschau").click()
    page.get_by_test_id("confirm-button").click()
    expect(page.get_by_test_id("staff-balance")).to_have_text("19,58\xa0€")

    customer_context = browser.new_context(locale="de-DE", timezone_id="Europe/Berlin")
    customer = customer_context.new_page()
    log_in_as(customer, live_url, company_with_a_call)
    expect(customer.get_by_test_id("balance")).to_have_text("19,58\xa0€")
    customer.goto(f"{live_url}/business/billing/usage?period=7d")
    expect(customer.locator("body")).to_contain_text("−0,42\xa0€")
    customer_context.close()
