"""A login ends on the server: logging out, a new password, a deactivation or a role change end
every session of the user, a copied cookie included; a session ends after its maximum age and
after a time without requests."""

from datetime import datetime, timedelta, timezone

import time_machine

from app.extensions import db
from core.accounts.users import find_user_by_email, set_password_token
from core.schema import Role
from tests.helpers import csrf_token_from, log_in

ENDED = "Ihre Sitzung ist beendet. Bitte melden Sie sich erneut an."


def cookie_of(client) -> str:
    return client.get_cookie("session").value


def replay(app, cookie: str):
    """Another browser, holding a copy of a session cookie, asks for a customer page."""
    thief = app.test_client()
    thief.set_cookie("session", cookie)
    return thief.get("/business/billing")


def log_out(client):
    return client.post("/logout", data={"csrf_token": csrf_token_from(client.get("/business/billing").text)})


def user_id_of(app, email: str) -> int:
    with app.app_context():
        return find_user_by_email(db.session, email).id


def test_a_session_cookie_copied_before_logout_is_refused_after_it(app, client, make_company):
    _, email = make_company()
    log_in(client, email)
    copied = cookie_of(client)
    assert replay(app, copied).status_code == 200  # the copy works while the login lasts
    assert log_out(client).status_code == 303
    refused = replay(app, copied)
    assert refused.status_code == 303 and refused.headers["Location"].startswith("/login")


def test_logging_out_on_one_device_ends_the_session_on_every_other(app, client, make_company):
    _, email = make_company()
    phone = app.test_client()
    log_in(client, email)
    log_in(phone, email)
    log_out(client)
    assert phone.get("/business/billing").status_code == 303
    assert ENDED in phone.get("/login").text
    assert log_in(phone, email).status_code == 303  # a new login starts a new session


def test_a_new_password_ends_every_session_of_the_user(app, client, make_company):
    _, email = make_company()
    log_in(client, email)
    copied = cookie_of(client)
    with app.app_context():
        token = set_password_token(find_user_by_email(db.session, email), app.config["SECRET_KEY"])
    newcomer = app.test_client()
    page = newcomer.get("/set-password")
    newcomer.post("/set-password", data={"link": token, "password": "ein-neues-passwort",
                                         "confirm": "ein-neues-passwort", "csrf_token": csrf_token_from(page.text)})
    assert client.get("/business/billing").status_code == 303
    assert replay(app, copied).status_code == 303


def test_staff_deactivating_a_user_ends_their_sessions_at_once(app, client, make_company, make_staff):
    company_id, email = make_company()
    log_in(client, email)
    copied = cookie_of(client)
    admin = app.test_client()
    log_in(admin, make_staff(Role.STAFF_ADMIN, "admin-sessions@example.com"), "staff-password-1")
    token = csrf_token_from(admin.get(f"/admin/companies/{company_id}?tab=users").text)
    user_id = user_id_of(app, email)
    admin.post(f"/admin/users/{user_id}/active", data={"reason": "Ausgeschieden", "csrf_token": token})
    admin.post(f"/admin/users/{user_id}/active", data={"reason": "Doch nicht", "csrf_token": token})
    assert client.get("/business/billing").status_code == 303  # reactivated, but the old session stays ended
    assert replay(app, copied).status_code == 303


def test_staff_changing_a_users_role_ends_their_sessions_and_is_audited(app, client, make_company, make_staff):
    from sqlalchemy import select

    from core.schema import AuditRecord

    company_id, email = make_company()
    log_in(client, email)
    admin = app.test_client()
    log_in(admin, make_staff(Role.STAFF_ADMIN, "admin-roles@example.com"), "staff-password-1")
    page = admin.get(f"/admin/companies/{company_id}?tab=users").text
    assert 'data-testid="change-role"' in page
    answer = admin.post(f"/admin/users/{user_id_of(app, email)}/role", data={
        "role": "company_member", "reason": "Nur noch lesen", "csrf_token": csrf_token_from(page)})
    assert answer.status_code == 303
    assert client.get("/business/billing").status_code == 303
    log_in(client, email)
    assert 'data-testid="topup-link"' not in client.get("/business/billing").text  # a member now
    with app.app_context():
        record = db.session.scalar(select(AuditRecord).where(AuditRecord.action == "user.role"))
        assert (record.before, record.after) == ({"role": "company_admin"}, {"role": "company_member"})


def test_a_role_outside_the_company_roles_is_refused_and_changes_nothing(app, client, make_company, make_staff):
    company_id, email = make_company()
    log_in(client, email)
    admin = app.test_client()
    log_in(admin, make_staff(Role.STAFF_ADMIN, "admin-roles2@example.com"), "staff-password-1")
    token = csrf_token_from(admin.get(f"/admin/companies/{company_id}?tab=users").text)
    answer = admin.post(f"/admin/users/{user_id_of(app, email)}/role",
                        data={"role": "staff_admin", "reason": "Versuch", "csrf_token": token})
    assert "Es wurde nichts geändert" in admin.get(answer.headers["Location"]).text
    assert client.get("/business/billing").status_code == 200  # still signed in, still an admin
    with app.app_context():
        assert find_user_by_email(db.session, email).role == Role.COMPANY_ADMIN.value


def test_a_session_ends_after_the_idle_time_without_requests(app, client, make_company):
    _, email = make_company()
    start = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
    idle = timedelta(minutes=app.config["SESSION_IDLE_MINUTES"])
    with time_machine.travel(start, tick=False) as clock:
        log_in(client, email)
        clock.shift(idle - timedelta(minutes=1))
        assert client.get("/business/billing").status_code == 200  # this request counts as activity
        clock.shift(idle - timedelta(minutes=1))
        assert client.get("/business/billing").status_code == 200
        clock.shift(idle + timedelta(minutes=1))
        ended = client.get("/business/billing")
        assert ended.status_code == 303 and ended.headers["Location"].startswith("/login")
        assert ENDED in client.get("/login").text


def test_a_session_ends_at_its_maximum_age_however_busy_it_is(app, client, make_company):
    _, email = make_company()
    start = datetime(2026, 11, 23, 6, 0, tzinfo=timezone.utc)
    step = timedelta(minutes=app.config["SESSION_IDLE_MINUTES"] / 2)
    with time_machine.travel(start, tick=False) as clock:
        log_in(client, email)
        now = start
        while now + step < start + timedelta(hours=app.config["SESSION_MAX_HOURS"]):
            clock.shift(step)
            now += step
            assert client.get("/business/billing").status_code == 200
        clock.shift(step)
        assert client.get("/business/billing").status_code == 303


def test_a_copied_cookie_gets_no_younger_than_when_it_was_copied(app, client, make_company):
    """The times sit in the signed cookie: a copy keeps its own last activity, so replaying it after
    the idle time is refused even while the owner's own session stays busy."""
    _, email = make_company()
    start = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
    idle = timedelta(minutes=app.config["SESSION_IDLE_MINUTES"])
    with time_machine.travel(start, tick=False) as clock:
        log_in(client, email)
        copied = cookie_of(client)
        for _ in range(3):
            clock.shift(idle / 2)
            assert client.get("/business/billing").status_code == 200
        assert replay(app, copied).status_code == 303


def test_a_remember_me_cookie_does_not_sign_anyone_in(app, make_company):
    """The portal issues no remember-me cookie; one made with the app's own key is refused as well,
    because it carries no login times."""
    from flask_login import login_user

    from app.auth import LoginUser
    from core.accounts.users import signed_in_user

    _, email = make_company()
    with app.test_request_context("/login"):
        user = LoginUser.of(signed_in_user(db.session, find_user_by_email(db.session, email).id))
        login_user(user, remember=True)
        response = app.process_response(app.response_class())
    remember = next(header for header in response.headers.getlist("Set-Cookie") if header.startswith("remember_token="))
    browser = app.test_client()
    browser.set_cookie("remember_token", remember.split(";", 1)[0].split("=", 1)[1])
    assert browser.get("/business/billing").status_code == 303
