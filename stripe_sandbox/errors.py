"""Errors in the shape of Stripe's API error body."""

from __future__ import annotations

from typing import Any

DOC_URL = "https://stripe.com/docs/error-codes/{code}"


class StripeAPIError(Exception):
    """An error the sandbox answers with, as Stripe would: an HTTP status and an error body.

    Also raised by the sandbox's Python methods (e.g. `refund_from_dashboard`) when the
    same request through the API would have failed.
    """

    def __init__(
        self,
        status: int,
        type: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = DOC_URL.format(code=self.code)
        if self.decline_code:
            error["decline_code"] = self.decline_code
        if self.param:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> StripeAPIError:
    return StripeAPIError(400, "invalid_request_error", message, code=code, param=param)


def missing_param(param: str) -> StripeAPIError:
    return invalid_request(f"Missing required param: {param}.", param, "parameter_missing")


def unknown_param(param: str) -> StripeAPIError:
    return invalid_request(f"Received unknown parameter: {param}", param, "parameter_unknown")


def invalid_param(param: str, message: str, code: str = "parameter_invalid_string") -> StripeAPIError:
    return invalid_request(message, param, code)


def no_such(label: str, object_id: str, param: str | None = "id", status: int = 404) -> StripeAPIError:
    """404 when the URL names a missing object; Stripe answers 400 when a parameter does."""
    return StripeAPIError(
        status,
        "invalid_request_error",
        f"No such {label}: '{object_id}'",
        code="resource_missing",
        param=param,
    )


def unexpected_state(message: str) -> StripeAPIError:
    return invalid_request(message, None, "payment_intent_unexpected_state")


def unrecognized_url(method: str, path: str) -> StripeAPIError:
    return StripeAPIError(
        404,
        "invalid_request_error",
        f"Unrecognized request URL ({method}: {path}). The Stripe sandbox answers only the "
        "endpoints listed in stripe_sandbox/README.md.",
    )


def authentication(message: str) -> StripeAPIError:
    return StripeAPIError(401, "invalid_request_error", message)


def idempotency_mismatch(key: str) -> StripeAPIError:
    return StripeAPIError(
        400,
        "idempotency_error",
        "Keys for idempotent requests can only be used with the same parameters they were "
        f"first used with. Try using a key other than '{key}' if you meant to execute a "
        "different request.",
    )
