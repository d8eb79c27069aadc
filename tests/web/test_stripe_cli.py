"""`flask stripe replay` and `flask bonus` commands."""

from sqlalchemy import select

from app.extensions import db

from core.schema import BonusRule, PrepaidBalance, WebhookEvent
from core.money import eur
from tests.helpers import log_in
from tests.stripe_helpers import top_up


def test_replaying_a_processed_event_changes_nothing(app, client, make_company):
    company_id, email = make_company()
    log_in(client, email)
    top_up(client, "100")
    with app.app_context():
        event_id = db.session.scalar(select(WebhookEvent.stripe_event_id).where(WebhookEvent.type == "checkout.session.completed"))
    result = app.test_cli_runner().invoke(args=["stripe", "replay", event_id])
    assert result.exit_code == 0 and "processed" in result.output
    with app.app_context():
        assert db.session.get(PrepaidBalance, company_id).balance == eur("100")


def test_failed_events_are_recorded_and_credit_when_replayed(app, client, make_company, monkeypatch):
    import core.payments.webhooks

    company_id, email = make_company()
    log_in(client, email)

    def database_down(*_args):
        raise RuntimeError("database went away")

    for event_type in ("checkout.session.completed", "payment_intent.succeeded"):
        monkeypatch.setitem(core.payments.webhooks.HANDLERS, event_type, database_down)
    _, paid = top_up(client, "100")
    with app.app_context():
        failed = db.session.scalars(select(WebhookEvent).where(WebhookEvent.status == "failed")).all()
        assert {e.type for e in failed} == {"checkout.session.completed", "payment_intent.succeeded"}
        assert all("database went away" in e.error and e.attempts == 1 for e in failed)
        assert db.session.get(PrepaidBalance, company_id).balance == 0
    monkeypatch.undo()
    result = app.test_cli_runner().invoke(args=["stripe", "replay", "--failed"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert "failed" not in set(db.session.scalars(select(WebhookEvent.status)))
        assert db.session.get(PrepaidBalance, company_id).balance == eur("100")


def test_replay_of_an_unknown_event_exits_1(app):
    result = app.test_cli_runner().invoke(args=["stripe", "replay", "evt_unknown"])
    assert result.exit_code == 1 and "No stored event" in result.output


def test_bonus_rules_are_added_and_listed_from_the_command_line(app):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["bonus", "add", "--name", "Herbst", "--min-amount", "250", "--percent", "7.5"]).exit_code == 0
    assert runner.invoke(args=["bonus", "add", "--name", "Bad", "--min-amount", "10"]).exit_code == 2
    listing = runner.invoke(args=["bonus", "list"]).output
    assert "from 250.0000 EUR: +7.5%" in listing and "Herbst" in listing
    with app.app_context():
        assert db.session.scalar(select(BonusRule.percent_basis_points)) == 750
