"""Enqueueing background work: RQ on Redis when REDIS_URL is set, else run at once, in-process.

Jobs are enqueued by reference to their function (``enqueue(EMAILS, send_email, email_id)``); RQ
stores the function's import path and the worker imports it, so every job function is a module-level
function of ``app.jobs`` (tests/web/test_jobs.py proves that each one resolves). Failed RQ jobs are
retried with growing pauses and then stay in RQ's failed registry.

Inline (``JOBS_INLINE``: no REDIS_URL, and the tests) the job runs right away, and the rule for its
errors is: an :data:`OPERATIONAL_ERRORS` failure — the outside world failed (mail server, Stripe, the
network or file system, a busy or unreachable database) — is logged and swallowed, as a worker would
retry it; it stays visible in its own records (an email ``failed``, an attempt's message, a missing
invoice that ``billing issue-missing-documents`` issues). Every other exception is a programming
error (ImportError, AttributeError, TypeError, NameError, a failed lookup...) and is raised to the
caller, so a test or a developer sees it at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from flask import current_app
from sqlalchemy.exc import OperationalError

from app.config import REDIS_TIMEOUTS
from core.payments.gateway import PaymentError

if TYPE_CHECKING:
    from redis import Redis

log = logging.getLogger(__name__)

INVOICES, EMAILS, BILLING = "invoices", "emails", "billing"
QUEUES = (INVOICES, EMAILS, BILLING)
RETRY_PAUSES = [10, 60, 300, 1800, 3600]  # seconds
FAILED_JOBS_KEPT_SECONDS = 30 * 24 * 3600

# OSError covers smtplib's errors, refused and timed-out connections and file system failures.
OPERATIONAL_ERRORS: tuple[type[Exception], ...] = (OSError, PaymentError, OperationalError)


class QueueUnavailable(Exception):
    """Redis did not take the job (down, unreachable, timed out): it was not enqueued."""


def redis_connection(app=None) -> Redis:
    # redis and rq are imported here and in enqueue, not at start-up: inline (no REDIS_URL) never
    # needs them, and importing them costs every process ~0.2 s of CPU.
    from redis import Redis

    app = app or current_app
    if "redis" not in app.extensions:
        app.extensions["redis"] = Redis.from_url(app.config["REDIS_URL"], **REDIS_TIMEOUTS)
    return app.extensions["redis"]


def enqueue(queue_name: str, job: Callable[..., object], *args) -> None:
    """Run ``job(*args)`` on a worker, or right now when jobs run inline (see the module doc)."""
    if current_app.config["JOBS_INLINE"]:
        run_inline(job, *args)
        return
    from redis.exceptions import RedisError
    from rq import Queue, Retry

    try:
        Queue(queue_name, connection=redis_connection()).enqueue(
            job, *args, retry=Retry(max=len(RETRY_PAUSES), interval=RETRY_PAUSES),
            failure_ttl=FAILED_JOBS_KEPT_SECONDS, job_timeout=300,
        )
    except RedisError as error:
        raise QueueUnavailable(str(error)) from error


def run_inline(job: Callable[..., object], *args) -> None:
    """Run a job in this process: operational failures are logged, programming errors raised."""
    try:
        job(*args)
    except OPERATIONAL_ERRORS:
        log.exception("inline job %s%r failed", job.__qualname__, args)
