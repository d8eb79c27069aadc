"""Periodic jobs for RQ's cron scheduler:

    rq cron --url "$REDIS_URL" app/cron.py
"""

from rq import cron

from app.jobs import (
    check_low_balances, dispatch_overdue_followups, expire_stale_reservations, generate_monthly_statements,
    issue_missing_documents, process_stuck_events, retry_unsent_emails, settle_auto_topups,
)
from app.queue import BILLING, EMAILS, INVOICES

cron.register(check_low_balances, BILLING, cron="*/30 * * * *", name="low-balance warnings")
cron.register(generate_monthly_statements, INVOICES, cron="0 3 1 * *", name="monthly statements")
cron.register(retry_unsent_emails, EMAILS, cron="*/10 * * * *", name="retry unsent email")
cron.register(issue_missing_documents, INVOICES, cron="15 * * * *", name="issue missing invoices")
cron.register(expire_stale_reservations, BILLING, cron="*/10 * * * *", name="expire stale reservations")
cron.register(settle_auto_topups, BILLING, cron="*/15 * * * *", name="settle automatic top-up attempts")
cron.register(process_stuck_events, BILLING, cron="*/10 * * * *", name="process stuck Stripe events")
cron.register(dispatch_overdue_followups, BILLING, cron="* * * * *", name="enqueue follow-ups left in the outbox")
