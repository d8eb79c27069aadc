"""Plug the sandbox into the portal app (demo and tests only; wsgi.py calls this without Stripe keys)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from core.payments.gateway import StripeGateway

from .checkout import create_checkout_blueprint
from .sandbox import StripeSandbox

WEBHOOK_PATH = "/api/stripe/webhook"
SANDBOX_API_KEY = "sk_test_sandbox"


class InProcessDeliverer:
    """Delivers each signed webhook through the app's own WSGI stack, off the request thread.

    The server, an RQ worker and a CLI command each hold the whole app and its database, so the
    process that raised an event hands it to its own webhook endpoint: what the web server would do.
    """

    background = True

    def __init__(self, app, path: str = WEBHOOK_PATH):
        self._app = app
        self._path = path

    def __call__(self, payload: str, signature_header: str) -> bool:
        response = self._app.test_client().post(
            self._path, data=payload, content_type="application/json",
            headers={"Stripe-Signature": signature_header},
        )
        return response.status_code == 200


def install_sandbox(app, *, deliver=None, settle_delay_seconds: float | None = None,
                    path: str | Path | None = None) -> StripeSandbox:
    """Mount the hosted checkout page and point the app's Stripe gateway at the sandbox whose state
    is the SQLite file `path` (default: the app's STRIPE_SANDBOX_DB), shared by every process."""
    secret = app.config["STRIPE_WEBHOOK_SECRET"]  # the instance's own: no well-known secret verifies anything
    sandbox = StripeSandbox(
        webhook_secret=secret,
        checkout_base_url=None,
        deliver=deliver if deliver is not None else InProcessDeliverer(app),
        settle_delay_seconds=settle_delay_seconds if settle_delay_seconds is not None
        else app.config["STRIPE_SANDBOX_SETTLE_SECONDS"],
        path=path or app.config["STRIPE_SANDBOX_DB"],
        checkout_expiry_seconds=app.config["STRIPE_SANDBOX_CHECKOUT_EXPIRY_SECONDS"],
    )
    checkout = create_checkout_blueprint(sandbox)
    app.extensions["csrf"].exempt(checkout)  # the page's forms carry their own token
    app.register_blueprint(checkout)
    app.extensions["stripe_sandbox"] = sandbox
    app.extensions["stripe_gateway"] = StripeGateway(
        SANDBOX_API_KEY, secret, make_http_client=partial(_sandbox_http_client, sandbox), sandbox=True
    )
    return sandbox


def _sandbox_http_client(sandbox: StripeSandbox):
    from .http_client import SandboxHTTPClient  # imports stripe: only once the gateway first calls Stripe

    return SandboxHTTPClient(sandbox)
