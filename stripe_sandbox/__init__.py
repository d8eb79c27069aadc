"""A Stripe sandbox for development and tests: plays Stripe's API, hosted Checkout and webhooks.

The application talks to it only through the real `stripe` library. See README.md.
"""

from .api import API_URL_PREFIX, create_api_app, create_api_blueprint
from .checkout import create_checkout_blueprint
from .errors import StripeAPIError
from .sandbox import StripeSandbox
from .webhooks import DEV_WEBHOOK_SECRET, DeliveryFailed, HTTPDeliverer



def __getattr__(name: str):
    # SandboxHTTPClient subclasses stripe's HTTPClient: importing it imports stripe (~0.3 s of CPU), so
    # it is loaded when asked for, not by every process that installs the sandbox at start-up.
    if name == "SandboxHTTPClient":
        from .http_client import SandboxHTTPClient

        return SandboxHTTPClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
