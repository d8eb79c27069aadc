"""Helpers for web tests: log in through the real form, read CSRF tokens from pages."""

import re

from tests.conftest import COMPANY_PASSWORD


def csrf_token_from(html: str) -> str:
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


def log_in(client, email: str, password: str = COMPANY_PASSWORD, **extra):
    page = client.get("/login")
    return client.post("/login", data={"email": email, "password": password,
                                       "csrf_token": csrf_token_from(page.text), **extra})
