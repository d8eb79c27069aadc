"""Jobs per second through a real `rq worker --burst`: the forking worker the README recommends
(worker.AppWorker) against the same jobs in a non-forking one (worker.AppSimpleWorker), the baseline.

    .venv/bin/python bench/worker_jobs.py --redis-url redis://127.0.0.1:6379/12              # 50 emails, 50 invoices
    .venv/bin/python bench/worker_jobs.py --redis-url ... --count 200 --kind emails
    .venv/bin/python bench/worker_jobs.py --redis-url ... --database-url postgresql://postgres@127.0.0.1:5432/portal_bench_jobs

The Redis database given is FLUSHED. Emails are queued through the real path (core.notifications.mail.queue_email,
whose commit enqueues send_email) and delivered to a loopback SMTP server; invoices are app.jobs.issue_topup_invoice
for credited top-ups, without receipts. Each figure is the worker's whole run, from its start (building the app
included) to its exit. Goals (issue 14): >= 20 emails/s and >= 5 invoices/s in the forking worker. Not a test.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rq import Queue  # noqa: E402
from rq.job import Job, JobStatus  # noqa: E402

from bench.invoice_render import credited_topups, make_app  # noqa: E402

RQ = str(Path(sys.executable).parent / "rq")
WORKERS = ("worker.AppSimpleWorker", "worker.AppWorker")
GOALS = {"emails": 20, "invoices": 5}  # jobs per second in the forking worker


def queue_emails(app, count: int, run: str) -> None:
    from app.extensions import db
    from core.money import eur
    from core.notifications.mail import EmailKind, queue_email
    from tests.builders import add_company

    with app.app_context():
        company_id, _ = add_company(db.session, time.time_ns())  # its admin receives the messages
        for number in range(count):
            queue_email(db.session, company_id=company_id, kind=EmailKind.LOW_BALANCE, dedupe_key=f"{run}-{number}",
                        context={"balance": eur("5"), "threshold": eur("20")})
        db.session.commit()  # enqueues one send_email job per message


def queue_invoices(topup_ids: list[int], redis) -> None:
    from rq import Queue

    from app.jobs import issue_topup_invoice
    from app.queue import INVOICES

    queue = Queue(INVOICES, connection=redis)
    for topup_id in topup_ids:
        queue.enqueue(issue_topup_invoice, topup_id, False)


def run_worker(worker_class: str, queue: Queue, redis_url: str, smtp_port: int) -> tuple[float, float]:
    """Jobs per second over the worker's whole run (start, building the app included, to exit) and over
    its jobs alone (the first job's start to the last one's end, as RQ recorded them)."""
    job_ids = queue.job_ids
    env = {**os.environ, "REDIS_URL": redis_url, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port),
           "SMTP_STARTTLS": "0"}
    started = time.perf_counter()
    done = subprocess.run([RQ, "worker", "--url", redis_url, "-w", worker_class, "--burst", queue.name],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{worker_class} exited with {done.returncode}:\n{done.stderr[-3000:]}")
    jobs = Job.fetch_many(job_ids, connection=queue.connection)
    if any(job is None or job.get_status() != JobStatus.FINISHED for job in jobs):
        sys.exit(f"not every job finished in {worker_class}: see `rq info --url {redis_url}`")
    working = (max(job.ended_at for job in jobs) - min(job.started_at for job in jobs)).total_seconds()
    return len(jobs) / elapsed, len(jobs) / working


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", required=True, help="a Redis database of the bench's own: it is flushed")
    parser.add_argument("--database-url", help="PostgreSQL, whose name must contain 'bench' (rebuilt); default SQLite")
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--kind", choices=("emails", "invoices", "both"), default="both")
    args = parser.parse_args()
    if args.database_url:
        from bench.common import ensure_database

        ensure_database(args.database_url)
    os.environ["REDIS_URL"] = args.redis_url  # the bench's app enqueues on Redis, as the portal does

    from redis import Redis

    from app.queue import EMAILS, INVOICES
    from tests.mail_helpers import SmtpSink

    redis = Redis.from_url(args.redis_url)
    redis.flushdb()
    app = make_app(args.database_url)
    sink = SmtpSink().start()
    kinds = ("emails", "invoices") if args.kind == "both" else (args.kind,)
    try:
        for kind in kinds:
            rates = {}
            topup_ids = credited_topups(app, args.count * len(WORKERS)) if kind == "invoices" else []
            for run, worker_class in enumerate(WORKERS):
                if kind == "emails":
                    queue_emails(app, args.count, f"{worker_class}-{time.time_ns()}")
                else:
                    queue_invoices(topup_ids[run * args.count:(run + 1) * args.count], redis)
                queue = Queue(EMAILS if kind == "emails" else INVOICES, connection=redis)
                assert queue.count == args.count
                rates[worker_class] = run_worker(worker_class, queue, args.redis_url, sink.port)
            for worker_class, (whole, working) in rates.items():
                goal = GOALS[kind] if worker_class == "worker.AppWorker" else None
                verdict = f"goal >= {goal}/s: {'PASS' if working >= goal else 'MISS'}" if goal else "baseline"
                print(f"{kind:9} {worker_class:22} {working:6.1f}/s over its jobs, {whole:6.1f}/s from its start   "
                      f"({args.count} jobs)   {verdict}")
            ratio = rates["worker.AppWorker"][1] / rates["worker.AppSimpleWorker"][1]
            print(f"{kind:9} forking / non-forking over the jobs: {ratio:.2f}")
    finally:
        sink.stop()
        redis.flushdb()


if __name__ == "__main__":
    main()
