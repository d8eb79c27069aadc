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
* over HTTP, as deployed: gunicorn (``wsgi:app``, 2 workers x 4 gthread threads, ``--reuse-port``
  so that both workers get connections) on a free port of 127.0.0.1 serving the bench database,
  loaded by ``wrk`` (1 thread, 8 keep-alive connections, the session cookie of one HTTP login)
  for ``--http-seconds`` per route and round after a 2 s warm-up. Every request also pays HTTP
  parsing, the socket and the server's per-request work, which is what the trivial route's
  baseline stands for. It also prints wrk's latency percentiles and the CPU (in cores) used by
  wrk, by gunicorn (and its busiest and idlest worker), by the bench database's PostgreSQL
  backends and by everything else, to show what saturated, and warns when other programs took
  enough CPU to spoil the numbers (wrk, gunicorn and PostgreSQL share the machine's cores between
  them). ``--skip-http`` leaves it out; without ``wrk`` it is skipped with a message.

Goal: the deep page takes at most 1.5x as long as page 1 (checked in both modes). The dashboard's
and page 1's throughput as a share of the trivial route's is printed for information. It also
prints EXPLAIN (ANALYZE, BUFFERS) of the two transactions-page queries and whether the ledger
invariants (core.ledger.postings.verify_ledger) hold. It prints numbers; it is not a test.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
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

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import ensure_database, stop, wait_until_up  # noqa: E402 (bench/ itself is on the path: the script's folder)

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/portal_bench"
COMPANY_NAME = "Bench Ledger GmbH"
EMAIL = "bench-admin@example.com"
PASSWORD = "bench-password-1"
DEEP_PAGE = 5_000
WARMUP = 20
ROUNDS = 3
HISTORY = timedelta(days=730)
BASE_URL = "https://localhost"  # session cookies are Secure outside the demo mode
SECRET_KEY = "bench-only-secret-key-of-at-least-32-bytes"

# HTTP mode: gunicorn as deployed on a 2-core machine, wrk on the same machine, all on loopback.
HTTP_HOST = "127.0.0.1"
GUNICORN_WORKERS = 2
GUNICORN_THREADS = 4
WRK_CONNECTIONS = 8
WRK_WARMUP_SECONDS = 2
PERCENTILES = ("50%", "90%", "99%")
# One browser for the login and for wrk, as in real use: Flask-Login ties the session to the user
# agent, and wrk does not store the cookie it would be sent again for a different one.
USER_AGENT = "portal-bench"

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


def make_bench_app(url: str):
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("SECRET_KEY", SECRET_KEY)
    os.environ.setdefault("STRIPE_SANDBOX", "1")  # no real Stripe account, as in the tests
    os.environ.setdefault("STRIPE_WEBHOOK_SECRET", "whsec_bench_only")
    os.environ["INSTANCE_PATH"] = tempfile.mkdtemp(prefix="portal-bench-")
    from app.factory import create_app

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

    from core.accounts.users import create_company, create_user
    from core.clock import utcnow
    from core.schema import Role

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
    from core.ledger.history import Cursor

    row = db.session.execute(text(
        "SELECT created_at, id FROM balance_transactions WHERE company_id = :company_id "
        "ORDER BY created_at DESC, id DESC OFFSET :offset LIMIT 1"
    ), {"company_id": company_id, "offset": (page - 1) * page_size - 1}).one()
    db.session.rollback()
    return Cursor(row.created_at, row.id)


def check_invariants(db) -> None:
    from core.ledger.postings import verify_ledger

    started = time.perf_counter()
    mismatches = verify_ledger(db.session)
    db.session.rollback()
    verdict = "hold" if not mismatches else f"BROKEN: {mismatches}"
    print(f"ledger invariants (verify_ledger, {time.perf_counter() - started:.1f} s): {verdict}")


# --- requests, in-process --------------------------------------------------------------------


def csrf_token(login_page: str) -> str:
    return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', login_page).group(1)


def logged_in_client(app):
    client = app.test_client()
    token = csrf_token(client.get("/login", base_url=BASE_URL).text)
    response = client.post("/login", base_url=BASE_URL, headers={"Referer": f"{BASE_URL}/login"},  # CSRF over https
                           data={"email": EMAIL, "password": PASSWORD, "csrf_token": token})
    assert response.status_code in (302, 303), f"login failed: {response.status_code}"
    return client


def get(client, url: str):
    response = client.get(url, base_url=BASE_URL)
    assert response.status_code == 200, f"{url}: HTTP {response.status_code}"
    return response


def ledger_rows(body: str) -> int:
    return body.count("<tr data-type=")


def check_pages(fetch: Fetch, routes: list[Route], expected_older: str) -> None:
    """Every route answers, the ledger pages are full, and the deep page is exactly page 5,000."""
    for route in routes:
        rows = ledger_rows(fetch(route.url))
        assert rows == route.expected_rows, f"{route.name}: {rows} rows, expected {route.expected_rows}"
    older = re.search(r'href="[^"]*after=([\w-]+)[^"]*"[^>]*rel="next"', fetch(routes[-1].url))
    assert older and older.group(1) == expected_older, "deep page is not the expected page"


def time_route(client, route: Route, requests: int) -> float:
    """Requests per second over ``requests`` sequential requests."""
    started = time.perf_counter()
    for _ in range(requests):
        response = get(client, route.url)
    elapsed = time.perf_counter() - started
    assert ledger_rows(response.text) == route.expected_rows, f"{route.name}: page lost its rows"
    return requests / elapsed


def print_round(number: int, routes: list[Route], results: Results) -> None:
    print(f"round {number}: " + ", ".join(f"{r.name} {results[r.name][-1].rate:.0f}/s" for r in routes), flush=True)


def measure(client, routes: list[Route], requests: int) -> Results:
    for route in routes:
        for _ in range(WARMUP):
            get(client, route.url)
    results: Results = {route.name: [] for route in routes}
    for number in range(1, ROUNDS + 1):
        for route in routes:
            results[route.name].append(Run(time_route(client, route, requests)))
        print_round(number, routes, results)
    return results


# --- requests, over HTTP ---------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    base_url: str
    pid: int  # the gunicorn master
    database: str  # the name of the database it serves


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HTTP_HOST, 0))
        return probe.getsockname()[1]


def gunicorn_env(database_url: str, instance_path: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": os.environ.get("SECRET_KEY", SECRET_KEY),
            "STRIPE_SANDBOX": "1", "SESSION_COOKIE_SECURE": "0",  # plain HTTP on loopback
            "INSTANCE_PATH": instance_path}


def gunicorn_command(port: int) -> list[str]:
    # --reuse-port gives each worker its own listening socket and lets the kernel spread the
    # connections over them. With one shared socket, whichever worker wakes first often accepts
    # all of wrk's 8 keep-alive connections and keeps them for the whole run: one core idle, half
    # the throughput, and a different half from run to run. No --access-logfile: no access log.
    return [str(ROOT / ".venv" / "bin" / "gunicorn"), "--chdir", str(ROOT), "--bind", f"{HTTP_HOST}:{port}",
            "--workers", str(GUNICORN_WORKERS), "--worker-class", "gthread", "--threads", str(GUNICORN_THREADS),
            "--reuse-port", "--log-level", "warning", "--graceful-timeout", "5", "wsgi:app"]


@contextmanager
def gunicorn_server(database_url: str) -> Iterator[Server]:
    """gunicorn serving the app on the bench database; stopped on the way out, also on errors."""
    instance_path = tempfile.mkdtemp(prefix="portal-bench-http-")
    log_path = Path(instance_path) / "gunicorn.log"
    port = free_port()
    with open(log_path, "w") as log:
        process = subprocess.Popen(gunicorn_command(port), env=gunicorn_env(database_url, instance_path),
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)  # its own process group, to kill the workers too
    server = Server(f"http://{HTTP_HOST}:{port}", process.pid, make_url(database_url).database)
    try:
        wait_until_up(server.base_url, process, log_path)
        yield server
    finally:
        stop(process)
        print_log(log_path)


def print_log(log_path: Path) -> None:
    lines = log_path.read_text().splitlines()
    if lines:
        print(f"gunicorn log ({log_path}, last lines):")
        for line in lines[-30:]:
            print("  " + line)


class KeepEveryResponse(urllib.request.HTTPErrorProcessor):
    """Hands back every response as it is: no redirects followed, no exception for 4xx/5xx."""

    def http_response(self, request, response):
        return response


def opener(*handlers) -> urllib.request.OpenerDirector:
    browser = urllib.request.build_opener(urllib.request.ProxyHandler({}), KeepEveryResponse(), *handlers)  # no proxy
    browser.addheaders = [("User-Agent", USER_AGENT)]
    return browser


def http_login(server: Server) -> str:
    """Log in through the form once; the Cookie header that carries the session."""
    jar = CookieJar()
    browser = opener(urllib.request.HTTPCookieProcessor(jar))
    with browser.open(server.base_url + "/login", timeout=10) as page:
        token = csrf_token(page.read().decode())
    form = urlencode({"email": EMAIL, "password": PASSWORD, "csrf_token": token}).encode()
    with browser.open(server.base_url + "/login", data=form, timeout=10) as response:
        assert response.status == 303, f"login over HTTP failed: {response.status}"
    return "; ".join(f"{cookie.name}={cookie.value}" for cookie in jar)


def http_fetcher(server: Server, cookie: str) -> Fetch:
    client = opener()

    def fetch(url: str) -> str:
        request = urllib.request.Request(server.base_url + url, headers={"Cookie": cookie})
        with client.open(request, timeout=30) as response:
            body = response.read().decode()
        assert response.status == 200, f"{url}: HTTP {response.status}"
        return body

    return fetch


# wrk reports sizes and times with these units (sizes in powers of 1024).
SIZE_UNITS = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3}
TIME_UNITS_MS = {"us": 0.001, "ms": 1, "s": 1000, "m": 60_000}


def parse_wrk(output: str, min_bytes: int) -> Run:
    """Requests/sec and latency percentiles. Fails on errors or on responses smaller than the page."""
    assert "Non-2xx or 3xx responses" not in output and "Socket errors" not in output, output
    count, size, unit = re.search(r"(\d+) requests in [\d.]+\w+, ([\d.]+)(\w+) read", output).groups()
    # a 3xx (say, a lost session redirecting to /login) counts as success in wrk, but is small
    assert float(size) * SIZE_UNITS[unit] / int(count) >= 0.95 * min_bytes, f"responses too small:\n{output}"
    latency = {p: float(value) * TIME_UNITS_MS[unit]
               for p, value, unit in re.findall(r"^\s+(\d+%)\s+([\d.]+)(\w+)$", output, re.MULTILINE)}
    assert all(p in latency for p in PERCENTILES), f"no latency percentiles in wrk's output:\n{output}"
    return Run(float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
               {p: latency[p] for p in PERCENTILES})


@dataclass(frozen=True)
class Load:
    """wrk against one gunicorn server, with the session cookie of one login."""
    wrk: str
    server: Server
    cookie: str


def run_wrk(load: Load, route: Route, seconds: int) -> str:
    command = [load.wrk, "-t1", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s", "--latency",
               "-H", f"Cookie: {load.cookie}", "-H", f"User-Agent: {USER_AGENT}", load.server.base_url + route.url]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 30).stdout


# --- CPU use from /proc, to see what saturated during a wrk run ------------------------------

TICKS = os.sysconf("SC_CLK_TCK")
OTHER_CPU_WARNING = 0.25  # cores used by other programs that make a run's numbers doubtful


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds used so far: by the machine, by finished children (wrk), per gunicorn process
    and per PostgreSQL backend serving the bench database."""
    machine: float
    wrk: float
    gunicorn: dict[int, float]
    postgres: dict[int, float]


def machine_busy_seconds() -> float:
    """CPU seconds spent on all cores, other than idle and iowait, since boot."""
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / TICKS


def processes() -> Iterator[tuple[int, str, list[str]]]:
    """(pid, command name, the /proc/<pid>/stat fields from "state" on) of every process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name, fields = entry.joinpath("stat").read_text().split(" (", 1)[1].rsplit(") ", 1)
        except (FileNotFoundError, ProcessLookupError):
            continue  # it ended meanwhile
        yield int(entry.name), name, fields.split()


def cpu_seconds(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def serves_database(pid: int, database: str) -> bool:
    try:  # a backend's title: "postgres: 15/main: <user> <database> <client> <state>"
        return f" {database} " in Path(f"/proc/{pid}/cmdline").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False


def cpu_snapshot(server: Server) -> CpuSnapshot:
    gunicorn, postgres = {}, {}
    for pid, name, fields in processes():
        if pid == server.pid or int(fields[1]) == server.pid:  # the master and its workers
            gunicorn[pid] = cpu_seconds(fields)
        elif name == "postgres" and serves_database(pid, server.database):
            postgres[pid] = cpu_seconds(fields)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # finished children only: here, wrk
    return CpuSnapshot(machine_busy_seconds(), usage.ru_utime + usage.ru_stime, gunicorn, postgres)


def cpu_use(before: CpuSnapshot, after: CpuSnapshot, master: int, elapsed: float) -> dict[str, float]:
    """Cores busy between two snapshots, by wrk, gunicorn, its busiest and idlest worker, the bench
    database's backends, and everything else on the machine."""
    def cores(pids_after: dict[int, float], pids_before: dict[int, float]) -> dict[int, float]:
        return {pid: (seconds - pids_before.get(pid, 0.0)) / elapsed for pid, seconds in pids_after.items()}

    gunicorn, postgres = cores(after.gunicorn, before.gunicorn), cores(after.postgres, before.postgres)
    workers = [used for pid, used in gunicorn.items() if pid != master] or [0.0]
    use = {"wrk": (after.wrk - before.wrk) / elapsed, "gunicorn": sum(gunicorn.values()),
           "busiest worker": max(workers), "idlest worker": min(workers), "postgres": sum(postgres.values())}
    machine = (after.machine - before.machine) / elapsed
    use["other"] = max(0.0, machine - use["wrk"] - use["gunicorn"] - use["postgres"])
    return use


def timed_wrk_run(load: Load, route: Route, seconds: int, min_bytes: int) -> Run:
    """One wrk run, with the CPU used meanwhile (see cpu_use)."""
    before, started = cpu_snapshot(load.server), time.perf_counter()
    output = run_wrk(load, route, seconds)
    elapsed = time.perf_counter() - started
    run = parse_wrk(output, min_bytes)
    run.cpu = cpu_use(before, cpu_snapshot(load.server), load.server.pid, elapsed)
    return run


def measure_http(load: Load, routes: list[Route], seconds: int, min_bytes: dict[str, int]) -> Results:
    for route in routes:
        run_wrk(load, route, WRK_WARMUP_SECONDS)
    results: Results = {route.name: [] for route in routes}
    for number in range(1, ROUNDS + 1):
        for route in routes:
            results[route.name].append(timed_wrk_run(load, route, seconds, min_bytes[route.name]))
        print_round(number, routes, results)
    return results


def http_mode(database_url: str, routes: list[Route], expected_older: str, seconds: int) -> None:
    print(f"\n=== over HTTP: gunicorn wsgi:app, {GUNICORN_WORKERS} workers x {GUNICORN_THREADS} gthread threads, "
          f"reuse-port; wrk -t1 -c{WRK_CONNECTIONS} ===")
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not installed (Debian: apt-get install -y wrk): skipping the HTTP mode")
        return
    with gunicorn_server(database_url) as server:
        load = Load(wrk, server, http_login(server))
        fetch = http_fetcher(server, load.cookie)
        check_pages(fetch, routes, expected_older)
        min_bytes = {route.name: len(fetch(route.url).encode()) for route in routes}  # to spot redirects
        print(f"{server.base_url}: timing {seconds} s per route, {ROUNDS} rounds, "
              f"after a {WRK_WARMUP_SECONDS} s warm-up each", flush=True)
        results = measure_http(load, routes, seconds, min_bytes)
    print_goals(print_http_table(routes, results))


# --- report ----------------------------------------------------------------------------------


def median(routes: list[Route], results: Results, value: Callable[[Run], float]) -> dict[str, float]:
    return {route.name: statistics.median(value(run) for run in results[route.name]) for route in routes}


def print_table(routes: list[Route], results: Results) -> dict[str, float]:
    medians = median(routes, results, lambda run: run.rate)
    trivial = medians[routes[0].name]
    print(f"\n{'route':<22}{'req/s':>10}{'mean ms':>10}{'vs trivial':>12}")
    for route in routes:
        rate = medians[route.name]
        print(f"{route.name:<22}{rate:>10.0f}{1000 / rate:>10.2f}{rate / trivial:>11.1%}")
    return medians


def print_http_table(routes: list[Route], results: Results) -> dict[str, float]:
    medians = median(routes, results, lambda run: run.rate)
    latency = {p: median(routes, results, lambda run: run.latency_ms[p]) for p in PERCENTILES}
    cpu = {key: median(routes, results, lambda run: run.cpu[key]) for key in results[routes[0].name][0].cpu}
    trivial = medians[routes[0].name]
    print(f"\n{'route':<22}{'req/s':>8}{'vs trivial':>12}" + "".join(f"{'p' + p[:-1] + ' ms':>8}" for p in PERCENTILES)
          + f"{'cpu: wrk':>10}{'gunicorn':>9}{'workers':>11}{'postgres':>9}{'other':>7}")
    for route in routes:
        rate, name = medians[route.name], route.name
        workers = f"{cpu['busiest worker'][name]:.2f}/{cpu['idlest worker'][name]:.2f}"
        print(f"{name:<22}{rate:>8.0f}{rate / trivial:>11.1%} "
              + "".join(f"{latency[p][name]:>8.1f}" for p in PERCENTILES) + f"{cpu['wrk'][name]:>10.2f}"
              + f"{cpu['gunicorn'][name]:>9.2f}{workers:>11}{cpu['postgres'][name]:>9.2f}{cpu['other'][name]:>7.2f}")
    print(f"latency: wrk's percentiles over {WRK_CONNECTIONS} connections. cpu: cores busy during the timed run "
          f"(of {os.cpu_count()}); workers: the busiest/idlest\ngunicorn worker; postgres: the bench database's "
          "backends; other: the rest of the machine (other programs, kernel).")
    warn_if_contended(results)
    return medians


def warn_if_contended(results: Results) -> None:
    others = [run.cpu["other"] for runs in results.values() for run in runs]
    contended = [other for other in others if other >= OTHER_CPU_WARNING]
    if contended:
        print(f"WARNING: in {len(contended)} of {len(others)} timed runs other programs used {OTHER_CPU_WARNING} "
              f"cores or more (up to {max(contended):.2f}):\n"
              "the HTTP numbers are doubtful, run again on a quiet machine.")


def print_goals(medians: dict[str, float]) -> None:
    """The goal's verdict, and the pages' throughput as a share of the trivial route's (no goal)."""
    trivial = medians["trivial /healthz"]
    deep_ratio = medians["transactions page 1"] / medians[f"transactions p.{DEEP_PAGE:,}"]
    verdict = "PASS" if deep_ratio <= 1.5 else "MISS"
    print(f"\ndeep page time / page 1 time = {deep_ratio:.2f} (goal <= 1.5): {verdict}")
    print(f"for information: dashboard = {medians['dashboard'] / trivial:.1%} / page 1 = "
          f"{medians['transactions page 1'] / trivial:.1%} of trivial throughput")


def capture_page_queries(app, client, urls: list[str]) -> list[tuple[str, dict]]:
    """The ledger SELECT (with its parameters) that each URL's request sends, seen through
    SQLAlchemy's cursor events."""
    from app.extensions import db

    captured: list[tuple[str, dict]] = []

    def remember(_connection, _cursor, statement, parameters, _context, _executemany):
        if "FROM balance_transactions" in statement and "LIMIT" in statement:
            captured.append((statement, parameters))

    with app.app_context():
        engine = db.engine
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
    from app.extensions import db

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
    parser.add_argument("--http-seconds", type=int, default=8,
                        help="seconds of wrk load per route and round in the HTTP mode (default 8)")
    parser.add_argument("--skip-http", action="store_true", help="leave out the HTTP mode (gunicorn + wrk)")
    parser.add_argument("--reload", action="store_true", help="drop the loaded data and load it again")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    run_started = time.perf_counter()
    ensure_database(args.database_url)
    app = make_bench_app(args.database_url)
    from app.extensions import db

    page_size = app.config["TRANSACTIONS_PAGE_SIZE"]
    if args.rows <= DEEP_PAGE * page_size:
        sys.exit(f"--rows must be more than {DEEP_PAGE * page_size:,} for a full page {DEEP_PAGE:,} with an older page")
    with app.app_context():
        company_id = prepare_data(db, args.rows, args.reload)
        cursor = deep_cursor(db, company_id, DEEP_PAGE, page_size)
        last_on_deep_page = deep_cursor(db, company_id, DEEP_PAGE + 1, page_size).encode()
        db.session.remove()

    routes = [
        Route("trivial /healthz", "/healthz", 0),
        Route("dashboard", "/business/billing", 10),
        Route("transactions page 1", "/business/billing/transactions", page_size),
        Route(f"transactions p.{DEEP_PAGE:,}", f"/business/billing/transactions?after={cursor.encode()}", page_size),
    ]
    client = logged_in_client(app)
    check_pages(lambda url: get(client, url).text, routes, last_on_deep_page)
    print(f"deep page: row offset {(DEEP_PAGE - 1) * page_size:,}, {routes[-1].url}")
    print("\n=== in-process: Flask test client ===")
    print(f"timing {args.requests} requests per route, {ROUNDS} rounds, after {WARMUP} warm-up requests each")
    print_goals(print_table(routes, measure(client, routes, args.requests)))
    if not args.skip_http:
        http_mode(args.database_url, routes, last_on_deep_page, args.http_seconds)
    print_explains(app, client, routes[2:])
    print()
    with app.app_context():
        check_invariants(db)
    print(f"whole run: {time.perf_counter() - run_started:.1f} s")


if __name__ == "__main__":
    main()
