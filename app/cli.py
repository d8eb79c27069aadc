"""Command-line tools: `flask --app wsgi billing ...` and `flask --app wsgi seed-demo`."""

from __future__ import annotations

import json
import sys

import click
from flask.cli import AppGroup, with_appcontext

from core.ledger.balances import account_summary, find_company
from core.ledger.postings import verify_ledger
from app.extensions import db
from core.clock import utcnow
from core.money import to_decimal_string

billing_cli = AppGroup("billing", help="Balances and the ledger.")


@billing_cli.command("verify-ledger")
def verify_ledger_command() -> None:
    """Check balance == sum of ledger, before + amount == after, and the row chain."""
    mismatches = verify_ledger(db.session)
    for mismatch in mismatches:
        click.echo(f"company {mismatch.company_id} ({mismatch.company_name}): {mismatch.problem}")
    if mismatches:
        click.echo(f"{len({m.company_id for m in mismatches})} company(ies) with ledger mismatches", err=True)
        sys.exit(1)
    click.echo("ledger OK")


@billing_cli.command("show")
@click.argument("company")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object; amounts in EUR as strings.")
def show_command(company: str, as_json: bool) -> None:
    """Balance, reserved, available, threshold and auto-topup settings of COMPANY (id, name or user email)."""
    found = find_company(db.session, company)
    if found is None:
        click.echo(f"No company matches {company!r}.", err=True)
        sys.exit(2)
    summary = account_summary(db.session, found.id)
    report = _summary_report(summary)
    if as_json:
        click.echo(json.dumps(report))
        return
    for key, value in report.items():
        click.echo(f"{key:>30}: {'-' if value is None else value}")


def _summary_report(summary) -> dict:
    def amount(units):
        return None if units is None else to_decimal_string(units)

    return {
        "company_id": summary.company_id,
        "company_name": summary.company_name,
        "balance": amount(summary.balance),
        "reserved": amount(summary.reserved),
        "available": amount(summary.available),
        "low_balance_threshold": amount(summary.low_balance_threshold),
        "is_low": summary.is_low,
        "rate_per_minute": amount(summary.rate_per_minute),
        "billing_increment_seconds": summary.billing_increment_seconds,
        "auto_topup_enabled": summary.auto_topup_enabled,
        "auto_topup_threshold": amount(summary.auto_topup_threshold),
        "auto_topup_amount": amount(summary.auto_topup_amount),
        "auto_topup_payment_method_id": summary.auto_topup_payment_method_id,
        "auto_topup_daily_limit": summary.auto_topup_daily_limit,
        "auto_topup_monthly_cap": amount(summary.auto_topup_monthly_cap),
    }


@billing_cli.command("check-low-balances")
@click.option("--company", "company_id", type=int, help="Only this company id.")
def check_low_balances_command(company_id: int | None) -> None:
    """Warn companies below their threshold by email (once per 24 hours each)."""
    from app.jobs import check_low_balances

    click.echo(f"{check_low_balances(company_id)} company(ies) warned.")


@billing_cli.command("statements")
@click.option("--month", help="YYYY-MM; default: the last complete month.")
def statements_command(month: str | None) -> None:
    """Make the monthly usage statements (existing ones stay as they are)."""
    from app.jobs import generate_monthly_statements

    try:
        month_iso = f"{month}-01" if month else None
        count = generate_monthly_statements(month_iso)
    except ValueError:
        click.echo("--month must look like 2026-10.", err=True)
        sys.exit(2)
    click.echo(f"Statements for {count} company(ies).")


@billing_cli.command("issue-missing-documents")
def issue_missing_documents_command() -> None:
    """Issue invoices and credit notes that are missing (e.g. after a lost job)."""
    from app.jobs import issue_missing_documents

    click.echo(f"{issue_missing_documents()} document(s) issued.")


@billing_cli.command("settle-auto-topups")
def settle_auto_topups_command() -> None:
    """Bring automatic top-up attempts in line with their top-ups (e.g. after a lost job)."""
    from app.jobs import settle_auto_topups

    click.echo(f"{settle_auto_topups()} company(ies) with attempts settled.")


mail_cli = AppGroup("mail", help="Outgoing email.")


@mail_cli.command("retry")
def mail_retry_command() -> None:
    """Send again every message that is not sent yet."""
    from app.jobs import retry_unsent_emails

    click.echo(f"{retry_unsent_emails()} message(s) queued again.")


@click.command("seed-demo")
@with_appcontext
def seed_demo_command() -> None:
    """Load the demo companies, users and three months of history (once; safe to repeat)."""
    from demo.data import seed_demo
    from app.jobs import generate_monthly_statements, issue_missing_documents
    from core.documents.statements import previous_month

    created = seed_demo(db.session)
    if not created:
        click.echo("Demo data already present; nothing changed.")
        return
    issue_missing_documents(send_receipts=False)  # history: invoices yes, old receipts no
    month = previous_month(utcnow().date())
    for _ in range(3):
        generate_monthly_statements(month.isoformat())
        month = previous_month(month)
    click.echo("Demo data loaded.")


stripe_cli = AppGroup("stripe", help="Stripe events.")


@stripe_cli.command("replay")
@click.argument("event_id", required=False)
@click.option("--failed", "all_failed", is_flag=True,
              help="Process every failed event again, and every event stuck as received.")
def replay_command(event_id: str | None, all_failed: bool) -> None:
    """Process a stored Stripe event again (idempotent), or all failed and stuck ones."""
    from flask import current_app

    from app.events import process_stored_event
    from core.payments.webhooks import replayable_event_ids, stored_event_id

    gateway = current_app.extensions.get("stripe_gateway")
    if gateway is None:
        click.echo("No Stripe gateway configured.", err=True)
        sys.exit(2)
    if all_failed == bool(event_id):
        click.echo("Give one EVENT_ID or --failed.", err=True)
        sys.exit(2)
    row_ids = replayable_event_ids(db.session) if all_failed else [stored_event_id(db.session, event_id)]
    if row_ids == [None]:
        click.echo(f"No stored event {event_id}.", err=True)
        sys.exit(1)
    events = [process_stored_event(db.session, gateway, row_id) for row_id in row_ids]  # each commits its steps
    for event in events:
        click.echo(f"{event.stripe_event_id} {event.type}: {event.status}{' - ' + event.error if event.error else ''}")
    if any(event.status == "failed" for event in events):
        sys.exit(1)


bonus_cli = AppGroup("bonus", help="Bonus rules for top-ups.")


@bonus_cli.command("list")
def bonus_list_command() -> None:
    from sqlalchemy import select

    from core.schema import BonusRule

    for rule in db.session.scalars(select(BonusRule).order_by(BonusRule.min_amount)):
        gives = f"{rule.percent_basis_points / 100:g}%" if rule.percent_basis_points else to_decimal_string(rule.fixed_amount)
        window = f" {rule.valid_from or '…'} – {rule.valid_until or '…'}" if rule.valid_from or rule.valid_until else ""
        click.echo(f"{rule.id:>3} {'active' if rule.active else 'ended':<6} from {to_decimal_string(rule.min_amount)} EUR: "
                   f"+{gives}{' (first top-up only)' if rule.first_topup_only else ''}{window}  {rule.name}")


@bonus_cli.command("add")
@click.option("--name", required=True)
@click.option("--min-amount", required=True, help="EUR, e.g. 250")
@click.option("--percent", help="e.g. 5 or 7.5")
@click.option("--fixed", help="EUR, e.g. 10")
@click.option("--first-topup-only", is_flag=True)
def bonus_add_command(name: str, min_amount: str, percent: str | None, fixed: str | None, first_topup_only: bool) -> None:
    """Add a bonus rule: a percentage or a fixed amount from a minimum top-up."""
    from decimal import Decimal, InvalidOperation

    from core.payments.bonuses import create_rule
    from core.money import InvalidAmount, eur

    try:
        basis_points = int(Decimal(percent) * 100) if percent else None
        rule = create_rule(db.session, name, eur(min_amount), percent_basis_points=basis_points,
                           fixed_amount=eur(fixed) if fixed else None, first_topup_only=first_topup_only)
    except (ValueError, InvalidOperation, InvalidAmount) as error:
        click.echo(f"Invalid rule: {error}", err=True)
        sys.exit(2)
    db.session.commit()
    click.echo(f"Rule {rule.id} added.")


calls_cli = AppGroup("calls", help="Calls and the usage API.")


@calls_cli.command("simulate")
@click.option("--company", "company_key", required=True, help="Company id, exact name or a user's email.")
@click.option("--count", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--seed", type=int, help="Make the call lengths repeatable.")
def simulate_command(company_key: str, count: int, seed: int | None) -> None:
    """Drive the usage API (start, then end) with COUNT realistic calls for a company."""
    import random

    from flask import current_app

    from core.calls.api_keys import create_api_key, revoke_api_key
    from demo.simulation import simulate_calls

    company = find_company(db.session, company_key)
    if company is None:
        click.echo(f"No company matches {company_key!r}.", err=True)
        sys.exit(2)
    key_row, key = create_api_key(db.session, company.id, "Simulator (calls simulate)")
    db.session.commit()  # the simulated calls authenticate with it through the API
    client = current_app.test_client()

    def post(path: str, body: dict) -> tuple[int, dict]:
        response = client.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
        return response.status_code, response.get_json(silent=True) or {}

    try:
        result = simulate_calls(post, count, utcnow(), random.Random(seed))
    finally:
        revoke_api_key(db.session, company.id, key_row.id)
        db.session.commit()
    click.echo(f"{result.ended} calls charged, {result.refused} refused {result.errors or ''}".rstrip())
    click.echo(f"balance now: {result.last_balance or account_summary(db.session, company.id).balance} EUR")


@calls_cli.command("expire")
def expire_command() -> None:
    """Release funds held for calls that never ended."""
    from app.jobs import expire_stale_reservations

    click.echo(f"{expire_stale_reservations()} reservation(s) expired.")


@billing_cli.command("reconcile")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="Also check Stripe's side (payment intents, refunds, events) created since this UTC date.")
def reconcile_command(since) -> None:
    """Ledger integrity, one credit per top-up and one debit per refund, and Stripe against the portal.
    Exits 1 on any finding."""
    from flask import current_app

    from core.backoffice.reconcile import reconcile

    gateway = current_app.extensions.get("stripe_gateway") if since else None
    if since and gateway is None:
        click.echo("No Stripe gateway configured: Stripe's side is not checked.", err=True)
    findings = reconcile(db.session, gateway, since=since)
    for finding in findings:
        company = f"company {finding.company_id} ({finding.company_name})" if finding.company_id else "-"
        click.echo(f"[{finding.kind}] {company}: {finding.detail}\n    fix: {finding.suggested_fix}")
    if findings:
        click.echo(f"{len(findings)} finding(s)", err=True)
        sys.exit(1)
    click.echo("reconciliation OK")
