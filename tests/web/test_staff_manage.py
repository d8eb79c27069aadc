"""Staff manage a company's users and API keys, and the bonus rules; each change is audited."""

import re

import pytest
from sqlalchemy import select

from core.accounts.users import find_user_by_email
from core.calls.api_keys import create_api_key
from app.extensions import db
from core.schema import AuditRecord, BonusRule, Role, SentEmail
from core.money import eur
from tests.helpers import csrf_token_from, log_in, open_set_password_link

STAFF_PASSWORD = "staff-password-1"


@pytest.fixture
def admin(app, make_staff):
    client = app.test_client()
    log_in(client, make_staff(Role.STAFF_ADMIN, "admin-manage@example.com"), STAFF_PASSWORD)
    return client


def token(client, company_id):
    return csrf_token_from(client.get(f"/admin/companies/{company_id}?tab=users").text)


def test_an_invited_user_sets_a_password_with_the_emailed_link_and_logs_in(app, admin, make_company):
    company_id, _ = make_company(name="Einladung GmbH")
    answer = admin.post(f"/admin/companies/{company_id}/users", data={
        "email": "neu@example.com", "name": "Nina Neu", "role": "company_member", "reason": "Auf Wunsch",
        "csrf_token": token(admin, company_id)})
    assert answer.status_code == 303
    with app.app_context():
        invite = db.session.scalar(select(SentEmail).where(SentEmail.kind == "user_invite"))
        assert (invite.recipient, invite.status) == ("neu@example.com", "sent")
        link = invite.context["set_password_url"]
        assert db.session.scalar(select(AuditRecord.action)) == "user.invite"
    link_token = link.partition("#")[2]
    newcomer = app.test_client()
    page = open_set_password_link(newcomer, link)
    assert page.status_code == 200 and "neu@example.com" in page.text
    short = newcomer.post("/set-password", data={"link": link_token, "password": "kurz", "confirm": "kurz",
                                                "csrf_token": csrf_token_from(page.text)})
    assert short.status_code == 422
    done = newcomer.post("/set-password", data={"link": link_token, "password": "ein-gutes-passwort",
                                               "confirm": "ein-gutes-passwort", "csrf_token": csrf_token_from(page.text)})
    assert done.status_code == 303
    assert log_in(newcomer, "neu@example.com", "ein-gutes-passwort").status_code == 303
    assert open_set_password_link(newcomer, link).status_code == 404  # the link dies with the first password


def test_an_existing_email_cannot_be_invited_twice(app, admin, make_company):
    company_id, email = make_company()
    answer = admin.post(f"/admin/companies/{company_id}/users", data={
        "email": email, "role": "company_admin", "reason": "x", "csrf_token": token(admin, company_id)})
    assert "existiert bereits" in admin.get(answer.headers["Location"]).text


def test_a_deactivated_user_cannot_log_in_until_reactivated(app, admin, make_company):
    company_id, email = make_company()
    with app.app_context():
        user_id = find_user_by_email(db.session, email).id
    admin.post(f"/admin/users/{user_id}/active", data={"reason": "Ausgeschieden", "csrf_token": token(admin, company_id)})
    assert log_in(app.test_client(), email).status_code == 422
    admin.post(f"/admin/users/{user_id}/active", data={"reason": "Zurück", "csrf_token": token(admin, company_id)})
    assert log_in(app.test_client(), email).status_code == 303


def test_staff_revoke_a_companys_api_key(app, admin, make_company):
    company_id, _ = make_company()
    with app.app_context():
        key_row, key = create_api_key(db.session, company_id, "Anlage")
        db.session.commit()
        key_id = key_row.id
    admin.post(f"/admin/companies/{company_id}/api-keys/{key_id}/revoke",
               data={"reason": "Schlüssel geleakt", "csrf_token": token(admin, company_id)})
    answer = app.test_client().post("/api/v1/calls/x/end", json={"duration_seconds": 1},
                                    headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 401
    other_id, _ = make_company()
    assert admin.post(f"/admin/companies/{other_id}/api-keys/{key_id}/revoke",
                      data={"reason": "x", "csrf_token": token(admin, company_id)}).status_code == 404


def test_bonus_rules_are_created_and_ended_by_admins(app, admin):
    page = admin.get("/admin/bonus-rules")
    created = admin.post("/admin/bonus-rules", data={"name": "Herbst", "min_amount": "250", "percent": "7,5",
                                                     "reason": "Aktion", "csrf_token": csrf_token_from(page.text)})
    assert created.status_code == 303
    with app.app_context():
        rule = db.session.scalar(select(BonusRule))
        assert (rule.min_amount, rule.percent_basis_points, rule.active) == (eur("250"), 750, True)
        rule_id = rule.id
    bad = admin.post("/admin/bonus-rules", data={"name": "Beides", "min_amount": "10", "percent": "5", "fixed": "3",
                                                 "reason": "x", "csrf_token": csrf_token_from(page.text)})
    assert bad.status_code == 422
    admin.post(f"/admin/bonus-rules/{rule_id}/end", data={"reason": "Aktion vorbei", "csrf_token": csrf_token_from(page.text)})
    with app.app_context():
        assert db.session.get(BonusRule, rule_id).active is False
        actions = db.session.scalars(select(AuditRecord.action).order_by(AuditRecord.id)).all()
    assert actions == ["bonus_rule.create", "bonus_rule.end"]
    assert re.search(r"Herbst.*beendet", admin.get("/admin/bonus-rules").text, re.S)


def test_a_bonus_rule_is_edited_with_its_old_and_new_state_audited(app, admin):
    from core.payments.bonuses import create_rule

    with app.app_context():
        rule_id = create_rule(db.session, "Sommer", eur("100"), fixed_amount=eur("5")).id
        db.session.commit()
    page = admin.get(f"/admin/bonus-rules/{rule_id}/edit")
    assert 'value="Sommer"' in page.text and 'value="100"' in page.text and 'value="5"' in page.text
    admin.post(f"/admin/bonus-rules/{rule_id}/edit", data={"name": "Sommer+", "min_amount": "100", "percent": "4",
                                                           "reason": "Neue Konditionen", "csrf_token": csrf_token_from(page.text)})
    with app.app_context():
        rule = db.session.get(BonusRule, rule_id)
        assert (rule.name, rule.percent_basis_points, rule.fixed_amount) == ("Sommer+", 400, None)
        record = db.session.scalar(select(AuditRecord))
        assert record.action == "bonus_rule.edit" and record.before["fixed_amount"] == eur("5")
