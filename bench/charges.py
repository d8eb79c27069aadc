"""Charges per second on PostgreSQL: the core service and the HTTP API against a raw SQL baseline,
for one hot company and for charges spread over 1,000 companies.

Run it (PostgreSQL on 127.0.0.1:5432, user ``postgres``, trust auth; ``wrk`` for the HTTP mode,
on Debian: ``apt-get install -y wrk``):

    .venv/bin/python bench/charges.py                  # 8 clients, 2 + 10 s per run, about 1.5 minutes
    .venv/bin/python bench/charges.py --clients 16 --seconds 5
    .venv/bin/python bench/charges.py --skip-http      # only the raw baseline and the core service
    .venv/bin/python bench/charges.py --history 300000 # with 300,000 older call charges in the table

It uses its own database (``portal_bench_charges``, created if missing; the name must contain
"bench", because every run rebuilds the schema with the migrations). It creates ``--companies``
companies (1,000, customers for 30 days) with ``core.accounts.users.create_company``, gives each an
opening top-up of 1,000,000 EUR through ``core.ledger.postings.post_entry`` and an API key through
``core.calls.api_keys.create_api_key``; ``--history`` adds older call charges (zero-second calls, which
have no ledger row) to show how a charge's cost grows with the table. Every charge is the end of a
61 s call at the default rate (0.42 EUR/min, 1 s increments): 0.4270 EUR, 4,270 units. The service
charges it in one transaction: one read of what is stored under the call id (and the rate), then
``core.ledger.postings.post_entry`` (the guarded ``UPDATE prepaid_balances ... RETURNING`` and the
ledger row, the one write path for every balance change) and the call charge row.

Three ways to charge, each with the same number of concurrent clients (``--clients``):

* raw SQL, the baseline: one thread per client, each with its own psycopg connection, and per
  charge one transaction doing what a charge minimally does, without the ORM:
  ``UPDATE prepaid_balances ... RETURNING balance`` and ``INSERT INTO balance_transactions`` with
  balance before and after, then COMMIT.
* the core service: one thread per client, each in its own app context and so with its own
  ``db.session`` (the app's engine options, the pool sized to the clients), calling
  ``core.calls.live.end_call`` with a unique call id (an end without a start, as the API allows).
  All threads share this one Python process (and its GIL), like the threads of one gunicorn worker.
* over HTTP, as deployed: gunicorn serving ``wsgi:app`` on a free port of 127.0.0.1
  (``--workers`` processes, default 2 per core, ``--reuse-port``), loaded by ``wrk`` (one thread,
  ``--clients`` connections, a Lua script that posts ``/api/v1/calls/<unique id>/end`` with
  ``{"duration_seconds": 61}`` and the company's API key as Bearer token). The workers are sync
  by default: a sync worker that holds the company's row lock need not wait for the GIL of its
  other threads, which matters for one hot company. ``--worker-class gthread --threads N``
  measures the other.

Each way runs twice: "hot", every charge for one company, and "spread", each charge for a
company drawn at random from all of them. Every run has a ``--warmup`` (2 s) before it is timed
for ``--seconds``. The table shows charges/second, the latency per charge (p50/p99), the CPU (in
cores, of the machine's) used meanwhile by the clients (this process, or wrk), by gunicorn, by
PostgreSQL and by everything else (it warns when other programs took enough to spoil the numbers),
and what the bench database's connections did on average, sampled from pg_stat_activity: waiting
for a row lock, busy in PostgreSQL, or idle inside a transaction, waiting for their client. Then
the ratios and the goals:

* the core service reaches at least 50 % of the raw baseline's charges/s (hot and spread);
* one hot company reaches at least 65 % of the spread case (core service and HTTP).

Every charge is counted again in the database afterwards (call charges and ledger rows per run),
one more ``end_call`` is traced to print EXPLAIN ANALYZE of its reads, and at the end
``core.ledger.postings.verify_ledger`` checks the ledger invariants, which must hold (else the exit status
is 1). It prints numbers; it is not a test.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import ensure_database, stop, wait_until_up  # noqa: E402 (bench/ itself is on the path: the script's folder)

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/portal_bench_charges"
SECRET_KEY = "bench-only-secret-key-of-at-least-32-bytes"
OPENING_BALANCE_EUR = 1_000_000
DURATION_SECONDS = 61  # every charged call; 61 s x 70 units/s = 4,270 units at the default rate
HTTP_HOST = "127.0.0.1"
DISTRIBUTIONS = ("hot", "spread")
MODES = ("raw", "core", "http")
GOAL_CORE_VS_RAW = 0.50
GOAL_HOT_VS_SPREAD = 0.65
OTHER_CPU_WARNING = 0.25  # cores used by other programs that make a run's numbers doubtful


# --- database --------------------------------------------------------------------------------


def psycopg_url(url: str) -> str:
    """The URL as libpq takes it (no SQLAlchemy driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def make_bench_app(url: str, clients: int):
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("SECRET_KEY", SECRET_KEY)
    os.environ.setdefault("STRIPE_SANDBOX", "1")  # no real Stripe account, as in the tests
    os.environ.setdefault("STRIPE_WEBHOOK_SECRET", "whsec_bench_only")
    os.environ["INSTANCE_PATH"] = tempfile.mkdtemp(prefix="portal-bench-charges-")
    from app.factory import create_app
    from app.config import load_config

    # The app's engine options, with a pool that holds a connection for every client thread.
    options = dict(load_config(Path(os.environ["INSTANCE_PATH"]))["SQLALCHEMY_ENGINE_OPTIONS"])
    options.update(pool_size=clients + 2, max_overflow=0)
    return create_app({"PROPAGATE_EXCEPTIONS": True, "SQLALCHEMY_ENGINE_OPTIONS": options})


@dataclass(frozen=True)
class Fixture:
    company_ids: list[int]  # company_ids[0] is the hot company
    api_keys: dict[int, str]  # company id -> its API key


def set_up(db, companies: int, history: int) -> Fixture:
    """Rebuild the schema with the migrations; companies with a large opening top-up and an API key;
    ``history`` old call charges."""
    from flask_migrate import upgrade

    from core.accounts.users import create_company
    from core.calls.api_keys import create_api_key
    from core.clock import utcnow
    from core.ledger.postings import Reference, post_entry
    from core.schema import EntryType
    from core.money import eur

    db.session.remove()
    with db.engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    upgrade()
    company_ids, api_keys = [], {}
    # Customers for a while: their rate was valid when the charged calls started (else rate_at
    # misses and falls back to a second query, which a real customer's call does not).
    since = utcnow() - timedelta(days=30)
    for number in range(1, companies + 1):
        company = create_company(db.session, f"Bench Charges {number:04d} GmbH", city="Berlin", created_at=since)
        post_entry(db.session, company.id, EntryType.TOPUP, eur(OPENING_BALANCE_EUR), description="opening balance",
                   reference=Reference("bench_topup", str(company.id)), actor="bench")
        _row, key = create_api_key(db.session, company.id, "bench")
        db.session.commit()
        company_ids.append(company.id)
        api_keys[company.id] = key
    if history:
        assert company_ids == list(range(company_ids[0], company_ids[0] + companies)), "company ids with gaps"
        db.session.execute(text(HISTORY_SQL), {"rows": history, "first": company_ids[0], "companies": companies,
                                               "start": since})
        db.session.commit()
    db.session.remove()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM (ANALYZE)"))
    return Fixture(company_ids, api_keys)


# Calls of zero seconds cost nothing: a call charge row without a ledger row, as core.calls.rating
# keeps them. They only make the table as big as it is after a while in production.
HISTORY_SQL = """
INSERT INTO call_charges (company_id, call_id, started_at, ended_at, duration_seconds, billed_seconds,
                          rate_per_minute, billing_increment_seconds, amount, refund_status, refunded_amount,
                          created_at)
SELECT :first + i % :companies, 'history-' || i, at, at, 0, 0, 4200, 1, 0, 'none', 0, at
FROM (SELECT i, CAST(:start AS timestamp) + make_interval(secs => i % 2000000) AS at
      FROM generate_series(0, :rows - 1) AS i) AS generated
"""


def database_counts(db, prefix: str) -> tuple[int, int]:
    """(call_charges rows, charge ledger rows) whose call id starts with ``prefix``."""
    row = db.session.execute(text(
        "SELECT (SELECT count(*) FROM call_charges WHERE call_id LIKE :pattern), "
        "(SELECT count(*) FROM balance_transactions WHERE type = 'charge' AND reference_type = 'call' "
        "AND reference_id LIKE :pattern)"
    ), {"pattern": prefix + "%"}).one()
    db.session.rollback()
    return row[0], row[1]


# --- CPU use from /proc, to see what saturated during a run ----------------------------------

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds used so far by the machine, this process, its finished children (wrk), the
    gunicorn processes and the bench database's PostgreSQL backends."""
    machine: float
    clients: float
    children: float
    gunicorn: float
    postgres: float


def machine_busy_seconds() -> float:
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / TICKS


POSTGRES_BACKGROUND = ("background writer", "checkpointer", "walwriter", "autovacuum launcher",
                       "logical replication launcher", "stats collector", "archiver")


def serves_bench(cmdline: str, database: str) -> bool:
    """A PostgreSQL process working for the bench: a backend or autovacuum worker of its database,
    or one of the server's own processes (WAL writer, checkpointer, ...), which work for all."""
    title = cmdline.replace("\0", " ").strip()
    if not title.startswith("postgres:"):
        return True  # the postmaster
    words = title.split()
    return database in words or any(name in title for name in POSTGRES_BACKGROUND)


def cpu_snapshot(database: str, gunicorn_pid: int | None) -> CpuSnapshot:
    gunicorn = postgres = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name, fields = entry.joinpath("stat").read_text().split(" (", 1)[1].rsplit(") ", 1)
            fields = fields.split()
            seconds = (int(fields[11]) + int(fields[12])) / TICKS
            if gunicorn_pid is not None and gunicorn_pid in (int(entry.name), int(fields[1])):
                gunicorn += seconds
            elif name == "postgres" and serves_bench(entry.joinpath("cmdline").read_text(), database):
                postgres += seconds
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue  # it ended meanwhile
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # finished children only: wrk
    return CpuSnapshot(machine_busy_seconds(), own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime,
                       gunicorn, postgres)


def cpu_use(before: CpuSnapshot, after: CpuSnapshot, elapsed: float) -> dict[str, float]:
    """Cores busy between two snapshots: clients (this process or wrk), gunicorn, postgres, other."""
    use = {"clients": (after.clients - before.clients + after.children - before.children) / elapsed,
           "gunicorn": (after.gunicorn - before.gunicorn) / elapsed,
           "postgres": (after.postgres - before.postgres) / elapsed}
    machine = (after.machine - before.machine) / elapsed
    use["other"] = max(0.0, machine - sum(use.values()))
    return use


# --- runs ------------------------------------------------------------------------------------


@dataclass
class Result:
    mode: str
    distribution: str
    charges: int  # charges completed in the timed window
    seconds: float
    latency_ms: dict[str, float] = field(default_factory=dict)  # "p50" / "p99" -> ms
    cpu: dict[str, float] = field(default_factory=dict)
    backends: dict[str, float] = field(default_factory=dict)  # see backend_states

    @property
    def rate(self) -> float:
        return self.charges / self.seconds


@dataclass(frozen=True)
class Plan:
    """What every run shares."""
    database_url: str
    database: str
    fixture: Fixture
    clients: int
    warmup: float
    seconds: float
    tag: str = field(default_factory=lambda: f"{time.time_ns() // 1_000_000 % 10 ** 8:x}")  # unique call ids

    def call_ids(self, mode: str, distribution: str) -> str:
        """The start of the call ids (and ledger references) of one run: ``raw-hot-5f5e0ff-``."""
        return f"{mode}-{distribution}-{self.tag}-"


def company_picker(plan: Plan, distribution: str, seed: int) -> Callable[[], int]:
    if distribution == "hot":
        hot = plan.fixture.company_ids[0]
        return lambda: hot
    chooser = random.Random(seed)
    ids = plan.fixture.company_ids
    return lambda: chooser.choice(ids)


BACKEND_STATES = ("lock wait", "in postgres", "idle in tx")
BACKEND_SQL = """
SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'),
       count(*) FILTER (WHERE state = 'active' AND wait_event_type IS DISTINCT FROM 'Lock'),
       count(*) FILTER (WHERE state LIKE 'idle in transaction%%')
FROM pg_stat_activity
WHERE datname = %s AND backend_type = 'client backend' AND pid <> pg_backend_pid()
"""


@contextmanager
def backend_states(plan: Plan) -> Iterator[dict[str, float]]:
    """The bench database's client backends, sampled from pg_stat_activity every 20 ms while the
    block runs; afterwards, on average how many were waiting for a lock (the company's balance
    row), busy in PostgreSQL otherwise (executing, or waiting for the WAL flush of a COMMIT), and
    idle inside a transaction, that is waiting for their client (Python) between two statements."""
    averages: dict[str, float] = {}
    samples: list[tuple[int, int, int]] = []
    stop = threading.Event()

    def sample() -> None:
        with psycopg.connect(psycopg_url(plan.database_url), autocommit=True) as connection:
            while not stop.wait(0.02):
                samples.append(connection.execute(BACKEND_SQL, (plan.database,)).fetchone())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield averages
    finally:
        stop.set()
        sampler.join(timeout=10)
        for index, key in enumerate(BACKEND_STATES):
            averages[key] = statistics.fmean(row[index] for row in samples) if samples else float("nan")


Operation = Callable[[int], None]  # one charge; the argument is the client's sequence number


def run_threads(plan: Plan, mode: str, distribution: str,
                start_client: Callable[[int], tuple[Operation, Callable[[], None]]]) -> Result:
    """``plan.clients`` threads charging in a loop; counted over ``plan.seconds`` after the warm-up."""
    stop, timing, failures = threading.Event(), threading.Event(), []
    counts = [0] * plan.clients
    latencies: list[list[float]] = [[] for _ in range(plan.clients)]
    ready = threading.Barrier(plan.clients + 1)

    def client(index: int) -> None:
        try:
            operation, close = start_client(index)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
            ready.abort()
            return
        try:
            ready.wait()
            sequence = 0
            while not stop.is_set():
                started = time.perf_counter()
                operation(sequence)
                elapsed = time.perf_counter() - started
                counts[index] += 1
                if timing.is_set():
                    latencies[index].append(elapsed)
                sequence += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
            stop.set()
        finally:
            close()

    threads = [threading.Thread(target=client, args=(index,), daemon=True) for index in range(plan.clients)]
    for thread in threads:
        thread.start()
    try:
        ready.wait(timeout=60)
    except threading.BrokenBarrierError:
        pass
    if not failures:
        time.sleep(plan.warmup)
    with backend_states(plan) as backends:
        done_before, cpu_before, started = sum(counts), cpu_snapshot(plan.database, None), time.perf_counter()
        timing.set()
        stop.wait(plan.seconds)  # returns early if a client failed
        timing.clear()
        done_after, cpu_after, elapsed = sum(counts), cpu_snapshot(plan.database, None), time.perf_counter() - started
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    if failures:
        raise RuntimeError(f"{mode} {distribution}: a client failed") from failures[0]
    timed = sorted(value for values in latencies for value in values)
    return Result(mode, distribution, done_after - done_before, elapsed,
                  {"p50": percentile(timed, 0.50) * 1000, "p99": percentile(timed, 0.99) * 1000},
                  cpu_use(cpu_before, cpu_after, elapsed), backends)


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else float("nan")


RAW_UPDATE = ("UPDATE prepaid_balances SET balance = balance + %s, updated_at = %s WHERE company_id = %s "
              "RETURNING balance")
RAW_INSERT = ("INSERT INTO balance_transactions (company_id, type, amount, balance_before, balance_after, "
              "description, reference_type, reference_id, actor, created_at) "
              "VALUES (%s, 'charge', %s, %s, %s, '', 'call', %s, 'telephony', %s)")


def run_raw(plan: Plan, distribution: str, amount: int) -> Result:
    """The baseline: UPDATE ... RETURNING + INSERT in one transaction, psycopg, no ORM."""
    from core.clock import utcnow

    conninfo, prefix = psycopg_url(plan.database_url), plan.call_ids("raw", distribution)

    def start_client(index: int) -> tuple[Operation, Callable[[], None]]:
        connection = psycopg.connect(conninfo)  # not autocommit: BEGIN ... COMMIT, as the app
        pick = company_picker(plan, distribution, seed=index)

        def charge(sequence: int) -> None:
            company_id, now = pick(), utcnow()
            with connection.cursor() as cursor:
                cursor.execute(RAW_UPDATE, (-amount, now, company_id))
                balance_after = cursor.fetchone()[0]
                cursor.execute(RAW_INSERT, (company_id, -amount, balance_after + amount, balance_after,
                                            f"{prefix}{index}-{sequence}", now))
            connection.commit()

        return charge, connection.close

    return run_threads(plan, "raw", distribution, start_client)


def run_core(plan: Plan, app, distribution: str) -> Result:
    """core.calls.live.end_call from client threads, each in its own app context (own db.session)."""
    from core.calls.live import end_call
    from app.extensions import db

    prefix = plan.call_ids("core", distribution)

    def start_client(index: int) -> tuple[Operation, Callable[[], None]]:
        context = app.app_context()
        context.push()
        pick = company_picker(plan, distribution, seed=1000 + index)

        def charge(sequence: int) -> None:
            try:
                ended = end_call(db.session, pick(), f"{prefix}{index}-{sequence}", duration_seconds=DURATION_SECONDS)
                db.session.commit()  # as the usage API, the entry point, does
            except BaseException:
                db.session.rollback()
                raise
            assert ended.created, "a new call id was answered as a repeat"

        def close() -> None:
            db.session.remove()
            context.pop()

        return charge, close

    return run_threads(plan, "core", distribution, start_client)


# --- over HTTP: gunicorn + wrk ---------------------------------------------------------------

WRK_SCRIPT = r"""
-- Posts the end of a 61 s call with a unique call id: <prefix>-<thread>-<counter>.
-- args: prefix, file of API keys (one a line); the first key is the hot company's.
local counter, prefix, keys = 0, "", {}
local made = 0
local body = '{"duration_seconds": %d}'

function setup(thread)
  made = made + 1
  thread:set("tid", made)
end

function init(args)
  prefix = args[1]
  for line in io.lines(args[2]) do
    if #line > 0 then keys[#keys + 1] = "Bearer " .. line end
  end
  math.randomseed(os.time() * 1000 + (tid or 0))
end

function request()
  counter = counter + 1
  local key = keys[1]
  if #keys > 1 then key = keys[math.random(#keys)] end
  return wrk.format("POST", "/api/v1/calls/" .. prefix .. "-" .. (tid or 0) .. "-" .. counter .. "/end",
                    {["Authorization"] = key, ["Content-Type"] = "application/json"}, body)
end
""".replace("%d", str(DURATION_SECONDS))


@dataclass(frozen=True)
class Server:
    base_url: str
    pid: int  # the gunicorn master
    workers: int
    worker_class: str
    threads: int


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HTTP_HOST, 0))
        return probe.getsockname()[1]


@contextmanager
def gunicorn_server(database_url: str, workers: int, worker_class: str, threads: int) -> Iterator[Server]:
    """gunicorn serving wsgi:app on the bench database; stopped on the way out, also on errors."""
    threads = threads if worker_class == "gthread" else 1  # sync with --threads > 1 would be gthread
    instance_path = tempfile.mkdtemp(prefix="portal-bench-charges-http-")
    log_path = Path(instance_path) / "gunicorn.log"
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": os.environ.get("SECRET_KEY", SECRET_KEY),
           "STRIPE_SANDBOX": "1", "INSTANCE_PATH": instance_path}
    command = [str(ROOT / ".venv" / "bin" / "gunicorn"), "--chdir", str(ROOT), "--bind", f"{HTTP_HOST}:{port}",
               "--workers", str(workers), "--worker-class", worker_class, "--threads", str(threads),
               # --reuse-port: a listening socket per worker, the kernel spreads the keep-alive
               # connections over them (else one worker may take them all). No access log.
               "--reuse-port", "--log-level", "warning", "--graceful-timeout", "5", "wsgi:app"]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)  # its own process group, to kill the workers too
    server = Server(f"http://{HTTP_HOST}:{port}", process.pid, workers, worker_class, threads)
    try:
        wait_until_up(server.base_url, process, log_path)
        yield server
    finally:
        stop(process)
        lines = log_path.read_text().splitlines()
        if lines:
            print(f"gunicorn log ({log_path}, last lines):")
            for line in lines[-20:]:
                print("  " + line)


TIME_UNITS_MS = {"us": 0.001, "ms": 1, "s": 1000, "m": 60_000}


def run_wrk(wrk: str, server: Server, script: Path, keys_file: Path, prefix: str, clients: int,
            seconds: float) -> str:
    command = [wrk, "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "10s", "--latency",
               "-s", str(script), server.base_url + "/", "--", prefix, str(keys_file)]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    if "Non-2xx or 3xx responses" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk saw failed requests:\n{output}")
    return output


def run_http(plan: Plan, db, wrk: str, server: Server, work_dir: Path, distribution: str) -> Result:
    ids = plan.fixture.company_ids[:1] if distribution == "hot" else plan.fixture.company_ids
    keys_file = work_dir / f"keys-{distribution}.txt"
    keys_file.write_text("".join(plan.fixture.api_keys[company_id] + "\n" for company_id in ids))
    script = work_dir / "end_calls.lua"
    script.write_text(WRK_SCRIPT)
    run_wrk(wrk, server, script, keys_file, plan.call_ids("http", distribution) + "warmup", plan.clients, plan.warmup)
    prefix = plan.call_ids("http", distribution) + "timed"
    with backend_states(plan) as backends:
        before, started = cpu_snapshot(plan.database, server.pid), time.perf_counter()
        output = run_wrk(wrk, server, script, keys_file, prefix, plan.clients, plan.seconds)
        elapsed = time.perf_counter() - started
        cpu = cpu_use(before, cpu_snapshot(plan.database, server.pid), elapsed)
    count, wrk_seconds = re.search(r"(\d+) requests in ([\d.]+)s", output).groups()
    charged, _ledger_rows = database_counts(db, prefix + "-")
    if charged < int(count):
        raise RuntimeError(f"wrk got {count} answers but only {charged} calls were charged:\n{output}")
    latency = {f"p{p}": float(value) * TIME_UNITS_MS[unit]
               for p, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(\w+)$", output, re.MULTILINE)}
    return Result("http", distribution, int(count), float(wrk_seconds),
                  {"p50": latency["p50"], "p99": latency["p99"]}, cpu, backends)


def http_results(plan: Plan, db, args: argparse.Namespace) -> list[Result]:
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not installed (Debian: apt-get install -y wrk): skipping the HTTP mode")
        return []
    results = []
    with gunicorn_server(plan.database_url, args.workers, args.worker_class, args.threads) as server, \
            tempfile.TemporaryDirectory(prefix="portal-bench-charges-wrk-") as work_dir:
        shape = (f"{server.workers} gthread workers x {server.threads} threads" if server.worker_class == "gthread"
                 else f"{server.workers} sync workers")
        print(f"http: gunicorn wsgi:app, {shape}, reuse-port, {server.base_url}; wrk -t1 -c{plan.clients}"
              + (" (sync workers close every connection: wrk reconnects)" if server.worker_class == "sync" else ""),
              flush=True)
        for distribution in DISTRIBUTIONS:
            results.append(run_http(plan, db, wrk, server, Path(work_dir), distribution))
            print_progress(results[-1])
    return results


# --- report ----------------------------------------------------------------------------------


def print_progress(result: Result) -> None:
    print(f"  {result.mode:<5} {result.distribution:<7} {result.rate:8.0f} charges/s", flush=True)


def print_table(results: list[Result]) -> None:
    print(f"\n{'':<17}{'':>10}{'latency':>16}{'cpu (cores)':>29}{'':>7}{'backends (average)':>33}")
    print(f"{'mode':<6}{'companies':<11}{'charges/s':>10}{'p50 ms':>8}{'p99 ms':>8}{'clients':>9}{'gunicorn':>9}"
          f"{'postgres':>9}{'other':>7}" + "".join(f"{key:>12}" for key in BACKEND_STATES))
    for result in results:
        cpu = result.cpu
        print(f"{result.mode:<6}{result.distribution:<11}{result.rate:>10.0f}{result.latency_ms['p50']:>8.2f}"
              f"{result.latency_ms['p99']:>8.2f}{cpu['clients']:>9.2f}{cpu['gunicorn']:>9.2f}"
              f"{cpu['postgres']:>9.2f}{cpu['other']:>7.2f}"
              + "".join(f"{result.backends[key]:>12.2f}" for key in BACKEND_STATES))
    print(f"cpu: cores busy during the timed run (of {os.cpu_count()}); clients: this process (raw: psycopg threads; "
          "core: the service itself) or wrk (http);\npostgres: the bench database's backends and the server's own "
          "processes (WAL writer, ...); other: the rest of the machine.\nbackends: of the bench database's "
          "connections, how many on average waited for a row lock, were busy in PostgreSQL\n(executing, or "
          "flushing the WAL at COMMIT), or sat idle inside a transaction, waiting for their client.")
    contended = [result for result in results if result.cpu["other"] >= OTHER_CPU_WARNING]
    if contended:
        print(f"WARNING: other programs used {OTHER_CPU_WARNING} cores or more during "
              + ", ".join(f"{r.mode} {r.distribution} ({r.cpu['other']:.2f})" for r in contended)
              + ": those numbers are doubtful, run again on a quiet machine.")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_ratios(results: list[Result]) -> None:
    rate = {(r.mode, r.distribution): r.rate for r in results}
    modes = [mode for mode in MODES if (mode, "hot") in rate]
    print("\nratios")
    for mode in modes[1:]:
        for distribution in DISTRIBUTIONS:
            print(f"  {mode}/raw {distribution:<7} {rate[mode, distribution] / rate['raw', distribution]:7.1%}")
    for mode in modes:
        print(f"  hot/spread {mode:<5}{rate[mode, 'hot'] / rate[mode, 'spread']:7.1%}")
    print("\ngoals")
    for distribution in DISTRIBUTIONS:
        share = rate["core", distribution] / rate["raw", distribution]
        print(f"  core >= {GOAL_CORE_VS_RAW:.0%} of raw, {distribution:<6}: {share:6.1%}  "
              f"{verdict(share >= GOAL_CORE_VS_RAW)}")
    for mode in modes[1:]:
        share = rate[mode, "hot"] / rate[mode, "spread"]
        print(f"  {mode} hot >= {GOAL_HOT_VS_SPREAD:.0%} of spread: {share:6.1%}  "
              f"{verdict(share >= GOAL_HOT_VS_SPREAD)}")


def check_counts(db, plan: Plan, results: list[Result]) -> None:
    """Every charge the clients counted is in the database, once in call_charges and once in the ledger."""
    print()
    for result in results:
        if result.mode == "raw":
            continue
        prefix = plan.call_ids(result.mode, result.distribution)
        charges, ledger_rows = database_counts(db, prefix)
        ok = charges == ledger_rows and charges >= result.charges
        print(f"{result.mode} {result.distribution}: {charges} call charges, {ledger_rows} ledger rows "
              f"(warm-up included): {'consistent' if ok else 'INCONSISTENT'}")


def print_explains(db, company_id: int, call_id: str) -> None:
    """EXPLAIN ANALYZE of the SELECTs of one more core.calls.live.end_call: what each read costs now."""
    from sqlalchemy import event

    from core.calls.live import end_call

    captured: list[tuple[str, dict]] = []
    commits: list[object] = []

    def remember(_conn, _cursor, statement, parameters, _context, _many):
        captured.append((statement, parameters))

    def committed(connection):
        commits.append(connection)

    event.listen(db.engine, "before_cursor_execute", remember)
    event.listen(db.engine, "commit", committed)
    try:
        end_call(db.session, company_id, call_id, duration_seconds=DURATION_SECONDS)
        db.session.commit()
    finally:
        event.remove(db.engine, "before_cursor_execute", remember)
        event.remove(db.engine, "commit", committed)
    writes = sum(1 for statement, _ in captured if not statement.lstrip().upper().startswith("SELECT"))
    reads = len(captured) - writes
    print(f"\none more core.calls.live.end_call: {len(captured)} statements ({writes} writes, {reads} reads) in "
          f"{len(commits)} transaction(s), BEGIN and COMMIT not counted"
          f"{'; EXPLAIN ANALYZE of its reads:' if reads else ''}")
    for statement, parameters in captured:
        if not statement.lstrip().upper().startswith("SELECT"):
            continue
        plan = [line for (line,) in db.session.connection().exec_driver_sql(
            "EXPLAIN (ANALYZE) " + statement, parameters)]
        db.session.rollback()
        scan = next((line.strip().removeprefix("->  ") for line in plan if " on " in line), plan[0].strip())
        took = next(line for line in plan if line.startswith("Execution Time")).split(": ")[1]
        flat = re.sub(r"\s+", " ", statement)
        what = flat.split(" FROM ", 1)[1].split(" ORDER BY ")[0].split(" LIMIT ")[0]
        # %(company_id_1)s::INTEGER -> :company_id, to keep the line short
        what = re.sub(r"%\((\w+?)(?:_\d+)?\)s(::TIMESTAMP WITHOUT TIME ZONE|::\w+)?", r":\1", what)
        print(f"  {took:>10}  {scan.split('  (')[0]:<58}  FROM {what[:110]}")


def check_invariants(db) -> bool:
    from core.ledger.postings import verify_ledger

    started = time.perf_counter()
    mismatches = verify_ledger(db.session)
    db.session.rollback()
    totals = db.session.execute(text(
        "SELECT (SELECT count(*) FROM balance_transactions), (SELECT count(*) FROM call_charges)")).one()
    db.session.rollback()
    print(f"ledger invariants (verify_ledger over {totals[0]:,} ledger rows, {totals[1]:,} call charges, "
          f"{time.perf_counter() - started:.1f} s): " + ("hold" if not mismatches else f"BROKEN: {mismatches[:10]}"))
    return not mismatches


# --- main ------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL,
                        help=f"PostgreSQL URL of the bench database (default {DEFAULT_DATABASE_URL})")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients in every mode (default 8)")
    parser.add_argument("--seconds", type=float, default=10,
                        help="timed seconds per mode and distribution (default 10)")
    parser.add_argument("--warmup", type=float, default=2, help="warm-up seconds before each timed run (default 2)")
    parser.add_argument("--companies", type=int, default=1000, help="companies for the spread case (default 1000)")
    parser.add_argument("--history", type=int, default=0,
                        help="old call charges (zero-second calls, no ledger rows) in the table before the runs "
                             "(default 0)")
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1),
                        help="gunicorn worker processes (default 2 per core)")
    parser.add_argument("--worker-class", default="sync", choices=("sync", "gthread"),
                        help="gunicorn worker class (default sync, see the docstring)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker (default 4)")
    parser.add_argument("--skip-http", action="store_true", help="leave out the HTTP mode (gunicorn + wrk)")
    args = parser.parse_args()
    if args.clients < 1 or args.seconds <= 0 or args.companies < 2 or args.history < 0:
        parser.error("--clients >= 1, --seconds > 0, --companies >= 2 and --history >= 0, please")
    return args


def main() -> None:
    args = parse_args()
    run_started = time.perf_counter()
    ensure_database(args.database_url)
    app = make_bench_app(args.database_url, args.clients)
    from app.extensions import db
    from core.money import eur, to_decimal_string

    amount = eur("0.42") * DURATION_SECONDS // 60  # the charge of one call at the default rate
    with app.app_context():
        started = time.perf_counter()
        fixture = set_up(db, args.companies, args.history)
        print(f"set up {args.companies} companies (opening top-up, API key) and {args.history:,} old call charges "
              f"in {time.perf_counter() - started:.1f} s; every charge: a {DURATION_SECONDS} s call, "
              f"{to_decimal_string(amount)} EUR")
    plan = Plan(args.database_url, make_url(args.database_url).database, fixture, args.clients, args.warmup,
                args.seconds)
    print(f"{args.clients} clients per mode, {args.warmup:g} s warm-up + {args.seconds:g} s timed per run", flush=True)

    results = []
    for distribution in DISTRIBUTIONS:
        results.append(run_raw(plan, distribution, amount))
        print_progress(results[-1])
    for distribution in DISTRIBUTIONS:
        results.append(run_core(plan, app, distribution))
        print_progress(results[-1])
    with app.app_context():
        if not args.skip_http:
            results += http_results(plan, db, args)
        print_table(results)
        print_ratios(results)
        check_counts(db, plan, results)
        print_explains(db, fixture.company_ids[1], f"explain-{plan.tag}")
        held = check_invariants(db)
    print(f"whole run: {time.perf_counter() - run_started:.1f} s")
    if not held:
        sys.exit(1)


if __name__ == "__main__":
    main()
