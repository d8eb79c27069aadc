import pytest

from core.schema import Role
from tests.helpers import csrf_token_from, log_in


def test_a_company_user_logs_in_and_lands_on_the_dashboard(client, make_company):
    _, email = make_company()
    response = log_in(client, email)
    assert response.status_code == 303
    assert response.headers["Location"] == "/business/billing"
    assert client.get("/business/billing").status_code == 200


def test_staff_land_on_the_staff_company_list(client, make_staff):
    email = make_staff()
    response = log_in(client, email, "staff-password-1")
    assert response.headers["Location"] == "/admin/companies"


def test_a_wrong_password_and_an_unknown_email_get_the_same_message(client, make_company):
    _, email = make_company()
    wrong_password = log_in(client, email, "not-the-password", )
    unknown_user = log_in(client, "nobody@example.com", "whatever-password")
    assert wrong_password.status_code == unknown_user.status_code == 422
    message = "E-Mail-Adresse oder Passwort ist nicht korrekt."
    assert message in wrong_password.text and message in unknown_user.text
    assert client.get("/business/billing").status_code == 303


def test_a_login_is_remembered_as_the_users_last_login_and_a_failed_one_is_not(app, client, make_company):
    from core.accounts.users import find_user_by_email
    from app.extensions import db

    _, email = make_company()
    log_in(client, email, "not-the-password")
    with app.app_context():
        assert find_user_by_email(db.session, email).last_login_at is None
    log_in(client, email)
    with app.app_context():
        assert find_user_by_email(db.session, email).last_login_at is not None


def test_passwords_are_stored_hashed(app, make_company):
    from core.accounts.users import find_user_by_email
    from app.extensions import db

    _, email = make_company()
    with app.app_context():
        user = find_user_by_email(db.session, email)
        assert user.password_hash.startswith(("scrypt:", "pbkdf2:"))
        assert "company-password" not in user.password_hash


def test_login_without_a_csrf_token_is_rejected(client, make_company):
    _, email = make_company()
    response = client.post("/login", data={"email": email, "password": "company-password"})
    assert response.status_code == 400
    assert client.get("/business/billing").status_code == 303


def test_login_only_follows_local_next_urls(client, make_company):
    _, email = make_company()
    response = log_in(client, email, next="https://evil.example.com/phish")
    assert response.headers["Location"] == "/business/billing"
    client.post("/logout", data={"csrf_token": csrf_token_from(client.get("/business/billing").text)})
    response = log_in(client, email, next="/business/billing/transactions?type=topup")
    assert response.headers["Location"] == "/business/billing/transactions?type=topup"


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    response = client.get("/business/billing/transactions")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/login?next=")


def test_logout_needs_a_post_with_csrf_and_ends_the_session(client, make_company):
    _, email = make_company()
    log_in(client, email)
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    token = csrf_token_from(client.get("/business/billing").text)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/business/billing").status_code == 303


def test_an_inactive_user_cannot_log_in(app, client, make_company):
    from core.accounts.users import find_user_by_email
    from app.extensions import db

    _, email = make_company()
    with app.app_context():
        find_user_by_email(db.session, email).active = False
        db.session.commit()
    assert log_in(client, email).status_code == 422


def test_who_is_signed_in_is_read_anew_for_every_request(app, client, make_company):
    """The signed-in user is a read-only copy per request: a deactivation, a role change or a
    company block by staff applies to the very next request of an open session."""
    from sqlalchemy import update

    from core.clock import utcnow
    from app.extensions import db
    from core.schema import Company, User

    company_id, email = make_company()
    log_in(client, email)
    assert 'data-testid="topup-link"' in client.get("/business/billing").text

    def change(statement):
        with app.app_context():
            db.session.execute(statement)
            db.session.commit()

    change(update(User).where(User.email == email).values(role=Role.COMPANY_MEMBER.value))
    assert 'data-testid="topup-link"' not in client.get("/business/billing").text
    change(update(Company).where(Company.id == company_id).values(blocked_at=utcnow(), blocked_reason="Test"))
    assert 'data-testid="blocked-notice"' in client.get("/business/billing").text
    change(update(User).where(User.email == email).values(active=False))
    assert client.get("/business/billing").status_code == 303  # to the login page


def test_repeated_failed_logins_for_one_account_are_rate_limited(app, client, make_company):
    _, email = make_company()
    statuses = [log_in(client, email, "wrong-password").status_code for _ in range(6)]
    assert statuses == [422] * 5 + [429]
    limited = log_in(client, email)  # even the right password waits now
    assert limited.status_code == 429
    assert "Zu viele Versuche" in limited.text
    if app.config["REDIS_URL"]:  # the PostgreSQL + Redis suite keeps the counters in Redis
        import redis

        keys = redis.Redis.from_url(app.config["REDIS_URL"]).keys("*login-account*")
        assert keys, "the login limiter should count in Redis when REDIS_URL is set"


def test_failed_logins_from_one_address_never_lock_the_owner_out_from_another(app, client, make_company):
    _, email = make_company()
    assert [log_in(client, email, "wrong-password").status_code for _ in range(6)] == [422] * 5 + [429]
    owner = app.test_client()
    owner.environ_base["REMOTE_ADDR"] = "192.0.2.44"  # the owner, elsewhere
    assert log_in(owner, email).status_code == 303


def test_successful_logins_do_not_count_towards_the_limit(client, make_company):
    _, email = make_company()
    for _ in range(7):
        assert log_in(client, email).status_code == 303
        client.post("/logout", data={"csrf_token": csrf_token_from(client.get("/business/billing").text)})


def test_a_member_cannot_reach_staff_pages_and_staff_cannot_reach_customer_pages(client, make_company, make_staff):
    _, member_email = make_company(member=True)
    log_in(client, member_email)
    assert client.get("/admin/companies").status_code == 404
    client.post("/logout", data={"csrf_token": csrf_token_from(client.get("/business/billing").text)})
    log_in(client, make_staff(Role.STAFF_SUPPORT, "support-user@example.com"), "staff-password-1")
    assert client.get("/admin/companies").status_code == 200
    assert client.get("/business/billing").status_code == 404


@pytest.mark.parametrize("path", ["/business/billing", "/business/billing/transactions", "/business/billing/transactions.csv"])
def test_customer_pages_need_a_login(client, path):
    assert client.get(path).status_code == 303


def test_a_sessions_csrf_tokens_are_accepted_and_forged_or_foreign_ones_refused(client, app, make_company):
    _, email = make_company()
    log_in(client, email)
    first = csrf_token_from(client.get("/business/billing").text)
    later = csrf_token_from(client.get("/business/billing/transactions").text)
    other = app.test_client()
    log_in(other, email)
    foreign = csrf_token_from(other.get("/business/billing").text)
    for token in ("forged", foreign):
        assert client.post("/language", data={"csrf_token": token, "language": "en"}).status_code == 400
    assert client.post("/language", data={"language": "en"}).status_code == 400
    for token in (first, later):
        assert client.post("/language", data={"csrf_token": token, "language": "en"}).status_code == 303


def test_a_csrf_token_from_before_the_login_is_refused_after_it(client, make_company):
    """Logging in renews the CSRF secret: a token planted in the session beforehand is worthless."""
    _, email = make_company()
    planted = csrf_token_from(client.get("/login").text)
    assert client.post("/language", data={"csrf_token": planted, "language": "en"}).status_code == 303  # valid now
    log_in(client, email)
    assert client.post("/language", data={"csrf_token": planted, "language": "de"}).status_code == 400
    fresh = csrf_token_from(client.get("/business/billing").text)
    assert client.post("/language", data={"csrf_token": fresh, "language": "de"}).status_code == 303
