"""The one place that reads values from outside (a form, a query string, a path, a JSON body) into
the domain's types: ids, days, choices, text and JSON. Every reader refuses what the databases or
the rest of the code cannot take — ids beyond the id columns' range, digits of other scripts
(``int("١٢٣")`` is 123 and ``"²".isdigit()`` is true in Python), NUL bytes (PostgreSQL refuses them in
text), days outside the years the product can mean, NaN and infinities, nesting deep enough to
exhaust the parser's stack — with :class:`InvalidInput`, whose ``reason`` is a stable code.

Plain values in, plain values out: the Flask side (app/inputs.py) wraps these for URL converters,
form fields, query arguments and the request's JSON."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from datetime import date, datetime, timezone

MAX_ID = 2**31 - 1  # INTEGER primary keys (PostgreSQL int4), the narrowest id column
MAX_BIG_ID = 2**63 - 1  # BIGINT ids (ledger rows, call charges) and SQLite's INTEGER
EARLIEST_DAY = date(2000, 1, 1)  # the days a filter, a range or a rule may name: a day outside
LATEST_DAY = date(2100, 12, 31)  # them is a typo, and the far ones overflow when moved to UTC
MAX_JSON_DEPTH = 32  # the usage API's bodies are flat; Stripe's events nest about 6 deep

_INTEGER = re.compile(r"[-+]?[0-9]{1,19}", re.ASCII)
_ISO_DAY = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})", re.ASCII)
_UNSAFE_TEXT = re.compile(r"[\x00\ud800-\udfff]")  # NUL, and halves of surrogate pairs (not encodable as UTF-8)


class InvalidInput(ValueError):
    """A value from outside that cannot be used. ``reason``: not_a_whole_number, not_an_id, not_a_day,
    day_out_of_range, not_a_choice, unsafe_text, too_long, invalid_json, too_deep."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def parse_integer(text: str | None, minimum: int, maximum: int, reason: str = "not_a_whole_number") -> int:
    """A whole number written in ASCII digits (an optional sign), minimum..maximum."""
    if text is None or not _INTEGER.fullmatch(text.strip()):
        raise InvalidInput(reason)
    value = int(text)
    if not minimum <= value <= maximum:
        raise InvalidInput(reason)
    return value


def parse_id(text: str | None, maximum: int = MAX_ID) -> int:
    """A row id: ASCII digits, 1..``maximum``."""
    return parse_integer(text, 1, maximum, "not_an_id")


def id_or_none(value: object, maximum: int = MAX_ID) -> int | None:
    """An id carried as text by someone else's record (Stripe metadata), or None if it is none."""
    if not isinstance(value, str):
        return None
    try:
        return parse_id(value, maximum)
    except InvalidInput:
        return None


def parse_day(text: str | None) -> date:
    """An ISO day (2026-11-03, ASCII digits) between EARLIEST_DAY and LATEST_DAY."""
    match = _ISO_DAY.fullmatch((text or "").strip())
    if not match:
        raise InvalidInput("not_a_day")
    try:
        day = date(*(int(part) for part in match.groups()))
    except ValueError:  # 2026-02-30, 0000-01-01
        raise InvalidInput("not_a_day") from None
    return check_day(day)


def check_day(day: date) -> date:
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise InvalidInput("day_out_of_range")
    return day


def parse_timestamp(text: object) -> datetime:
    """An ISO 8601 moment ("2026-11-21T10:00:00Z", an offset, or UTC if none) as naive UTC, on a day
    between EARLIEST_DAY and LATEST_DAY (year 9999 with a negative offset overflows when moved to UTC)."""
    if not isinstance(text, str) or not text.isascii():
        raise InvalidInput("not_a_timestamp")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is not None:
            moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    except (ValueError, OverflowError):
        raise InvalidInput("not_a_timestamp") from None
    check_day(moment.date())
    return moment


def parse_choice(text: str | None, choices: Iterable[str]) -> str:
    """One of ``choices`` exactly (a blank value only if blank is one of them)."""
    if text is None or text not in set(choices):
        raise InvalidInput("not_a_choice")
    return text


def check_text(text: str, max_length: int | None = None) -> str:
    """Text the databases can store: no NUL byte, no lone surrogate, at most ``max_length`` characters."""
    if _UNSAFE_TEXT.search(text):
        raise InvalidInput("unsafe_text")
    if max_length is not None and len(text) > max_length:
        raise InvalidInput("too_long")
    return text


def json_depth_exceeds(text: str, max_depth: int) -> bool:
    """Whether arrays and objects in ``text`` nest deeper than ``max_depth`` (a linear scan, so a
    body of 100,000 brackets is refused before the recursive parser sees it)."""
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _refuse_constant(name: str):
    raise InvalidInput("invalid_json", f"{name} is not a number")


def _finite_float(text: str) -> float:  # not money: amounts arrive as strings or integer cents
    value = float(text)
    if not math.isfinite(value):  # 1e309
        raise InvalidInput("invalid_json", f"{text} is out of range")
    return value


def _check_strings(value) -> None:
    """Every key and string of a parsed body (as deep as the depth limit let it be)."""
    if isinstance(value, str):
        check_text(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key)
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


def parse_json(text: str | bytes, max_depth: int = MAX_JSON_DEPTH, check_strings: bool = True):
    """JSON from outside: at most ``max_depth`` levels, no NaN or Infinity, no number beyond a
    float's range or Python's digit limit, and (``check_strings``) no NUL byte or lone surrogate in
    any string."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("invalid_json", "not UTF-8") from None
    if json_depth_exceeds(text, max_depth):
        raise InvalidInput("too_deep")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except InvalidInput:
        raise
    except ValueError as error:  # malformed, or an integer of more than 4300 digits
        raise InvalidInput("invalid_json", str(error)[:200]) from None
    if check_strings:
        _check_strings(value)
    return value
