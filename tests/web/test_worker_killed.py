"""A worker killed in the middle of a job (SIGKILL: out of memory, a node lost): the job runs again on
another worker, automatically and once, with the effect of one run. Real `rq worker` processes on the
suite's Redis, as the README starts them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from rq import Queue
from rq.job import JobStatus
from rq.registry import FailedJobRegistry
from sqlalchemy import select

from app.extensions import db
from app.jobs import send_email
from core.money import eur
from core.notifications.mail import EmailKind, queue_email
from core.schema import SentEmail
from tests.conftest import JOBS_REDIS_URL
from tests.mail_helpers import SmtpSink

ROOT = Path(__file__).resolve().parents[2]
RQ = str(Path(sys.executable).parent / "rq")


def rq_worker(smtp_port: int, *options: str, rq: tuple[str, ...] = (RQ,), **environ: str) -> subprocess.Popen:
    """`rq worker` as `make worker` runs it (``options`` make its ticks shorter, for the test's sake), in a
    process group of its own; ``rq`` the command that stands for `rq`, ``environ`` more of its environment."""
    env = {**os.environ, "REDIS_URL": JOBS_REDIS_URL, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port),
           "SMTP_STARTTLS": "0", **environ}
    return subprocess.Popen([*rq, "worker", "--url", JOBS_REDIS_URL, "-w", "worker.AppWorker", "--with-scheduler",
                             *options, "emails"], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop(process: subprocess.Popen, sig: signal.Signals, *more: int) -> str:
    """Signal the worker's process group (and the processes ``more``); its error output once it ended."""
    os.killpg(process.pid, sig)
    for pid in more:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:  # e.g. the scheduler's process, in the worker's group, is gone already
            pass
    _, stderr = process.communicate(timeout=60)  # every holder of its stderr pipe has ended
    return stderr


def forked_children(process: subprocess.Popen) -> list[int]:
    """The worker's scheduler and the horse that runs its job (in a process group of its own, so a
    signal to the worker's group misses it)."""
    listed = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True)
    return [int(pid) for pid in listed.stdout.split()]


def email_row(app, email_id: int) -> SentEmail:
    with app.app_context():
        row = db.session.get(SentEmail, email_id)
        db.session.expunge_all()
        return row


def test_a_job_whose_worker_was_killed_runs_again_on_the_next_worker_and_sends_once(app, make_company, redis_jobs):
    company_id, _ = make_company()
    with app.app_context():
        email_id = queue_email(db.session, company_id=company_id, kind=EmailKind.LOW_BALANCE, dedupe_key="killed",
                               context={"balance": eur("5"), "threshold": eur("20")}).id
        db.session.commit()  # the commit enqueues send_email on Redis
    [job] = Queue("emails", connection=redis_jobs).jobs
    assert (job.func, job.args) == (send_email, (email_id,))

    # A mail server that accepts the connection and never answers: the job hangs inside it.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        silent.settimeout(120)
        first = rq_worker(silent.getsockname()[1], "--job-monitoring-interval", "1")
        try:
            connection, _ = silent.accept()  # the job is running now, in the middle of sending
        finally:
            # The machine or container goes away: the worker and its horse die at once, no handler runs.
            stderr = stop(first, signal.SIGKILL, *forked_children(first))
        connection.close()
    assert job.get_status(refresh=True) == JobStatus.STARTED, stderr  # as the dead worker left it
    assert email_row(app, email_id).status == "queued"  # its unit of work died with it

    sink = SmtpSink().start()
    second = rq_worker(sink.port, "--maintenance-interval", "5", "--worker-ttl", "20")
    try:
        deadline = time.monotonic() + 300
        while email_row(app, email_id).status != "sent" and time.monotonic() < deadline:
            time.sleep(1)
    finally:
        stderr = stop(second, signal.SIGTERM)  # a warm shutdown: it finishes what it runs
        sink.stop()
    row = email_row(app, email_id)
    assert (row.status, row.attempts) == ("sent", 1), stderr
    assert len(sink.messages) == 1
    assert job.get_status(refresh=True) == JobStatus.FINISHED
    assert len(FailedJobRegistry("emails", connection=redis_jobs)) == 0
