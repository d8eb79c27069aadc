"""The forking worker the README recommends builds the app once, before it forks: every work horse
inherits it (building it costs seconds of CPU) and opens its own database connections."""

from __future__ import annotations

import sys

from rq import Queue

from app.extensions import db
from core.money import eur
from core.notifications.mail import EmailKind, queue_email
from tests.mail_helpers import SmtpSink
from tests.web.test_worker_killed import email_row, rq_worker

COUNTING_RQ = (sys.executable, "-m", "tests.rq_worker_counting_apps")


def test_a_forking_worker_builds_the_app_once_and_its_horses_run_every_job_in_it(
        app, make_company, redis_jobs, tmp_path):
    company_id, _ = make_company()
    with app.app_context():
        email_ids = [queue_email(db.session, company_id=company_id, kind=EmailKind.LOW_BALANCE,
                                 dedupe_key=f"fork-{n}", context={"balance": eur("5"), "threshold": eur("20")}).id
                     for n in range(2)]
        db.session.commit()  # the commit enqueues two send_email jobs on Redis
    assert Queue("emails", connection=redis_jobs).count == 2
    builds = tmp_path / "app-builds"

    sink = SmtpSink().start()
    try:
        worker = rq_worker(sink.port, "--burst", rq=COUNTING_RQ, APP_BUILDS_FILE=str(builds))
        _, stderr = worker.communicate(timeout=120)  # burst: it ends once both jobs ran
    finally:
        sink.stop()
    assert worker.returncode == 0, stderr
    assert [email_row(app, email_id).status for email_id in email_ids] == ["sent", "sent"], stderr
    assert len(sink.messages) == 2
    assert builds.read_text().split() == [str(worker.pid)], stderr  # the worker built it, no horse did
