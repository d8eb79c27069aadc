"""Ledger page speed on a big ledger: one company with 1,000,000 rows on PostgreSQL.

Run it (PostgreSQL on 127.0.0.1:5432, user ``postgres``, trust auth; ``wrk`` for the HTTP mode,
on Debian: ``apt-get install -y wrk``):

    .venv/bin/python bench/ledger_pages.py             # or: make bench
    .venv/bin/python bench/ledger_pages.py --reload    # throw the data away and load it again
    .venv/bin/python bench/ledger_pages.py --skip-http # only the in-process mode

It uses its own database (``portal_bench``, created if missing; the database name must contain
"bench", because the script rebuilds its schema). The first run builds the schema with the
migrations and loads the ledger with one set-based INSERT; later runs reuse the data while the
row count matches ``--rows``.

It measures four routes, logged in as the company's admin through the real login form: the
trivial route ``/healthz``, the dashboard, transactions page 1 and the transactions page 5,000
pages deep (row offset 249,950 with 50 rows a page). Each route is first checked (HTTP 200, full
ledger pages, the deep page is exactly page 5,000), warmed up, then timed in 3 rounds interleaved
across the routes; the median requests/second per route is printed as a ratio to the trivial
route's throughput. Two modes, in the same run:

* in-process, with the Flask test client: ``--requests`` sequential requests per route and round.
  This isolates the app's own cost per request (routing, queries, templates), but the trivial
  route costs almost nothing here, so the ratios compare a page with an empty call.
* over HTTP, as deployed: gunicorn (``wsgi:app``, 2 workers x 4 gthread threads) on a free port of
  127.0.0.1 serving the bench database, loaded by ``wrk`` (1 thread, 8 keep-alive connections,
  the session cookie of one HTTP login) for ``--http-seconds`` per route and round after a 2 s
  warm-up. Every request also pays HTTP parsing, the socket and the server's per-request work,
  which is what the trivial route's baseline stands for. It also prints wrk's latency
  percentiles and the CPU (in cores) used by wrk, by gunicorn and by the whole machine (which
  includes PostgreSQL), to show what saturated. ``--skip-http`` leaves it out; without ``wrk``
  it is skipped with a message.

Goals, checked in both modes: the deep page takes at most 1.5x as long as page 1, and the
dashboard and page 1 reach at least 20% of the trivial route's throughput. It also prints
EXPLAIN (ANALYZE, BUFFERS) of the two transactions-page queries and whether the ledger
invariants (core.ledger.verify_ledger) hold. It prints numbers; it is not a test.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import urlencode

import psycopg
from psycopg import sql
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/portal_bench"
COMPANY_NAME = "Bench Ledger GmbH"
EMAIL = "bench-admin@example.com"
PASSWORD = "bench-password-1"
DEEP_PAGE = 5_000
WARMUP = 20
ROUNDS = 3
HISTORY = timedelta(days=730)
BASE_URL = "https://localhost"  # session cookies are Secure outside the demo mode
SECRET_KEY = "bench-only-secret-key"

# HTTP mode: gunicorn as deployed on a 2-core machine, wrk on the same machine, all on loopback.
HTTP_HOST = "127.0.0.1"
GUNICORN_WORKERS = 2
GUNICORN_THREADS = 4
WRK_CONNECTIONS = 8
WRK_WARMUP_SECONDS = 2
PERCENTILES = ("50%", "90%", "99%")

# Rows 0, 40, 80, ... are top-ups of 250 EUR; the others are calls of 10..428 s at
# 0.42 EUR/min (70 units a second), so -700 .. -29,960 units. Row i lies in the first half of
# its time slot, so created_at grows with i (and with id). balance_after is the running sum.
LOAD_SQL = """
INSERT INTO balance_transactions
    (company_id, type, amount, balance_before, balance_after, description,
     reference_type, reference_id, actor, created_at)
SELECT :company_id, type, amount,
       SUM(amount) OVER running - amount, SUM(amount) OVER running,
       description, reference_type, reference_id, actor, created_at
FROM (
    SELECT i,
           CASE WHEN topup THEN 'topup' ELSE 'charge' END AS type,
           CASE WHEN topup THEN 2500000 ELSE -70 * seconds END AS amount,
           CASE WHEN topup THEN 'Stripe Checkout'
                ELSE format('+49 30 %s · %s:%s', 2000000 + i % 7000000,
                            seconds / 60, lpad((seconds % 60)::text, 2, '0')) END AS description,
           CASE WHEN topup THEN 'bench_topup' ELSE 'call' END AS reference_type,
           'bench-' || i AS reference_id,
           CASE WHEN topup THEN 'stripe' ELSE 'telephony' END AS actor,
           CAST(:start AS timestamp)
               + make_interval(secs => (i + 0.5 * (abs(hashint8(-i)::bigint) % 1000) / 1000.0) * :step)
               AS created_at
    FROM (
        SELECT i, i % 40 = 0 AS topup, 10 + abs(hashint8(i)::bigint) % 419 AS seconds
        FROM generate_series(0::bigint, :rows - 1) AS i
    ) AS raw
) AS generated
WINDOW running AS (ORDER BY i ROWS UNBOUNDED PRECEDING)
ORDER BY i
"""


@dataclass(frozen=True)
class Route:
    name: str
    url: str
    expected_rows: int


@dataclass
class Run:
    """One timed run of one route. wrk runs also carry latency percentiles and CPU use."""
    rate: float  # requests per second
    latency_ms: dict[str, float] = field(default_factory=dict)  # "50%" -> ms
    cpu: dict[str, float] = field(default_factory=dict)  # "wrk" / "gunicorn" / "machine" -> cores busy


Results = dict[str, list[Run]]  # route name -> its runs
Fetch = Callable[[str], str]  # URL path -> body of its 200 response


# --- database --------------------------------------------------------------------------------


def ensure_database(url: str) -> None:
    """Create the bench database on its server if it is missing (connecting to ``postgres``)."""
    target = make_url(url)
    if "bench" not in (target.database or ""):
        sys.exit(f"refusing to use database {target.database!r}: its name must contain 'bench'")
    admin = target.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target.database,)).fetchone()
        if not exists:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target.database)))
            print(f"created database {target.database}")


def make_bench_app(url: str):
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("SECRET_KEY", SECRET_KEY)
    os.environ.setdefault("STRIPE_SANDBOX", "1")  # no real Stripe account, as in the tests
    os.environ["INSTANCE_PATH"] = tempfile.mkdtemp(prefix="portal-bench-")
    from core.app import create_app

    return create_app({"PROPAGATE_EXCEPTIONS": True})  # a failing route shows its exception


def loaded_company_id(db, rows: int) -> int | None:
    """The bench company's id if the database holds it with exactly ``rows`` ledger rows."""
    try:
        found = db.session.execute(text(
            "SELECT c.id, (SELECT count(*) FROM balance_transactions t WHERE t.company_id = c.id) "
            "FROM companies c JOIN users u ON u.company_id = c.id AND u.email = :email "
            "WHERE c.name = :name"
        ), {"email": EMAIL, "name": COMPANY_NAME}).first()
    except ProgrammingError:  # no schema yet
        db.session.rollback()
        return None
    db.session.rollback()
    return found[0] if found and found[1] == rows else None


def load(db, rows: int) -> int:
    """Rebuild the schema with the migrations, then create the company and its ledger."""
    from flask_migrate import upgrade

    from core.accounts import create_company, create_user
    from core.clock import utcnow
    from core.models import Role

    db.session.remove()
    with db.engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    upgrade()

    now = utcnow()
    start = now - HISTORY
    company = create_company(db.session, COMPANY_NAME, city="Berlin", created_at=start - timedelta(days=1))
    create_user(db.session, EMAIL, PASSWORD, Role.COMPANY_ADMIN, company=company, name="Bench Admin")
    db.session.commit()
    company_id = company.id

    step = (now - timedelta(hours=1) - start).total_seconds() / rows
    db.session.execute(text(LOAD_SQL), {"company_id": company_id, "rows": rows, "start": start, "step": step})
    db.session.execute(text(
        "UPDATE prepaid_balances SET balance = (SELECT balance_after FROM balance_transactions "
        "WHERE company_id = :company_id ORDER BY id DESC LIMIT 1), updated_at = :now "
        "WHERE company_id = :company_id"
    ), {"company_id": company_id, "now": now})
    db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM (ANALYZE) balance_transactions"))
        connection.execute(text("ANALYZE"))
    return company_id


def prepare_data(db, rows: int, reload: bool) -> int:
    from flask_migrate import upgrade

    company_id = None if reload else loaded_company_id(db, rows)
    if company_id is not None:
        print(f"reusing the loaded ledger: company {company_id}, {rows:,} rows (--reload loads it again)")
        upgrade()  # apply migrations added since the load, if any
        return company_id
    print(f"loading {rows:,} ledger rows ...", flush=True)
    started = time.perf_counter()
    company_id = load(db, rows)
    print(f"loaded in {time.perf_counter() - started:.1f} s (schema, INSERT, balance, VACUUM ANALYZE)")
    return company_id


def deep_cursor(db, company_id: int, page: int, page_size: int):
    """The cursor that makes ``?after=`` show page ``page``: the last row of the page before it."""
    from core.transactions import Cursor

    row = db.session.execute(text(
        "SELECT created_at, id FROM balance_transactions WHERE company_id = :company_id "
        "ORDER BY created_at DESC, id DESC OFFSET :offset LIMIT 1"
    ), {"company_id": company_id, "offset": (page - 1) * page_size - 1}).one()
    db.session.rollback()
    return Cursor(row.created_at, row.id)


def check_invariants(db) -> None:
    from core.ledger import verify_ledger

    started = time.perf_counter()
    mismatches = verify_ledger(db.session)
    db.session.rollback()
    verdict = "hold" if not mismatches else f"BROKEN: {mismatches}"
    print(f"ledger invariants (verify_ledger, {time.perf_counter() - started:.1f} s): {verdict}")


# --- requests --------------------------------------------------------------------------------


def logged_in_client(app):
    client = app.test_client()
    page = client.get("/login", base_url=BASE_URL)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page.text).group(1)
    response = client.post("/login", base_url=BASE_URL, headers={"Referer": f"{BASE_URL}/login"},  # CSRF over https
                           data={"email": EMAIL, "password": PASSWORD, "csrf_token": token})
    assert response.status_code in (302, 303), f"login failed: {response.status_code}"
    return client


def get(client, url: str):
    response = client.get(url, base_url=BASE_URL)
    assert response.status_code == 200, f"{url}: HTTP {response.status_code}"
    return response


def ledger_rows(response) -> int:
    return response.text.count("<tr data-type=")


def check_pages(client, routes: list[Route], expected_older: str) -> None:
    """Every route answers, the ledger pages are full, and the deep page is exactly page 5,000."""
    for route in routes:
        rows = ledger_rows(get(client, route.url))
        assert rows == route.expected_rows, f"{route.name}: {rows} rows, expected {route.expected_rows}"
    older = re.search(r'href="[^"]*after=([\w-]+)[^"]*"[^>]*rel="next"', get(client, routes[-1].url).text)
    assert older and older.group(1) == expected_older, "deep page is not the expected page"


def time_route(client, route: Route, requests: int) -> float:
    """Requests per second over ``requests`` sequential requests."""
    started = time.perf_counter()
    for _ in range(requests):
        response = get(client, route.url)
    elapsed = time.perf_counter() - started
    assert ledger_rows(response) == route.expected_rows, f"{route.name}: page lost its rows"
    return requests / elapsed


def measure(client, routes: list[Route], requests: int) -> None:
    for route in routes:
        for _ in range(WARMUP):
            get(client, route.url)
    for number in range(1, ROUNDS + 1):
        for route in routes:
            route.rates.append(time_route(client, route, requests))
        print(f"round {number}: " + ", ".join(f"{r.name} {r.rates[-1]:.0f}/s" for r in routes), flush=True)


# --- report ----------------------------------------------------------------------------------


def print_table(routes: list[Route]) -> dict[str, float]:
    medians = {route.name: statistics.median(route.rates) for route in routes}
    trivial = medians[routes[0].name]
    print(f"\n{'route':<22}{'req/s':>10}{'mean ms':>10}{'vs trivial':>12}")
    for route in routes:
        rate = medians[route.name]
        print(f"{route.name:<22}{rate:>10.0f}{1000 / rate:>10.2f}{rate / trivial:>11.1%}")
    return medians


def print_goals(medians: dict[str, float]) -> None:
    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    trivial = medians["trivial /healthz"]
    deep_ratio = medians["transactions page 1"] / medians[f"transactions p.{DEEP_PAGE:,}"]
    dashboard = medians["dashboard"] / trivial
    page_one = medians["transactions page 1"] / trivial
    print(f"\ndeep page time / page 1 time = {deep_ratio:.2f} (goal <= 1.5): {verdict(deep_ratio <= 1.5)}")
    print(f"dashboard = {dashboard:.1%} / page 1 = {page_one:.1%} of trivial throughput (goal >= 20%): "
          f"{verdict(min(dashboard, page_one) >= 0.20)}")


def capture_page_queries(app, client, urls: list[str]) -> list[tuple[str, dict]]:
    """The ledger SELECT (with its parameters) that each URL's request runs."""
    from core.models import db

    with app.app_context():
        engine = db.engine
    captured: list[tuple[str, dict]] = []

    def remember(_conn, _cursor, statement, parameters, _context, _many):
        if "FROM balance_transactions" in statement and "LIMIT" in statement:
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", remember)
    try:
        queries = []
        for url in urls:
            captured.clear()
            get(client, url)
            queries.append(captured[-1])
        return queries
    finally:
        event.remove(engine, "before_cursor_execute", remember)


def print_explains(app, client, routes: list[Route]) -> None:
    from core.models import db

    for route, (statement, parameters) in zip(routes, capture_page_queries(app, client, [r.url for r in routes])):
        with app.app_context():
            plan = [line for (line,) in db.session.connection().exec_driver_sql(
                "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)]
            db.session.rollback()
        print(f"\nEXPLAIN (ANALYZE, BUFFERS) {route.name}:")
        for line in plan[:4] + [line for line in plan if line.startswith("Execution Time")]:
            print("  " + line)


# --- main ------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL,
                        help=f"PostgreSQL URL of the bench database (default {DEFAULT_DATABASE_URL})")
    parser.add_argument("--rows", type=int, default=1_000_000, help="ledger rows to load (default 1,000,000)")
    parser.add_argument("--requests", type=int, default=300, help="timed requests per route and round (default 300)")
    parser.add_argument("--reload", action="store_true", help="drop the loaded data and load it again")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    run_started = time.perf_counter()
    ensure_database(args.database_url)
    app = make_bench_app(args.database_url)
    from core.models import db

    page_size = app.config["TRANSACTIONS_PAGE_SIZE"]
    if args.rows <= DEEP_PAGE * page_size:
        sys.exit(f"--rows must be more than {DEEP_PAGE * page_size:,} for a full page {DEEP_PAGE:,} with an older page")
    with app.app_context():
        company_id = prepare_data(db, args.rows, args.reload)
        cursor = deep_cursor(db, company_id, DEEP_PAGE, page_size)
        last_on_deep_page = deep_cursor(db, company_id, DEEP_PAGE + 1, page_size)
        db.session.remove()

    routes = [
        Route("trivial /healthz", "/healthz", 0, []),
        Route("dashboard", "/business/billing", 10, []),
        Route("transactions page 1", "/business/billing/transactions", page_size, []),
        Route(f"transactions p.{DEEP_PAGE:,}", f"/business/billing/transactions?after={cursor.encode()}", page_size, []),
    ]
    client = logged_in_client(app)
    check_pages(client, routes, last_on_deep_page.encode())
    print(f"deep page: row offset {(DEEP_PAGE - 1) * page_size:,}, {routes[-1].url}")
    print(f"timing {args.requests} requests per route, {ROUNDS} rounds, after {WARMUP} warm-up requests each")
    measure(client, routes, args.requests)
    print_goals(print_table(routes))
    print_explains(app, client, routes[2:])
    print()
    with app.app_context():
        check_invariants(db)
    print(f"whole run: {time.perf_counter() - run_started:.1f} s")


if __name__ == "__main__":
    main()
