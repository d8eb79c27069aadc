"""Invoice rendering in one worker process: time per invoice and memory, against a trivial PDF.

    .venv/bin/python bench/invoice_render.py                 # 500 invoices on a temporary SQLite database
    .venv/bin/python bench/invoice_render.py --count 200     # fewer
    .venv/bin/python bench/invoice_render.py --database-url postgresql://postgres@127.0.0.1:5432/portal_bench_invoices

Each invoice goes through the real path a worker takes (core.documents.invoices.issue_topup_invoice: number from
the locked counter, WeasyPrint rendering, storing the PDF, commit). Before that, the same process renders
a trivial one-line HTML page with WeasyPrint 50 times: the baseline. Printed: p50/p95 per invoice and as a
ratio to the baseline, and the process's resident memory after 100 and after all invoices.
Goals: p95 <= 0.5 s; memory growth between invoice 100 and the last <= 20 %. Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BASELINE_RENDERS = 50


def resident_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def make_app(database_url: str | None):
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-of-at-least-32-bytes")
    os.environ.setdefault("STRIPE_SANDBOX", "1")
    os.environ.setdefault("STRIPE_WEBHOOK_SECRET", "whsec_bench_only")
    os.environ["INSTANCE_PATH"] = tempfile.mkdtemp(prefix="invoice-bench-")
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    from flask_migrate import upgrade
    from sqlalchemy import text

    from app.factory import create_app
    from app.extensions import db

    app = create_app()
    with app.app_context():
        if database_url:
            with db.engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE"))
                connection.execute(text("CREATE SCHEMA public"))
        upgrade()
    return app


def credited_topups(app, count: int) -> list[int]:
    from core.accounts.users import create_company
    from core.ledger.postings import Reference, post_entry
    from app.extensions import db
    from core.schema import EntryType, Topup, TopupStatus
    from core.money import eur

    with app.app_context():
        company = create_company(db.session, "Rechnungstest GmbH", street="Hauptstraße 1", postal_code="10115",
                                 city="Berlin", vat_id="DE123456789")
        ids = []
        for number in range(count):
            amount = eur(50 + number % 7 * 50)
            topup = Topup(company_id=company.id, amount=amount, bonus_amount=amount // 20 if number % 3 == 0 else 0,
                          status=TopupStatus.CREDITED.value, payment_method_type="card", charged_cents=amount // 100)
            db.session.add(topup)
            db.session.flush()
            post_entry(db.session, company.id, EntryType.TOPUP, amount, reference=Reference("topup", str(topup.id)))
            ids.append(topup.id)
        db.session.commit()
        return ids


def baseline_seconds() -> list[float]:
    from weasyprint import HTML

    HTML(string="<p>warm-up</p>").write_pdf()
    timings = []
    for _ in range(BASELINE_RENDERS):
        started = time.perf_counter()
        HTML(string="<p>Eine Zeile.</p>").write_pdf()
        timings.append(time.perf_counter() - started)
    return timings


def invoice_seconds(app, topup_ids: list[int]) -> tuple[list[float], float, float]:
    from app.jobs import renderer
    from core.documents.invoices import Seller, issue_topup_invoice
    from app.extensions import db
    from core.documents.vat import VatPolicy

    timings, memory_at_100 = [], 0.0
    with app.app_context():
        seller, vat = Seller.from_config(app.config), VatPolicy.from_config(app.config)
        for index, topup_id in enumerate(topup_ids, start=1):
            started = time.perf_counter()
            issue_topup_invoice(db.session, topup_id, seller, vat, renderer())
            db.session.commit()  # the bench is the entry point, as the job is
            timings.append(time.perf_counter() - started)
            db.session.expunge_all()
            if index == 100:
                memory_at_100 = resident_mib()
    return timings, memory_at_100, resident_mib()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    if args.count <= 100:
        parser.error("--count must be above 100 (memory is compared at invoice 100)")

    app = make_app(args.database_url)
    topup_ids = credited_topups(app, args.count)
    base = baseline_seconds()
    timings, memory_100, memory_end = invoice_seconds(app, topup_ids)

    base_p50, base_p95 = statistics.median(base), percentile(base, 0.95)
    p50, p95 = statistics.median(timings), percentile(timings, 0.95)
    growth = (memory_end - memory_100) / memory_100 * 100
    print(f"trivial one-line PDF   p50 {base_p50 * 1000:7.1f} ms   p95 {base_p95 * 1000:7.1f} ms   ({BASELINE_RENDERS} renders)")
    print(f"invoice (issue+store)  p50 {p50 * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms   ({len(timings)} invoices)")
    print(f"ratio to trivial       p50 {p50 / base_p50:7.1f} x    p95 {p95 / base_p95:7.1f} x")
    print(f"resident memory        {memory_100:.1f} MiB after 100, {memory_end:.1f} MiB after {len(timings)}")
    print(f"p95 {p95:.3f} s (goal <= 0.5 s): {'PASS' if p95 <= 0.5 else 'MISS'}")
    print(f"memory growth 100 -> {len(timings)}: {growth:+.1f} % (goal <= 20 %): {'PASS' if growth <= 20 else 'MISS'}")


if __name__ == "__main__":
    main()
