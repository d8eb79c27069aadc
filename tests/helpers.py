"""Helpers for web tests: log in through the real form, read CSRF tokens from pages, run queued jobs."""

import re

from rq import Queue

from app.queue import QUEUES
from tests.conftest import COMPANY_PASSWORD
from worker import AppSimpleWorker


def csrf_token_from(html: str) -> str:
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


def log_in(client, email: str, password: str = COMPANY_PASSWORD, **extra):
    page = client.get("/login")
    return client.post("/login", data={"email": email, "password": password,
                                       "csrf_token": csrf_token_from(page.text), **extra})


def open_set_password_link(client, link: str):
    """What a browser and the page's script do with an emailed set-password link: load the page
    (the fragment stays in the browser), then post the fragment's token. Returns the password form."""
    path, _, token = link.split("://", 1)[-1].partition("/")[2].partition("#")
    page = client.get("/" + path)
    return client.post("/set-password/open", data={"link": token, "csrf_token": csrf_token_from(page.text)})


def run_worker(app, connection) -> None:
    """A real RQ worker (in this process) runs every queued job, then stops."""
    worker = AppSimpleWorker([Queue(name, connection=connection) for name in QUEUES], connection=connection)
    worker.flask_app = app
    worker.work(burst=True)
