"""Blueprint "api": the machines under /api: the usage API (API key) and the Stripe webhook (signature).
JSON errors with stable codes, no CSRF; one module per endpoint family."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api")

from api import stripe_webhook, usage  # noqa: E402,F401 - their views join bp
