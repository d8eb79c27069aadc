"""Background jobs: follow-ups enqueued by reference after the commit, inline without Redis, on a real RQ
worker with Redis; periodic work."""

import logging
from datetime import timedelta

import pytest
from rq import Queue
from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from sqlalchemy import func, select, update
from werkzeug.utils import import_string

from app.jobs import FOLLOWUP_JOBS, Job, issue_credit_note, issue_topup_invoice
from app.queue import EMAILS, QUEUES, enqueue
from core.followups import Followup, request_followup
from core.money import eur
from core.notifications.mail import EmailKind, queue_email
from app.extensions import db
from core.schema import Company, Invoice, PrepaidBalance, SentEmail
from tests.helpers import log_in, run_worker
from tests.mail_helpers import free_port
from tests.stripe_helpers import top_up


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
    [job] = Queue("invoices", connection=redis_jobs).jobs
    assert job.func is issue_topup_invoice  # enqueued by reference, resolved by the worker
    run_worker(app, redis_jobs)
    assert count(app, Invoice, Invoice.company_id == company_id) == 1
    assert count(app, SentEmail, SentEmail.status == "sent") == 1


def test_a_job_run_twice_changes_nothing(app, client, make_company, redis_jobs):
    company_id, email = make_company()
    log_in(client, email)
    top_up(client, "100")
    job = Queue("invoices", connection=redis_jobs).jobs[0]
    Queue("invoices", connection=redis_jobs).enqueue(job.func, *job.args)
    run_worker(app, redis_jobs)
    assert count(app, Invoice, Invoice.company_id == company_id) == 1
    assert count(app, SentEmail) == 1


def test_a_failing_job_is_retried_later_and_kept_visible(app, redis_jobs):
    with app.app_context():
        enqueue("invoices", issue_credit_note, 987654)  # no such refund
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
    scheduled = {job.name: job for job in scheduler.get_jobs()}
    assert set(scheduled) == {"low-balance warnings", "monthly statements", "retry unsent email",
                              "issue missing invoices", "expire stale reservations",
                              "settle automatic top-up attempts", "process stuck Stripe events",
                              "enqueue follow-ups left in the outbox"}
    assert scheduled["low-balance warnings"].cron == "*/30 * * * *"
    assert scheduled["monthly statements"].cron == "0 3 1 * *"
    assert scheduled["enqueue follow-ups left in the outbox"].cron == "* * * * *"
    for job in scheduled.values():  # each resolves, as the scheduler does, to a job function of app.jobs
        assert import_string(f"app.jobs.{job.func.__name__}") is job.func


def test_lost_invoice_jobs_are_caught_up(app, client, make_company, redis_jobs):
    company_id, email = make_company()
    log_in(client, email)
    top_up(client, "100")
    redis_jobs.flushdb()  # the queued job is lost
    assert "1 document(s) issued." in app.test_cli_runner().invoke(args=["billing", "issue-missing-documents"]).output
    assert count(app, Invoice, Invoice.company_id == company_id) == 1


# -- follow-ups: enqueued by reference, after the commit ---------------------------------------------------------

def queued_jobs(connection) -> list:
    return [job for name in QUEUES for job in Queue(name, connection=connection).jobs]


def test_every_follow_up_kind_resolves_to_a_job_function_of_app_jobs():
    assert set(FOLLOWUP_JOBS) == set(Followup)
    for kind, job in FOLLOWUP_JOBS.items():
        assert import_string(f"app.jobs.{job.function.__name__}") is job.function, kind
        assert job.queue in QUEUES


def test_every_follow_up_enqueued_on_redis_names_its_job_function(app, redis_jobs):
    with app.app_context():
        for number, kind in enumerate(Followup, start=1):
            request_followup(db.session, kind, number)
        db.session.commit()
    enqueued = {(job.origin, job.func, job.args) for job in queued_jobs(redis_jobs)}
    assert enqueued == {(FOLLOWUP_JOBS[kind].queue, FOLLOWUP_JOBS[kind].function, (number,))
                        for number, kind in enumerate(Followup, start=1)}


def test_a_follow_up_is_enqueued_once_and_only_after_its_transaction_commits(app, redis_jobs):
    with app.app_context():
        request_followup(db.session, Followup.ISSUE_TOPUP_INVOICE, 41)
        request_followup(db.session, Followup.ISSUE_TOPUP_INVOICE, 41)
        db.session.flush()
        assert queued_jobs(redis_jobs) == []
        db.session.commit()
        [job] = queued_jobs(redis_jobs)
        assert (job.origin, job.func, job.args) == ("invoices", issue_topup_invoice, (41,))
        db.session.commit()  # a later commit does not enqueue it again
    assert len(queued_jobs(redis_jobs)) == 1


def test_a_follow_up_of_a_rolled_back_or_abandoned_transaction_is_never_enqueued(app, redis_jobs):
    with app.app_context():
        request_followup(db.session, Followup.SEND_EMAIL, 1)
        db.session.rollback()
        request_followup(db.session, Followup.SEND_EMAIL, 2)
        db.session.close()
        db.session.commit()
    with app.app_context():  # a new app context: a new session, which knows nothing of the old requests
        db.session.commit()
    assert queued_jobs(redis_jobs) == []


def test_inline_a_job_runs_after_the_commit_in_its_own_session(app, make_company):
    company_id, _ = make_company()
    with app.app_context():
        outer = db.session()
        company = db.session.get(Company, company_id)
        email = queue_email(db.session, company_id=company_id, kind=EmailKind.LOW_BALANCE, dedupe_key="inline-1",
                            context={"balance": eur("5"), "threshold": eur("20")})
        db.session.commit()  # the entry point's commit dispatches the job
        assert db.session() is outer  # the job's app context had a session of its own
        assert email.status == "sent"  # the job committed; this session reads it afresh
        company.name = "Still Writable GmbH"
        db.session.commit()
    with app.app_context():
        assert db.session.get(Company, company_id).name == "Still Writable GmbH"


def test_inline_a_programming_error_in_a_job_is_raised(app):
    with app.app_context():
        request_followup(db.session, Followup.SEND_EMAIL)  # the job needs an email id
        with pytest.raises(TypeError):
            db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(SentEmail)) == 0  # the session still works


def test_inline_an_unimportable_job_is_raised_not_logged(app, monkeypatch):
    def missing_module(email_id):
        import app.no_such_module  # noqa: F401

    monkeypatch.setitem(FOLLOWUP_JOBS, Followup.SEND_EMAIL, Job(missing_module, EMAILS))
    with app.app_context():
        request_followup(db.session, Followup.SEND_EMAIL, 1)
        with pytest.raises(ImportError):
            db.session.commit()


def test_inline_an_operational_failure_is_logged_and_stays_visible_in_its_record(app, make_company, monkeypatch,
                                                                                  caplog):
    company_id, _ = make_company()
    monkeypatch.setitem(app.config, "SMTP_HOST", "127.0.0.1")
    monkeypatch.setitem(app.config, "SMTP_PORT", free_port())  # nothing listens: the connection is refused
    with app.app_context(), caplog.at_level(logging.ERROR, logger="app.queue"):
        email = queue_email(db.session, company_id=company_id, kind=EmailKind.LOW_BALANCE, dedupe_key="smtp-down",
                            context={"balance": eur("5"), "threshold": eur("20")})
        db.session.commit()  # the entry point's commit dispatches the job, which records the failure
        assert (email.status, email.attempts) == ("failed", 1)
    assert "inline job send_email" in caplog.text and "ConnectionRefusedError" in caplog.text
