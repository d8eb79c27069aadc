"""The REST API: authentication, routing, idempotency, expansion, JSON — and serving it over HTTP."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping
from urllib.parse import urlsplit

from .endpoints import ROUTES
from .errors import StripeAPIError, authentication, idempotency_mismatch, invalid_request, unrecognized_url
from .params import parse_form
from .store import new_id

if TYPE_CHECKING:
    from flask import Blueprint, Flask

    from .sandbox import StripeSandbox

log = logging.getLogger(__name__)

API_URL_PREFIX = "/sandbox/stripe/api"
IDEMPOTENCY_KEY_LIFETIME = 24 * 60 * 60
_ROUTES = [(method, re.compile(pattern + r"/?"), handler) for method, pattern, handler in ROUTES]


@dataclass
class ApiResponse:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


def handle_request(sb: "StripeSandbox", method: str, url: str, headers: Mapping[str, str],
                   body: str | bytes | None) -> ApiResponse:
    """Answer one API request as Stripe would. `url` may be absolute; its path from /v1/ on counts."""
    method = method.upper()
    headers = {key.lower(): value for key, value in headers.items()}
    idempotency_key = headers.get("idempotency-key") if method == "POST" else None
    request_id = new_id("req", 14)
    parts = urlsplit(url)
    path = _api_path(parts.path)
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    try:
        _authenticate(headers)
        handler, path_args = _route(method, path)
        params = parse_form(parts.query if method in ("GET", "DELETE") else body or "")
        with sb.transaction():
            status, payload, replayed = _execute(sb, handler, path_args, params, method, path,
                                                 request_id, idempotency_key)
    except StripeAPIError as error:
        status, payload, replayed = error.status, json.dumps(error.body(), indent=2), False
    except Exception as exc:  # a sandbox bug: answer like Stripe's api_error, and say what broke
        log.exception("stripe sandbox: %s %s failed", method, path)
        error = StripeAPIError(500, "api_error", f"Stripe sandbox error: {type(exc).__name__}: {exc}")
        answer = ApiResponse(500, json.dumps(error.body(), indent=2),
                             _response_headers(request_id, idempotency_key, False))
        answer.headers["Stripe-Should-Retry"] = "false"
        return answer
    return ApiResponse(status, payload, _response_headers(request_id, idempotency_key, replayed))


def _api_path(path: str) -> str:
    index = path.find("/v1/")
    return path[index:] if index >= 0 else path


def _authenticate(headers: dict[str, str]) -> None:
    auth = headers.get("authorization", "")
    if not auth:
        raise authentication("You did not provide an API key. You need to provide your API key in "
                             "the Authorization header, using Bearer auth (e.g. 'Authorization: "
                             "Bearer YOUR_SECRET_KEY').")
    key = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
    if not key.startswith("sk_test_"):
        shown = key[:8] + "*" * max(0, len(key) - 12) + key[-4:] if len(key) > 12 else key
        raise authentication(f"Invalid API Key provided: {shown} (the Stripe sandbox accepts test "
                             "secret keys, sk_test_...)")


def _route(method: str, path: str) -> tuple[Callable[..., Any], dict[str, str]]:
    for route_method, pattern, handler in _ROUTES:
        match = pattern.fullmatch(path)
        if match and route_method == method:
            return handler, match.groupdict()
    raise unrecognized_url(method, path)


def _execute(sb: "StripeSandbox", handler, path_args, params, method, path, request_id,
             idempotency_key) -> tuple[int, str, bool]:
    """Run the handler, or replay the response saved under the same Idempotency-Key."""
    fingerprint = hashlib.sha256(
        json.dumps([method, path, params], sort_keys=True).encode("utf-8")).hexdigest()
    if idempotency_key:
        saved = _saved_response(sb, idempotency_key)
        if saved is not None:
            if saved["fingerprint"] != fingerprint:
                raise idempotency_mismatch(idempotency_key)
            return saved["status"], saved["body"], True
    sb.request_context = (request_id, idempotency_key)
    try:
        result = handler(sb, params, **path_args)
        status, body = 200, json.dumps(_expand(sb, result, params.get("expand") or []), indent=2)
    except StripeAPIError as error:
        if error.status != 402:  # Stripe saves only requests that started executing
            raise
        status, body = error.status, json.dumps(error.body(), indent=2)
    finally:
        sb.request_context = (None, None)
    if idempotency_key:
        sb.store.save_response(idempotency_key, fingerprint, status, body, sb.now())
    return status, body, False


def _saved_response(sb: "StripeSandbox", key: str) -> dict[str, Any] | None:
    return sb.store.saved_response(key, oldest=sb.now() - IDEMPOTENCY_KEY_LIFETIME)


def _response_headers(request_id: str, idempotency_key: str | None, replayed: bool) -> dict[str, str]:
    import stripe  # for its API version; at start-up the import would cost every process ~0.3 s of CPU

    headers = {"Content-Type": "application/json", "Request-Id": request_id,
               "Stripe-Version": stripe.api_version}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return headers


# ---- expansion ------------------------------------------------------------------------------

def _expand(sb: "StripeSandbox", obj: dict, paths: list[str]) -> dict:
    result = copy.deepcopy(obj)
    if not isinstance(paths, list):
        raise invalid_request("Invalid array", "expand")
    for path in paths:
        _expand_path(sb, result, path.split("."), path)
    return result


def _expand_path(sb: "StripeSandbox", node: dict, parts: list[str], full: str) -> None:
    if node.get("object") == "list" and parts[0] == "data":
        for item in node["data"]:
            if len(parts) > 1:
                _expand_path(sb, item, parts[1:], full)
        return
    key = parts[0]
    if key not in node:
        raise invalid_request(f"This property cannot be expanded ({full}).", "expand")
    value = node[key]
    if isinstance(value, str):
        target = sb.store.get(value)
        if target is None:
            raise invalid_request(f"This property cannot be expanded ({full}).", "expand")
        value = node[key] = copy.deepcopy(target)
    if len(parts) > 1 and isinstance(value, dict):
        _expand_path(sb, value, parts[1:], full)


# ---- over HTTP -------------------------------------------------------------------------------

def create_api_blueprint(sb: "StripeSandbox", name: str = "stripe_sandbox_api") -> "Blueprint":
    """The REST API as a Flask blueprint, mounted by default under /sandbox/stripe/api.

    Point the client at it with `base_addresses={"api": "http://HOST:PORT/sandbox/stripe/api"}`
    (the stripe library appends `/v1/...` to that address). Exempt it from CSRF protection.
    """
    from flask import Blueprint, Response, request

    blueprint = Blueprint(name, __name__, url_prefix=API_URL_PREFIX)

    @blueprint.route("/", defaults={"subpath": ""}, methods=["GET", "POST", "DELETE"])
    @blueprint.route("/<path:subpath>", methods=["GET", "POST", "DELETE"])
    def api(subpath: str):
        url = "/" + subpath + ("?" + request.query_string.decode("latin-1") if request.query_string else "")
        answer = handle_request(sb, request.method, url, dict(request.headers),
                                request.get_data(as_text=True))
        return Response(answer.body, status=answer.status, headers=answer.headers)

    return blueprint


def create_api_app(sb: "StripeSandbox") -> "Flask":
    """A small WSGI app answering the API at its root (`/v1/...`), for a server of its own."""
    from flask import Flask

    app = Flask(__name__)
    blueprint = create_api_blueprint(sb)
    app.register_blueprint(blueprint, url_prefix="/")
    return app
