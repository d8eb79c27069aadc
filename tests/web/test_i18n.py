import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po
from flask import render_template_string, request

from core.accounts.users import find_user_by_email
from app.extensions import db
from core.money import eur
from portal.forms import TransactionFilterForm
from tests.helpers import csrf_token_from, log_in

ROOT = Path(__file__).resolve().parents[2]


def test_german_is_the_default_language(client):
    page = client.get("/login").text
    assert '<html lang="de"' in page and "Anmelden" in page


def test_the_browser_language_is_used_when_nothing_was_chosen(client):
    page = client.get("/login", headers={"Accept-Language": "en-GB,en;q=0.9"}).text
    assert '<html lang="en"' in page and "Log in" in page


def test_an_anonymous_choice_is_kept_in_the_session(client):
    token = csrf_token_from(client.get("/login").text)
    response = client.post("/language", data={"language": "en", "next": "/login", "csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert '<html lang="en"' in client.get("/login", headers={"Accept-Language": "de"}).text


def test_a_logged_in_users_choice_is_stored_on_the_user_and_formats_money_for_the_locale(app, client, make_company):
    _, email = make_company(balance=eur("1234.56"))
    log_in(client, email)
    token = csrf_token_from(client.get("/business/billing").text)
    client.post("/language", data={"language": "en", "next": "/business/billing", "csrf_token": token})
    page = client.get("/business/billing").text
    assert 'data-testid="balance">€1,234.56<' in page and "Available" in page
    with app.app_context():
        assert find_user_by_email(db.session, email).locale == "en"


def test_the_language_switch_needs_csrf_and_ignores_unknown_languages(client):
    assert client.post("/language", data={"language": "en"}).status_code == 400
    token = csrf_token_from(client.get("/login").text)
    client.post("/language", data={"language": "xx", "csrf_token": token})
    assert '<html lang="de"' in client.get("/login").text


def test_the_language_switch_never_redirects_off_site(client):
    token = csrf_token_from(client.get("/login").text)
    response = client.post("/language", data={"language": "en", "next": "//evil.example.com/", "csrf_token": token})
    assert response.headers["Location"] == "/"


def test_error_pages_are_translated(client):
    assert "Diese Seite gibt es nicht." in client.get("/no-such-page").text
    assert "This page does not exist." in client.get("/no-such-page", headers={"Accept-Language": "en"}).text


def test_every_message_is_translated_in_both_catalogues():
    for language in ("de", "en"):
        with open(ROOT / f"translations/{language}/LC_MESSAGES/messages.po", "rb") as handle:
            catalogue = read_po(handle, locale=language)
        untranslated = [m.id for m in catalogue if m.id and not (m.string if isinstance(m.string, str) else all(m.string))]
        assert untranslated == [], f"{language}: {untranslated}"


def test_the_catalogues_contain_every_string_in_the_source(tmp_path):
    """Fails when a visible string was added without running `make messages` and translating it."""
    pot = tmp_path / "messages.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "-q", "extract", "-F", "babel.cfg", "-k", "_l",
         "-k", "lazy_gettext", "-o", str(pot), "core", "portal", "staff", "templates"],
        cwd=ROOT, check=True,
    )
    with open(pot, "rb") as handle:
        source_ids = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(handle) if m.id}
    with open(ROOT / "translations/de/LC_MESSAGES/messages.po", "rb") as handle:
        catalogue_ids = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(handle) if m.id}
    assert source_ids - catalogue_ids == set()


def test_values_in_translated_template_strings_are_escaped(app):
    template = ('{{ _("Days and times in %(zone)s", zone=zone) }}\n'
                '{{ ngettext("%(day)s: %(num)s call, %(minutes)s min, %(spend)s",'
                ' "%(day)s: %(num)s calls, %(minutes)s min, %(spend)s", 2, day=zone, minutes=3, spend="1 €") }}')
    with app.test_request_context("/", headers={"Accept-Language": "de"}):
        page = render_template_string(template, zone="<script>alert(1)</script>")
    assert page.split("\n") == ["Tage und Uhrzeiten in &lt;script&gt;alert(1)&lt;/script&gt;",
                                "&lt;script&gt;alert(1)&lt;/script&gt;: 2 Anrufe, 3 Min., 1 €"]


def test_wtforms_own_messages_are_shown_in_the_chosen_language(app):
    errors = {}
    for language in ("de", "en"):
        with app.test_request_context("/?start=soon", headers={"Accept-Language": language}):
            form = TransactionFilterForm(request.args)
            form.validate()
            errors[language] = form.start.errors
    assert errors == {"de": ["Kein gültiges Datum."], "en": ["Not a valid date value."]}
