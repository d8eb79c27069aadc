"""The set-password link keeps its token out of every request line (and so out of access logs and
Referer headers): it rides in the URL fragment and is posted."""

from contextlib import contextmanager
from urllib.parse import urlsplit

from flask import request, request_started
from sqlalchemy import select

from app.extensions import db
from core.accounts.users import find_user_by_email
from core.schema import Role, SentEmail
from tests.helpers import csrf_token_from, log_in, open_set_password_link

PASSWORD = "ein-gutes-passwort"


@contextmanager
def request_lines(app):
    """Every request line (path and query) the app handles meanwhile: what an access log records."""
    lines: list[str] = []

    def record(sender, **extra):
        lines.append(request.full_path.removesuffix("?"))

    with request_started.connected_to(record, app):
        yield lines


def invite(app, company_id: int, email: str = "neu@example.com") -> str:
    """Staff invite a user; returns the link from the email."""
    admin = app.test_client()
    log_in(admin, "admin-link@example.com", "staff-password-1")
    page = admin.get(f"/admin/companies/{company_id}?tab=users").text
    admin.post(f"/admin/companies/{company_id}/users", data={
        "email": email, "role": "company_member", "reason": "Neu im Team", "csrf_token": csrf_token_from(page)})
    with app.app_context():
        return db.session.scalar(select(SentEmail.context).where(SentEmail.kind == "user_invite"))["set_password_url"]


def test_no_request_line_handled_by_the_app_contains_the_set_password_token(app, make_company, make_staff):
    company_id, _ = make_company()
    make_staff(Role.STAFF_ADMIN, "admin-link@example.com")
    with request_lines(app) as lines:
        link = invite(app, company_id)
        parts = urlsplit(link)
        token = parts.fragment
        assert len(token) > 40 and (parts.path, parts.query) == ("/set-password", "")
        newcomer = app.test_client()
        form = open_set_password_link(newcomer, link)
        assert form.status_code == 200 and "neu@example.com" in form.text
        assert form.headers["Cache-Control"] == "no-store"
        mistyped = newcomer.post("/set-password", data={"link": token, "password": PASSWORD, "confirm": "anders-getippt",
                                                       "csrf_token": csrf_token_from(form.text)})
        assert mistyped.status_code == 422
        done = newcomer.post("/set-password", data={"link": token, "password": PASSWORD, "confirm": PASSWORD,
                                                   "csrf_token": csrf_token_from(form.text)})
        assert done.status_code == 303
        assert log_in(newcomer, "neu@example.com", PASSWORD).status_code == 303
        assert newcomer.get("/business/billing").status_code == 200
    assert "/set-password" in lines and "/set-password/open" in " ".join(lines)
    assert [line for line in lines if token in line] == []


def test_without_javascript_the_whole_link_can_be_pasted_into_the_page(app, make_company, make_staff):
    company_id, _ = make_company()
    make_staff(Role.STAFF_ADMIN, "admin-link@example.com")
    link = invite(app, company_id, "ohne-js@example.com")
    newcomer = app.test_client()
    page = newcomer.get("/set-password")
    assert page.status_code == 200 and 'name="link"' in page.text
    form = newcomer.post("/set-password/open", data={"link": f"  {link} ", "csrf_token": csrf_token_from(page.text)})
    assert form.status_code == 200 and "ohne-js@example.com" in form.text


def test_a_forged_or_used_link_sets_no_password(app, make_company):
    _, email = make_company()
    with app.app_context():
        hash_before = find_user_by_email(db.session, email).password_hash
    stranger = app.test_client()
    token = csrf_token_from(stranger.get("/set-password").text)
    for link in ("forged", "https://portal.example.com/set-password#forged", "#", "x" * 3000):
        answer = stranger.post("/set-password/open", data={"link": link, "csrf_token": token})
        assert answer.status_code == 404 and "nicht mehr gültig" in answer.text
    answer = stranger.post("/set-password", data={"link": "forged", "password": PASSWORD, "confirm": PASSWORD,
                                                  "csrf_token": token})
    assert answer.status_code == 404
    with app.app_context():
        assert find_user_by_email(db.session, email).password_hash == hash_before


def test_the_set_password_page_needs_csrf_and_changes_nothing_on_get(app, make_company, make_staff):
    company_id, _ = make_company()
    make_staff(Role.STAFF_ADMIN, "admin-link@example.com")
    link = invite(app, company_id, "csrf@example.com")
    client = app.test_client()
    assert client.post("/set-password/open", data={"link": link}).status_code == 400
    token = urlsplit(link).fragment
    assert client.post("/set-password", data={"link": token, "password": PASSWORD, "confirm": PASSWORD}).status_code == 400
    assert client.get(f"/set-password/{token}").status_code == 404  # the token never belongs in a path
    assert open_set_password_link(client, link).status_code == 200  # the link still works
