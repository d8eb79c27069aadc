import pytest

from app.extensions import db

from core.money import eur
from tests.builders import add_hold
from tests.round_trips import statements_sent
from tests.helpers import csrf_token_from, log_in


def test_the_dashboard_shows_balance_reserved_available_and_minutes_left_in_german(app, client, make_company):
    company_id, email = make_company(balance=eur("1234.56"))
    with app.app_context():
        add_hold(db.session, company_id, eur("4.2"))
        db.session.commit()
    log_in(client, email)
    page = client.get("/business/billing").text
    assert 'data-testid="balance">1.234,56\xa0€<' in page
    assert 'data-testid="reserved">4,20\xa0€<' in page
    assert 'data-testid="available">1.230,36\xa0€<' in page
    assert "≈ 2.929 Minuten übrig bei 0,42\xa0€ pro Minute" in page  # 1230.36 / 0.42 = 2929.4
    assert "Automatische Aufladung: aus" in page
    assert "Opening top-up" in page
    assert 'data-testid="low-balance-warning"' not in page


def test_a_balance_below_the_threshold_shows_the_warning(client, make_company):
    _, email = make_company(balance=eur("19.99"))
    log_in(client, email)
    page = client.get("/business/billing").text
    assert 'data-testid="low-balance-warning"' in page
    assert "unter Ihrer Warnschwelle von 20,00\xa0€" in page


def test_the_balance_widget_refreshes_itself_as_a_partial_for_htmx(client, make_company):
    _, email = make_company(balance=eur("50"))
    log_in(client, email)
    partial = client.get("/business/billing", headers={"HX-Request": "true"})
    assert partial.text.lstrip().startswith("{#") is False
    assert partial.text.strip().startswith('<section id="balance-card"')
    assert "<html" not in partial.text
    assert "HX-Request" in partial.headers["Vary"]
    full = client.get("/business/billing")
    assert "<html" in full.text and "HX-Request" in full.headers["Vary"]


def test_the_balance_card_refreshing_itself_does_not_read_the_ledger(app, client, make_company):
    _, email = make_company(balance=eur("50"))
    log_in(client, email)
    with app.app_context():
        engine = db.engine
    for headers, reads_ledger in (({}, True), ({"HX-Request": "true"}, False)):
        with statements_sent(engine) as statements:
            client.get("/business/billing", headers=headers)
        assert any("FROM balance_transactions" in statement for statement in statements) is reads_ledger


def test_the_dashboard_shows_only_the_users_own_company(client, make_company):
    _, email = make_company(name="Mine GmbH", balance=eur("10"))
    make_company(name="Theirs AG", balance=eur("999"))
    log_in(client, email)
    page = client.get("/business/billing").text
    assert "Mine GmbH" in page and "Theirs AG" not in page and "999" not in page


def test_company_members_can_read_the_dashboard(client, make_company):
    _, email = make_company(balance=eur("10"), member=True)
    log_in(client, email)
    assert client.get("/business/billing").status_code == 200


def pages_without_parameters(app, blueprint: str) -> list[str]:
    """Every GET page of ``blueprint`` that needs no value in its path."""
    return sorted(rule.rule for rule in app.url_map.iter_rules()
                  if rule.endpoint.startswith(f"{blueprint}.") and "GET" in rule.methods and not rule.arguments)


def test_no_get_page_changes_anything(app, client, make_company, make_staff):
    """Every customer and staff page without path values, read by its users: SELECTs only."""
    _, email = make_company(balance=eur("50"))
    staff = app.test_client()
    log_in(client, email)
    log_in(staff, make_staff(), "staff-password-1")
    with app.app_context():
        engine = db.engine
    visits = [(client, path) for path in pages_without_parameters(app, "portal")]
    visits += [(staff, path) for path in pages_without_parameters(app, "staff")]
    shown = 0
    for browser, path in visits:
        with statements_sent(engine) as statements:
            status = browser.get(path).status_code
        assert status in (200, 404), path  # 404: a page whose query names no top-up of the company
        shown += status == 200
        statements = [statement for statement in statements if statement.strip() != ";"]  # the pool's pre-ping
        verbs = {statement.lstrip().split(None, 1)[0].upper() for statement in statements}
        assert verbs <= {"SELECT"}, (path, verbs)
    assert shown >= 15  # the check reaches the pages


@pytest.mark.parametrize("path", ["/business/billing", "/business/billing/transactions",
                                  "/business/billing/transactions?type=charge"])
def test_the_ledger_pages_only_read(app, client, make_company, path):
    """No GET changes anything."""
    _, email = make_company(balance=eur("50"))
    log_in(client, email)
    with app.app_context():
        engine = db.engine
    with statements_sent(engine) as statements:
        assert client.get(path).status_code == 200
    statements = [statement for statement in statements if statement.strip() != ";"]  # the pool's pre-ping
    assert statements and {statement.lstrip().split(None, 1)[0].upper() for statement in statements} == {"SELECT"}




def test_ledger_rows_are_shown_in_the_readers_language(client, make_company):
    _, email = make_company(balance=eur("50"))
    log_in(client, email)
    german = client.get("/business/billing/transactions").text
    client.post("/language", data={"language": "en", "csrf_token": csrf_token_from(german)})
    english = client.get("/business/billing/transactions").text
    assert ">Top-up<" in english and "€50.00" in english
    assert ">Aufladung<" in german and "50,00\xa0€" in german


def test_the_menu_marks_the_current_page_for_the_kind_of_user_in_their_language(client, make_company, make_staff):
    _, email = make_company()
    log_in(client, email)
    dashboard = client.get("/business/billing").text
    assert 'href="/business/billing" aria-current="page">Übersicht</a>' in dashboard
    transactions = client.get("/business/billing/transactions").text
    assert 'href="/business/billing" >Übersicht</a>' in transactions
    assert 'href="/business/billing/transactions" aria-current="page">Buchungen</a>' in transactions
    client.post("/language", data={"language": "en", "csrf_token": csrf_token_from(dashboard)})
    assert 'aria-current="page">Dashboard</a>' in client.get("/business/billing").text
    client.post("/logout", data={"csrf_token": csrf_token_from(dashboard)})
    log_in(client, make_staff(), "staff-password-1")
    staff_page = client.get("/admin/companies").text
    assert 'href="/admin/audit"' in staff_page and 'href="/business/billing"' not in staff_page
