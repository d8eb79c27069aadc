"""Every response carries the security headers (app/security.py): pages, the API, error pages,
static files; HSTS only over HTTPS; no page of the portal needs inline script or style."""

import re
from pathlib import Path

import pytest

from app.factory import create_app
from tests.helpers import log_in

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def directives(response) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    return {name: value for name, _, value in (part.strip().partition(" ") for part in policy.split(";"))}


def assert_protected(response) -> None:
    policy = directives(response)
    assert policy["script-src"] == "'self'"  # no inline script, no eval
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert "unsafe-eval" not in response.headers["Content-Security-Policy"]
    assert re.fullmatch(r"'self' 'nonce-[\w-]+'", policy["style-src"])
    assert policy["default-src"] == "'self'" and policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "Strict-Transport-Security" not in response.headers  # plain http: the demo is not pinned to TLS


def test_pages_carry_the_security_headers(client, make_company):
    _, email = make_company()
    assert_protected(client.get("/login"))
    log_in(client, email)
    page = client.get("/business/billing")
    assert page.status_code == 200
    assert_protected(page)


def test_htmx_partials_redirects_and_error_pages_carry_them_too(client, make_company):
    _, email = make_company()
    log_in(client, email)
    assert_protected(client.get("/business/billing/transactions?type=topup", headers={"HX-Request": "true"}))
    assert_protected(client.get("/"))  # a redirect
    assert_protected(client.get("/no-such-page"))  # 404 page
    assert_protected(client.get("/logout"))  # 405 page


def test_the_api_and_its_errors_carry_them(client):
    unauthorised = client.post("/api/v1/calls/x/end", json={"duration_seconds": 1})
    assert unauthorised.status_code == 401
    assert_protected(unauthorised)
    missing = client.get("/api/v1/no-such-endpoint")
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"
    assert_protected(missing)
    assert_protected(client.get("/healthz"))


def test_static_files_carry_them(client):
    stylesheet = client.get("/static/css/app.css")
    assert stylesheet.status_code == 200
    assert_protected(stylesheet)
    assert_protected(client.get("/static/js/portal.js"))


def test_the_stripe_sandbox_checkout_page_allows_only_its_own_inline_style(client, make_company):
    """The stand-in checkout page keeps its style inline: the style element carries the response's nonce."""
    from tests.stripe_helpers import path_of, start_topup

    _, email = make_company()
    log_in(client, email)
    page = client.get(path_of(start_topup(client, "50").headers["Location"]))
    assert page.status_code == 200
    assert_protected(page)
    nonce = re.search(r"'nonce-([\w-]+)'", page.headers["Content-Security-Policy"]).group(1)
    assert f'<style nonce="{nonce}">' in page.text


@pytest.fixture
def bare_app(app):
    """An app of its own (no test mode, so an error is answered as in production), for routes that
    only a test adds."""
    def make(**config):
        application = create_app({"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"], **config})

        @application.get("/test-only/boom")
        def boom():
            raise RuntimeError("a bug")

        @application.get("/test-only/client")
        def who():
            from flask import request

            return {"address": request.remote_addr, "secure": request.is_secure}

        return application

    return make


def test_an_unexpected_error_page_carries_them(bare_app):
    answer = bare_app().test_client().get("/test-only/boom")
    assert answer.status_code == 500
    assert_protected(answer)


def test_hsts_is_sent_over_https_only_and_http_is_not_redirected(client):
    assert client.get("/login").status_code == 200  # the local http demo is not forced onto https
    secure = client.get("/login", base_url="https://portal.example.com")
    assert re.fullmatch(r"max-age=\d{7,}", secure.headers["Strict-Transport-Security"])


def test_forwarded_headers_count_only_from_trusted_proxies(bare_app):
    forwarded = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    direct = bare_app().test_client().get("/test-only/client", headers=forwarded)
    assert direct.json == {"address": "127.0.0.1", "secure": False}
    proxied = bare_app(TRUSTED_PROXIES=1).test_client().get("/test-only/client", headers=forwarded)
    assert proxied.json == {"address": "203.0.113.9", "secure": True}
    assert "max-age=" in proxied.headers["Strict-Transport-Security"]


# Inline script, event handler attributes, inline style, and the htmx features that need eval
# (hx-on, trigger filters in brackets, js: values).
INLINE_CODE = re.compile(r"<script(?![^>]*\ssrc=)|\son[a-z]+\s*=|\sstyle\s*=|<style|hx-on|javascript:"
                         r"|hx-trigger=\"(?:[^\"]*[,\s])?(?!from:)[\w.:-]+\[|hx-(?:vals|vars)=['\"]\s*js:", re.IGNORECASE)


def test_no_page_template_has_inline_script_or_style():
    """What the CSP would refuse in the browser, caught in the source. Emails and PDF documents are
    not pages (mail clients and WeasyPrint need inline style)."""
    offenders = [f"{path.relative_to(TEMPLATES)}: {match.group(0)}"
                 for path in TEMPLATES.rglob("*.html") if path.parts[len(TEMPLATES.parts)] not in ("emails", "documents")
                 for match in INLINE_CODE.finditer(path.read_text())]
    assert offenders == []
