"""Plug the sandbox into the portal app (demo and tests only; wsgi.py calls this without Stripe keys)."""

from __future__ import annotations

from pathlib import Path

from core.payments.gateway import StripeGateway

from .api import create_api_blueprint
from .checkout import create_checkout_blueprint
from .http_client import SandboxHTTPClient
from .sandbox import StripeSandbox
from .webhooks import DEV_WEBHOOK_SECRET

WEBHOOK_PATH = "/api/stripe/webhook"
SANDBOX_API_KEY = "sk_test_sandbox"


class InProcessDeliverer:
    """Delivers each signed webhook through the app's own WSGI stack, off the request thread."""

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
                    state_path: Path | None = None) -> StripeSandbox:
    """Mount the hosted checkout page and point the app's Stripe gateway at the sandbox."""
    secret = app.config.get("STRIPE_WEBHOOK_SECRET") or DEV_WEBHOOK_SECRET
    sandbox = StripeSandbox(
        webhook_secret=secret,
        checkout_base_url=None,
        deliver=deliver if deliver is not None else InProcessDeliverer(app),
        settle_delay_seconds=settle_delay_seconds if settle_delay_seconds is not None
        else app.config["STRIPE_SANDBOX_SETTLE_SECONDS"],
        state_path=state_path,
    )
    for blueprint in (create_checkout_blueprint(sandbox), create_api_blueprint(sandbox)):
        app.extensions["csrf"].exempt(blueprint)  # the page has its own token; the API takes a key
        app.register_blueprint(blueprint)
    app.extensions["stripe_sandbox"] = sandbox
    app.extensions["stripe_gateway"] = StripeGateway(
        SANDBOX_API_KEY, secret, http_client=SandboxHTTPClient(sandbox), sandbox=True
    )
    return sandbox


def use_remote_sandbox(app, api_base: str) -> None:
    """For RQ workers: reach the sandbox of the serving process over HTTP (its state lives there)."""
    secret = app.config.get("STRIPE_WEBHOOK_SECRET") or DEV_WEBHOOK_SECRET
    app.extensions["stripe_gateway"] = StripeGateway(SANDBOX_API_KEY, secret, api_base=api_base, sandbox=True)
