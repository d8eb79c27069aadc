"""The usage API for the telephony platform: JSON, a company API key as Bearer token, stable error codes.

    POST /api/v1/calls/<call_id>/start   {"started_at": "2026-11-21T10:00:00Z", "from": "...", "to": "..."}
    POST /api/v1/calls/<call_id>/end     {"duration_seconds": 61, "ended_at": "2026-11-21T10:01:01Z"}
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import wraps

from flask import current_app, g, jsonify, request

from core.calls.api_keys import authenticate_api_key
from core.payments.auto_topup import AutoTopupPolicy, maybe_trigger
from core.calls.live import CallError, CallPolicy, ConcurrentDuplicate, end_call, start_call
from core.clock import utcnow
from app.extensions import db
from core.money import to_decimal_string
from core.parsing import InvalidInput, parse_timestamp
from api import bp


CALL_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,100}$")
STATUS_OF = {"company_blocked": 402, "insufficient_funds": 402, "call_not_found": 404, "end_before_start": 422}


class BadRequest(Exception):
    def __init__(self, code: str, message: str, status: int = 422):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def error(code: str, message: str, status: int):
    return jsonify(error={"code": code, "message": message}), status


@bp.errorhandler(BadRequest)
def _bad_request(exc: BadRequest):
    return error(exc.code, exc.message, exc.status)


@bp.errorhandler(CallError)
def _call_error(exc: CallError):
    return error(exc.code, _CALL_ERROR_MESSAGES[exc.code], STATUS_OF[exc.code])


_CALL_ERROR_MESSAGES = {
    "company_blocked": "The company is blocked; calls cannot start.",
    "insufficient_funds": "The available balance does not cover the minimum for a call.",
    "call_not_found": "No such call.",
    "end_before_start": "The call cannot end before it started.",
}


def api_key_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        # The key is read in the transaction the call's own work goes on with: no BEGIN and COMMIT of its own.
        key = authenticate_api_key(db.session, token.strip()) if scheme.lower() == "bearer" else None
        company_id = key.company_id if key is not None else None
        if company_id is None:
            return error("unauthorized", "A valid API key is required (Authorization: Bearer <key>).", 401)
        g.api_company_id = company_id
        return view(*args, **kwargs)

    return wrapper


def _json_body() -> dict:
    body = request.get_json(force=True)  # app.inputs: core's parser; what it refuses answers a stable code
    if not isinstance(body, dict):
        raise BadRequest("invalid_json", "The body must be a JSON object.")
    return body


def _call_id(call_id: str) -> str:
    if not CALL_ID.match(call_id):
        raise BadRequest("invalid_call_id", "call_id: 1-100 letters, digits or . _ : @ -")
    return call_id


def _timestamp(body: dict, field: str, required: bool) -> datetime | None:
    value = body.get(field)
    if value is None and not required:
        return None
    try:
        moment = parse_timestamp(value)
    except InvalidInput as invalid:
        if invalid.reason == "not_a_timestamp":
            raise BadRequest("invalid_timestamp", f"{field} must be an ISO 8601 timestamp.") from None
        raise BadRequest("invalid_timestamp", f"{field} is out of range.") from None
    if not datetime(2000, 1, 1) <= moment <= utcnow().replace(year=utcnow().year + 1):
        raise BadRequest("invalid_timestamp", f"{field} is out of range.")
    return moment


def _start_time(body: dict) -> datetime:
    """A call's start: not more than a few minutes ahead of our clock (clocks drift), and not before
    the longest call we charge could have begun: anything else is a broken integration, not a call."""
    started_at = _timestamp(body, "started_at", required=True)
    now = utcnow()
    if started_at > now + timedelta(seconds=current_app.config["CALL_START_MAX_AHEAD_SECONDS"]):
        raise BadRequest("invalid_timestamp", "started_at is in the future.")
    if started_at < now - timedelta(seconds=current_app.config["MAX_CALL_SECONDS"]):
        raise BadRequest("invalid_timestamp", "started_at is further back than the longest call.")
    return started_at


def _phone(body: dict, field: str) -> str | None:
    value = body.get(field)
    if value is not None and (not isinstance(value, str) or len(value) > 64):
        raise BadRequest("invalid_number", f"{field} must be a phone number of at most 64 characters.")
    return value


def _duration(body: dict) -> int:
    value = body.get("duration_seconds")
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest("invalid_duration", "duration_seconds must be a whole number of seconds.")
    if not 0 <= value <= current_app.config["MAX_CALL_SECONDS"]:
        raise BadRequest("invalid_duration", f"duration_seconds must be between 0 and "
                                             f"{current_app.config['MAX_CALL_SECONDS']}.")
    return value


def _first_answer(operation):
    """A start or an end; when a concurrent duplicate of it got there first, roll back and ask
    again, which returns the first one's answer."""
    try:
        return operation()
    except ConcurrentDuplicate:
        db.session.rollback()
        return operation()


@bp.post("/v1/calls/<call_id>/start")
@api_key_required
def start(call_id: str):
    call_id, body = _call_id(call_id), _json_body()
    started_at = _start_time(body)
    from_number, to_number = _phone(body, "from"), _phone(body, "to")
    hold = _first_answer(lambda: start_call(db.session, g.api_company_id, call_id, started_at=started_at,
                                            policy=CallPolicy.from_config(current_app.config),
                                            from_number=from_number, to_number=to_number))
    db.session.commit()
    return jsonify(call_id=hold.call_id, reservation=to_decimal_string(hold.amount),
                   available=to_decimal_string(hold.available_after), max_seconds=hold.max_seconds, ended=hold.ended)


@bp.post("/v1/calls/<call_id>/end")
@api_key_required
def end(call_id: str):
    call_id, body = _call_id(call_id), _json_body()
    duration, ended_at = _duration(body), _timestamp(body, "ended_at", required=False)
    ended = _first_answer(lambda: end_call(db.session, g.api_company_id, call_id, duration_seconds=duration,
                                           ended_at=ended_at))
    db.session.commit()  # the charge stands, whatever the automatic top-up's step below does
    if ended.created and ended.auto_topup_enabled:  # a low balance starts an automatic top-up
        maybe_trigger(db.session, g.api_company_id, policy=AutoTopupPolicy.from_config(current_app.config))
        db.session.commit()
    charge = ended.charge
    return jsonify(call_id=charge.call_id, amount=to_decimal_string(charge.amount),
                   billed_seconds=charge.billed_seconds, rate_per_minute=to_decimal_string(charge.rate_per_minute),
                   balance_after=to_decimal_string(charge.balance_after))

