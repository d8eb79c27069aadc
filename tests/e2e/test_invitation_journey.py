"""An invited user opens the emailed link in the browser, chooses a password and logs in; the
link's token never reaches the server in a request line."""

from urllib.parse import urlsplit

import pytest
from flask import request, request_started
from playwright.sync_api import expect

from app.auth import set_password_url
from app.extensions import db
from core.accounts.users import invite_user
from core.schema import Role
from tests.e2e.browser import log_in_as

pytestmark = pytest.mark.e2e


@pytest.fixture
def invitation(app, make_company, live_url):
    """The link of an invitation email, pointing at the live server."""
    company_id, _ = make_company(name="Einladung Browser GmbH")
    with app.app_context():
        user = invite_user(db.session, company_id, "eingeladen@example.com", "Ina Eingeladen", Role.COMPANY_MEMBER)
        db.session.commit()
        with app.test_request_context():
            link = set_password_url(user)
    parts = urlsplit(link)
    return f"{live_url}{parts.path}#{parts.fragment}", parts.fragment


def test_an_invited_user_sets_a_password_from_the_emailed_link_and_logs_in(app, page, live_url, invitation):
    link, token = invitation
    lines: list[str] = []

    def record(sender, **extra):
        lines.append(request.full_path)

    with request_started.connected_to(record, app):
        page.goto(link)
        expect(page.get_by_text("eingeladen@example.com")).to_be_visible()  # the script posted the token
        assert urlsplit(page.url).fragment == ""  # and took it out of the address bar
        page.get_by_label("Neues Passwort").fill("ein-gutes-passwort")
        page.get_by_label("Passwort wiederholen").fill("ein-gutes-passwort")
        page.get_by_role("button", name="Passwort speichern").click()
        expect(page.get_by_text("Ihr Passwort ist festgelegt.")).to_be_visible()
        log_in_as(page, live_url, "eingeladen@example.com", "ein-gutes-passwort")
        expect(page.get_by_test_id("balance")).to_be_visible()
    assert lines and [line for line in lines if token in line] == []
