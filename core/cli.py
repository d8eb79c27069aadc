"""Command-line tools: `flask --app wsgi billing ...` and `flask --app wsgi seed-demo`."""

from __future__ import annotations

import json
import sys

import click
from flask.cli import AppGroup, with_appcontext

from core.balances import account_summary, find_company
from core.ledger import verify_ledger
from core.models import db
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


@click.command("seed-demo")
@with_appcontext
def seed_demo_command() -> None:
    """Load the demo companies, users and three months of history (once; safe to repeat)."""
    from core.demo import seed_demo

    created = seed_demo(db.session)
    click.echo("Demo data loaded." if created else "Demo data already present; nothing changed.")
