"""Redis down: the portal keeps working, committed work answers normally, and no job is lost — follow-ups
wait in the outbox until the sweep hands them to the queue again."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import time_machine
from rq import Queue
from sqlalchemy import func, select

from app.extensions import db
from app.jobs import dispatch_overdue_followups, issue_topup_invoice
from core.clock import utcnow
from core.followups import Followup, request_followup
from core.money import eur
from core.schema import FollowupOutbox, Invoice, PrepaidBalance, SentEmail, Topup, WebhookEvent
from tests.conftest import JOBS_REDIS_URL
from tests.helpers import log_in, run_worker
from tests.mail_helpers import free_port
from tests.stripe_helpers import top_up
from tests.web.test_auto_topup import Calls, attempts, configure, customer  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def redis_down(app, redis_jobs):
    """Jobs go to a Redis where nothing listens, until ``redis_down.come_back()`` (the suite's real one)."""
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    app.extensions.pop("redis", None)

    def come_back():
        app.config["REDIS_URL"] = JOBS_REDIS_URL
        app.extensions.pop("redis", None)

    return SimpleNamespace(come_back=come_back)


def count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def outbox(app) -> list[tuple[str, list[int]]]:
    with app.app_context():
        return [tuple(row) for row in db.session.execute(
            select(FollowupOutbox.kind, FollowupOutbox.ids).order_by(FollowupOutbox.id))]


def sweep_later(app) -> int:
    """The scheduler's sweep, run after the grace the outbox gives a commit's own dispatch."""
    with time_machine.travel(utcnow() + timedelta(minutes=2), tick=True), app.app_context():
        return dispatch_overdue_followups()


def test_with_redis_down_a_paid_top_up_is_credited_processed_and_invoiced_once_redis_is_back(
        app, client, make_company, webhooks, redis_down, redis_jobs, caplog):
    company_id, email = make_company()
    log_in(client, email)
    with caplog.at_level(logging.WARNING, logger="app.jobs"):
        _, paid = top_up(client, "100")
    assert paid.status_code == 303
    assert webhooks.responses and set(webhooks.responses) == {200}
    with app.app_context():
        statuses = set(db.session.scalars(select(WebhookEvent.status)))
        assert statuses <= {"processed", "ignored"} and "processed" in statuses  # none recorded as failed
        assert db.session.get(PrepaidBalance, company_id).balance == eur("100")
        topup_id = db.session.scalar(select(Topup.id).where(Topup.company_id == company_id))
    assert "stay in the outbox" in caplog.text
    assert outbox(app) == [("issue_topup_invoice", [topup_id])]  # the invoice's job waits for Redis
    assert count(app, Invoice) == 0

    redis_down.come_back()
    with app.app_context():
        assert dispatch_overdue_followups() == 0  # within the grace the commit's own dispatch has the row
    assert sweep_later(app) == 1
    assert outbox(app) == []
    [job] = Queue("invoices", connection=redis_jobs).jobs
    assert (job.func, job.args) == (issue_topup_invoice, (topup_id,))
    run_worker(app, redis_jobs)
    assert count(app, Invoice, Invoice.topup_id == topup_id) == 1
    assert count(app, SentEmail, SentEmail.kind == "topup_receipt", SentEmail.status == "sent") == 1
    assert sweep_later(app) == 0  # nothing is handed over twice


def test_with_redis_down_a_call_end_that_starts_an_automatic_top_up_answers_its_charge(
        app, client, customer, redis_down, redis_jobs):  # noqa: F811 (the customer fixture)
    configure(client)
    answer = Calls(app, customer).end(seconds=15 * 60)  # 6,30 €: 25 → 18,70 €, below 20 €; 200 asserted
    assert answer["balance_after"] == "18.7000"
    [attempt] = attempts(app, customer)
    assert attempt.status == "pending"
    assert outbox(app) == [("run_auto_topup", [attempt.id])]

    redis_down.come_back()  # the sweep enqueues the charge and a worker runs it
    assert sweep_later(app) == 1
    run_worker(app, redis_jobs)
    [attempt] = attempts(app, customer)
    assert attempt.status == "succeeded"
    with app.app_context():
        assert db.session.get(PrepaidBalance, customer).balance == eur("128.70")  # 18,70 + 100 + 10 bonus
    assert outbox(app) == []


def test_a_follow_up_handed_to_the_queue_leaves_nothing_in_the_outbox(app, redis_jobs):
    with app.app_context():
        request_followup(db.session, Followup.ISSUE_CREDIT_NOTE, 7)
        db.session.commit()
    assert [job.args for job in Queue("invoices", connection=redis_jobs).jobs] == [(7,)]
    assert outbox(app) == []


def test_a_follow_up_of_a_rolled_back_transaction_leaves_no_outbox_row(app, redis_down):
    with app.app_context():
        request_followup(db.session, Followup.SEND_EMAIL, 1)
        db.session.flush()
        db.session.rollback()
        db.session.commit()
    assert outbox(app) == []


def test_inline_a_follow_up_runs_and_leaves_nothing_in_the_outbox(app, client, make_company):
    company_id, email = make_company()
    log_in(client, email)
    top_up(client, "100")
    assert count(app, Invoice, Invoice.company_id == company_id) == 1
    assert outbox(app) == []


def test_without_redis_logins_pages_and_top_ups_work_and_rate_limits_count_in_memory(app, make_company):
    """A portal process of its own, as wsgi.py builds it, whose Redis does not answer."""
    company_id, email = make_company()
    _, other_email = make_company()
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    done = subprocess.run([sys.executable, "-m", "tests.portal_without_redis", email, other_email], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    assert answers == {"login": 303, "billing": 200, "transactions": 200, "paid": 303, "success_page": 200,
                       "wrong_passwords": [422] * 5 + [429]}  # the limit per account still holds, in memory
    assert "Rate limit storage unreachable - falling back to in-memory storage" in done.stderr
    with app.app_context():
        assert db.session.get(PrepaidBalance, company_id).balance == eur("100")
        assert set(db.session.scalars(select(WebhookEvent.status))) <= {"processed", "ignored"}
        topup_id = db.session.scalar(select(Topup.id).where(Topup.company_id == company_id))
    assert outbox(app) == [("issue_topup_invoice", [topup_id])]
