"""The sandbox is one Stripe for every process: a CLI command run in a process of its own charges the
payment method saved through the portal, and the portal then finds every payment in Stripe."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from core.money import eur
from core.schema import Topup, TopupRefund, TopupStatus
from tests.helpers import log_in
from tests.web.test_auto_topup import configure
from tests.web.test_staff_money import balance, confirm, preview, rows, staff_client

ROOT = Path(__file__).resolve().parents[2]


def flask_in_another_process(*args: str) -> subprocess.CompletedProcess:
    """`flask --app wsgi ...` as a person runs it beside the server: same database, same instance
    folder (so the same sandbox file), jobs inline (no Redis), the sandbox installed by wsgi.py."""
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def a_second_from_now() -> str:
    """The start of a Stripe range after everything earlier tests left in the session-wide sandbox."""
    time.sleep(1.05 - time.time() % 1)
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def test_automatic_top_ups_charged_by_the_cli_in_another_process_reconcile_and_can_be_refunded_by_staff(
        app, make_company, make_staff):
    since = a_second_from_now()
    company_id, email = make_company(name="Simulation GmbH", balance=eur("21"))
    customer = app.test_client()
    log_in(customer, email)
    configure(customer, threshold="20", amount="10", daily_limit="5")

    simulated = flask_in_another_process("calls", "simulate", "--company", str(company_id), "--count", "30",
                                         "--seed", "7")

    assert simulated.returncode == 0, simulated.stderr
    automatic = rows(app, Topup, Topup.company_id == company_id, Topup.kind == "auto")
    assert len(automatic) >= 2
    assert {topup.status for topup in automatic} == {TopupStatus.CREDITED.value}
    reconciled = app.test_cli_runner().invoke(args=["billing", "reconcile", "--since", since])
    assert reconciled.exit_code == 0, reconciled.output

    before = balance(app, company_id)
    staff = staff_client(app, make_staff)
    url = f"/admin/topups/{automatic[0].id}/refund"
    page = preview(staff, url, mode="amount", amount="5", reason="Simulated too much")
    assert confirm(staff, url, page.text, mode="amount", amount="5", reason="Simulated too much").status_code == 303
    [refund] = rows(app, TopupRefund, TopupRefund.topup_id == automatic[0].id)
    assert refund.refunded_cents == 500 and refund.stripe_refund_id.startswith("re_")
    assert balance(app, company_id) == before - eur("5")
