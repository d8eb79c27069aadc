"""Shared by the benchmark scripts: their own PostgreSQL database, and a gunicorn to measure over HTTP."""

from __future__ import annotations

import os
import signal
import sys
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url


def wait_until_up(base_url: str, process: subprocess.Popen, log_path: Path, timeout: float = 60) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}, see {log_path}")
        try:
            with opener.open(base_url + "/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer /healthz within {timeout:.0f} s, see {log_path}")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM (graceful shutdown), then SIGKILL to its process group (master and workers) if it hangs."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def ensure_database(url: str) -> None:
    """Create the bench database if it is missing; refuse a name without "bench" (the scripts rebuild it)."""
    target = make_url(url)
    if "bench" not in (target.database or ""):
        sys.exit(f"refusing to use database {target.database!r}: its name must contain 'bench'")
    admin = target.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target.database,)).fetchone()
        if not exists:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target.database)))
            print(f"created database {target.database}")
