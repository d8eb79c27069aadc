"""Background jobs: inline without Redis, on a real RQ worker with Redis; periodic work."""

import os
from datetime import timedelta

import pytest
from redis import Redis
from rq import Queue
from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from sqlalchemy import func, select, update

from core.schema import Invoice, PrepaidBalance, SentEmail, db
from core.money import eur
from app.queue import QUEUES
from tests.helpers import log_in
from tests.stripe_helpers import top_up
from worker import AppSimpleWorker

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0] + "/3"


@pytest.fixture
def redis_jobs(app):
    """Jobs go to RQ on the local Redis (which must be running: no skip) for the length of a test."""
    connection = Redis.from_url(REDIS_URL)
    connection.ping()
    connection.flushdb()
    saved = app.config["JOBS_INLINE"], app.config["REDIS_URL"], app.extensions.pop("redis", None)
    app.config.update(JOBS_INLINE=False, REDIS_URL=REDIS_URL)
    yield connection
    app.config["JOBS_INLINE"], app.config["REDIS_URL"] = saved[0], saved[1]
    app.extensions.pop("redis", None)
    if saved[2] is not None:
        app.extensions["redis"] = saved[2]
    connection.flushdb()


def run_worker(app, connection):
    worker = AppSimpleWorker([Queue(name, connection=connection) for name in QUEUES], connection=connection)
    worker.flask_app = app
    worker.work(burst=True)


def count(app, model, *where):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_without_redis_the_invoice_and_receipt_are_made_inline(app, client, make_company):
    company_id, email = make_company()
    log_in(client, email)
    top_up(client, "100")
    assert count(app, Invoice, Invoice.company_id == company_id) == 1
    with app.app_context():
        receipt = db.session.scalar(select(SentEmail).where(SentEmail.company_id == company_id))
        assert (receipt.kind, receipt.status, receipt.recipient) == ("topup_receipt", "sent", email)


def test_with_redis_a_real_worker_issues_the_invoice_and_sends_the_receipt(app, client, make_company, redis_jobs):
    company_id, email = make_company()
    log_in(client, email)
    top_up(client, "100")
    assert count(app, Invoice, Invoice.company_id == company_id) == 0  # queued, not done in the request
    assert Queue("invoices", connection=redis_jobs).count == 1
    run_worker(app, redis_jobs)
    assert count(app, Invoice, Invoice.company_id == company_id) == 1
    assert count(app, SentEmail, SentEmail.status == "sent") == 1


def test_a_job_run_twice_changes_nothing(app, client, make_company, redis_jobs):
    company_id, email = make_company()
    log_in(client, email)
    top_up(client, "100")
    job = Queue("invoices", connection=redis_jobs).jobs[0]
    Queue("invoices", connection=redis_jobs).enqueue(job.func_name, *job.args)
    run_worker(app, redis_jobs)
    assert count(app, Invoice, Invoice.company_id == company_id) == 1
    assert count(app, SentEmail) == 1


def test_a_failing_job_is_retried_later_and_kept_visible(app, redis_jobs):
    with app.test_request_context():
        from app.queue import enqueue

        enqueue("invoices", "app.jobs.issue_credit_note", 987654)  # no such refund
    run_worker(app, redis_jobs)
    scheduled = ScheduledJobRegistry("invoices", connection=redis_jobs)
    failed = FailedJobRegistry("invoices", connection=redis_jobs)
    assert len(scheduled) + len(failed) == 1
    [job_id] = scheduled.get_job_ids() or failed.get_job_ids()
    assert Queue("invoices", connection=redis_jobs).fetch_job(job_id).retries_left == 4


def test_a_company_below_its_threshold_is_warned_once_a_day(app, make_company):
    low_id, email = make_company(balance=eur("5"))
    make_company(balance=eur("500"))
    runner = app.test_cli_runner()
    assert "1 company(ies) warned." in runner.invoke(args=["billing", "check-low-balances"]).output
    assert "0 company(ies) warned." in runner.invoke(args=["billing", "check-low-balances"]).output
    with app.app_context():
        warning = db.session.scalar(select(SentEmail).where(SentEmail.kind == "low_balance"))
        assert (warning.company_id, warning.recipient, warning.status) == (low_id, email, "sent")
        db.session.execute(update(PrepaidBalance).where(PrepaidBalance.company_id == low_id)
                           .values(last_warning_sent_at=PrepaidBalance.last_warning_sent_at - timedelta(hours=25)))
        db.session.commit()
    assert "1 company(ies) warned." in runner.invoke(args=["billing", "check-low-balances", "--company", str(low_id)]).output
    assert count(app, SentEmail, SentEmail.kind == "low_balance") == 2


def test_a_company_above_its_threshold_is_never_warned(app, make_company):
    company_id, _ = make_company(balance=eur("20"))  # exactly the threshold is not below it
    result = app.test_cli_runner().invoke(args=["billing", "check-low-balances", "--company", str(company_id)])
    assert "0 company(ies) warned." in result.output


def test_the_cron_schedule_loads_and_names_the_periodic_jobs(redis_jobs):
    from rq.cron import CronScheduler

    scheduler = CronScheduler(connection=redis_jobs)
    scheduler.load_config_from_file("app/cron.py")
    jobs = {job.name: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"low-balance warnings", "monthly statements", "retry unsent email", "issue missing invoices",
                         "expire stale reservations"}
    assert jobs["low-balance warnings"].cron == "*/30 * * * *"
    assert jobs["monthly statements"].cron == "0 3 1 * *"
    assert jobs["low-balance warnings"].func.__module__ == "app.jobs"


def test_lost_invoice_jobs_are_caught_up(app, client, make_company, redis_jobs):
    company_id, email = make_company()
    log_in(client, email)
    top_up(client, "100")
    redis_jobs.flushdb()  # the queued job is lost
    assert "1 document(s) issued." in app.test_cli_runner().invoke(args=["billing", "issue-missing-documents"]).output
    assert count(app, Invoice, Invoice.company_id == company_id) == 1
