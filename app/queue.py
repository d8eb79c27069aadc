"""Enqueueing background work: RQ on Redis when REDIS_URL is set, else run at once, in-process.

Jobs are named by dotted path (``app.jobs.send_email``) so the enqueuing module needs no import of
the job code. Failed RQ jobs are retried with growing pauses and then stay in RQ's failed registry.
"""

from __future__ import annotations

import logging

from flask import current_app
from redis import Redis
from rq import Queue, Retry
from werkzeug.utils import import_string

log = logging.getLogger(__name__)

INVOICES, EMAILS, BILLING = "invoices", "emails", "billing"
QUEUES = (INVOICES, EMAILS, BILLING)
RETRY_PAUSES = [10, 60, 300, 1800, 3600]  # seconds
FAILED_JOBS_KEPT_SECONDS = 30 * 24 * 3600


def redis_connection(app=None) -> Redis:
    app = app or current_app
    if "redis" not in app.extensions:
        app.extensions["redis"] = Redis.from_url(app.config["REDIS_URL"])
    return app.extensions["redis"]


def enqueue(queue_name: str, job_path: str, *args) -> None:
    """Run ``job_path(*args)`` on a worker, or right now when jobs run inline."""
    if current_app.config["JOBS_INLINE"]:
        _run_inline(job_path, args)
        return
    Queue(queue_name, connection=redis_connection()).enqueue(
        job_path, *args, retry=Retry(max=len(RETRY_PAUSES), interval=RETRY_PAUSES),
        failure_ttl=FAILED_JOBS_KEPT_SECONDS, job_timeout=300,
    )


def _run_inline(job_path: str, args: tuple) -> None:
    """Inline jobs never break the caller: a failure is logged and stays visible in its own records
    (e.g. an email stays `failed`, a missing invoice is issued by the next retry)."""
    try:
        import_string(job_path)(*args)
    except Exception:
        log.exception("inline job %s%r failed", job_path, args)
