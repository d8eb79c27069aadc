"""A Stripe sandbox for development and tests: plays Stripe's API, hosted Checkout and webhooks.

The application talks to it only through the real `stripe` library. See README.md.
"""

from .api import API_URL_PREFIX, create_api_app, create_api_blueprint
from .checkout import create_checkout_blueprint
from .errors import StripeAPIError
from .http_client import SandboxHTTPClient
from .sandbox import StripeSandbox
from .webhooks import DEV_WEBHOOK_SECRET, DeliveryFailed, HTTPDeliverer

__all__ = [
    "API_URL_PREFIX",
    "DEV_WEBHOOK_SECRET",
    "DeliveryFailed",
    "HTTPDeliverer",
    "SandboxHTTPClient",
    "StripeAPIError",
    "StripeSandbox",
    "create_api_app",
    "create_api_blueprint",
    "create_checkout_blueprint",
]
