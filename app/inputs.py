"""Reading requests, for every view: the Flask side of :mod:`core.parsing`.

- path ids: the ``id`` and ``bigid`` URL converters (``<id:company_id>``), bounded to the id columns'
  range, ASCII digits only; anything else does not match the route (404);
- query arguments: :func:`query_id`, :func:`query_day`, :func:`query_choice`;
- form fields: :class:`DayField` (ISO days within the product's years, ASCII digits),
  :class:`WholeNumberField` (ASCII digits);
- every request: no NUL byte or lone surrogate in its path, query or form (:func:`_refuse_unsafe_text`),
  a size limit (MAX_CONTENT_LENGTH, MAX_FORM_MEMORY_SIZE, MAX_FORM_PARTS: 413), and JSON bodies read by
  :func:`core.parsing.parse_json` (depth limit, no NaN).

A value that cannot be read raises :class:`core.parsing.InvalidInput`; :func:`install_input_parsing`
answers it once for the whole app: 400 with a translated page, or JSON with a stable ``code`` under /api/.
"""

from __future__ import annotations

from datetime import date

from flask import Flask, Request, jsonify, render_template, request
from flask.json.provider import DefaultJSONProvider
from flask_babel import lazy_gettext as _l
from werkzeug.routing import BaseConverter, ValidationError
from wtforms import DateField, IntegerField

from core.parsing import (
    MAX_BIG_ID, MAX_ID, InvalidInput, check_text, parse_choice, parse_day, parse_id, parse_integer, parse_json,
)

FORM_MIMETYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
INVALID_INPUT = _l("Some of the values you sent are not valid.")
DAY_OUT_OF_RANGE = _l("Please choose dates between the years 2000 and 2100.")
# The API's answers to what its JSON parser refuses: (stable code, status).
API_INPUT_ERRORS = {"too_deep": ("json_too_deep", 400), "invalid_json": ("invalid_json", 422)}


class IdConverter(BaseConverter):
    """``<id:name>``: a row id of an INTEGER column; other text, other scripts' digits and numbers
    beyond the column's range do not match (404) instead of reaching the database."""

    regex = r"[0-9]{1,19}"
    maximum = MAX_ID

    def to_python(self, value: str) -> int:
        try:
            return parse_id(value, self.maximum)
        except InvalidInput:
            raise ValidationError() from None

    def to_url(self, value) -> str:
        return str(int(value))


class BigIdConverter(IdConverter):
    """``<bigid:name>``: a row id of a BIGINT column (ledger rows, call charges)."""

    maximum = MAX_BIG_ID


class PortalJSONProvider(DefaultJSONProvider):
    """The app's JSON (``app.json``, which ``request.get_json`` reads with): core's parser, depth-limited."""

    def loads(self, s, **kwargs):
        return super().loads(s, **kwargs) if kwargs else parse_json(s)


class ParsingRequest(Request):
    """Mixed into the app's request class (after htmx-flask's): what ``get_json`` cannot read
    raises InvalidInput, answered with its reason."""

    def on_json_loading_failed(self, error: ValueError | None):
        too_deep = isinstance(error, InvalidInput) and error.reason == "too_deep"
        raise InvalidInput("too_deep" if too_deep else "invalid_json")


def query_id(name: str, maximum: int = MAX_ID) -> int | None:
    """The id a query argument carries, or None if it is absent or blank."""
    raw = request.args.get(name, "").strip()
    return parse_id(raw, maximum) if raw else None


def query_day(name: str) -> date | None:
    raw = request.args.get(name, "").strip()
    return parse_day(raw) if raw else None


def query_choice(name: str, choices, default: str = "") -> str:
    """One of ``choices``; ``default`` when the argument is absent."""
    raw = request.args.get(name)
    return default if raw is None else parse_choice(raw.strip(), choices)


class DayField(DateField):
    """A day typed as 2026-11-03 (the browser's date input), read by core.parsing.parse_day:
    no digits of other scripts, no day outside the years 2000 to 2100."""

    def process_formdata(self, valuelist):
        if not valuelist:
            return
        text = " ".join(valuelist).strip()
        self.data = None
        if not text:
            return  # Optional() or DataRequired() decides
        try:
            self.data = parse_day(text)
        except InvalidInput as error:
            raise ValueError(str(DAY_OUT_OF_RANGE) if error.reason == "day_out_of_range"
                             else self.gettext("Not a valid date value.")) from None


class WholeNumberField(IntegerField):
    """A whole number in ASCII digits (WTForms' IntegerField reads ``int("١٢")``), within BIGINT;
    NumberRange narrows it."""

    def process_formdata(self, valuelist):
        if not valuelist:
            return
        try:
            self.data = parse_integer(valuelist[0], -MAX_BIG_ID, MAX_BIG_ID)
        except InvalidInput:
            self.data = None
            raise ValueError(self.gettext("Not a valid integer value.")) from None


def _refuse_unsafe_text() -> None:
    """No NUL byte or lone surrogate in the path, a query argument or a form field, whatever the
    view: PostgreSQL cannot store them, and no person types them."""
    check_text(request.path)
    sources = [request.args]
    if request.mimetype in FORM_MIMETYPES:
        sources.append(request.form)
    for source in sources:
        for key, values in source.lists():
            check_text(key)
            for value in values:
                check_text(value)


def _answer_invalid_input(error: InvalidInput):
    if request.path.startswith("/api/"):
        code, status = API_INPUT_ERRORS.get(error.reason, ("invalid_input", 400))
        return jsonify(error={"code": code, "message": f"The request could not be read ({error.reason})."}), status
    return render_template("error.html", code=400, message=INVALID_INPUT), 400


def install_input_parsing(app: Flask) -> None:
    """Before the blueprints register their routes (the converters must be known by then)."""
    app.url_map.converters["id"] = IdConverter
    app.url_map.converters["bigid"] = BigIdConverter
    app.json = PortalJSONProvider(app)
    app.request_class = type("PortalRequest", (ParsingRequest, app.request_class), {})
    app.before_request(_refuse_unsafe_text)
    app.register_error_handler(InvalidInput, _answer_invalid_input)
