"""Security headers on every response (pages, the API, error pages, static files), configured here
and only here, through Flask-Talisman; and which proxy the app may believe about the client.

The Content-Security-Policy allows scripts, styles and connections from the portal's own origin only:
- script-src 'self': no inline script and no eval. The pages' only scripts are htmx and
  static/js/portal.js; htmx runs with ``allowEval: false`` (templates/base.html), so no hx-on
  handler or ``[...]`` trigger filter can ask for eval.
- style-src 'self' and a per-response nonce: no ``style=`` attribute and no ``<style>`` element in
  the portal's pages (htmx's own indicator ``<style>`` is switched off with
  ``includeIndicatorStyles: false``; its rules live in static/css/app.css). Inline styles are not
  script, but allowing them would let injected markup restyle a page (fake overlays, hidden
  fields). The nonce is for the one page that keeps its style inline, the Stripe sandbox's
  stand-in checkout page (demo and tests only, self-contained like Stripe's own); injected markup
  cannot know it.
- img-src also data:, for the icons Pico's stylesheet embeds as data: SVGs.
- form-action also Stripe Checkout: a top-up form's answer is a redirect there, which the browser
  checks against form-action.
- frame-ancestors 'none' (with X-Frame-Options: DENY for older browsers): no page can be framed,
  so none can be clickjacked.
HSTS is sent only on HTTPS requests (Talisman's rule: a secure request, or one whose proxy says
X-Forwarded-Proto: https; browsers ignore HSTS on plain HTTP), never redirects, so the local http
demo keeps working. Behind a reverse proxy, TRUSTED_PROXIES (the number of proxies in front) makes
the app believe their X-Forwarded-For/-Proto/-Host (Werkzeug's ProxyFix): the client's address for
the rate limits and the audit, https for secure cookies and HSTS.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app.extensions import talisman

STRIPE_CHECKOUT_ORIGIN = "https://checkout.stripe.com"

CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "form-action": f"'self' {STRIPE_CHECKOUT_ORIGIN}",
    "frame-ancestors": "'none'",
    "base-uri": "'none'",
    "object-src": "'none'",
}


def init_security(app: Flask) -> None:
    proxies = app.config["TRUSTED_PROXIES"]
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
    talisman.init_app(
        app,
        content_security_policy=CONTENT_SECURITY_POLICY,
        content_security_policy_nonce_in=["style-src"],
        frame_options="DENY",
        referrer_policy="strict-origin-when-cross-origin",
        force_https=False,  # TLS ends at the proxy; the local demo is plain http
        strict_transport_security=True,
        strict_transport_security_include_subdomains=False,  # the operator's other hosts are not ours to pin
        # The cookie settings stay config's (Talisman would otherwise force Secure on the http demo).
        session_cookie_secure=app.config["SESSION_COOKIE_SECURE"],
        session_cookie_samesite=app.config["SESSION_COOKIE_SAMESITE"],
        session_cookie_http_only=True,
    )
