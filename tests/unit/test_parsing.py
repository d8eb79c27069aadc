"""core.parsing: the one reader of ids, days, whole numbers, choices, text and JSON from outside."""

from __future__ import annotations

import base64
from datetime import date, datetime

import pytest

from core.ledger.history import Cursor, InvalidCursor
from core.money import InvalidAmount, parse_amount, parse_decimal
from core.parsing import (
    MAX_BIG_ID, MAX_ID, InvalidInput, check_text, id_or_none, parse_choice, parse_day, parse_id, parse_integer,
    parse_json, parse_timestamp,
)


@pytest.mark.parametrize("text", ["", " ", "0", "-1", "+0", "²", "١٢٣", "𝟗", "1.0", "1e3", "0x10", str(MAX_ID + 1),
                                  "9" * 400, "1\x00", None])
def test_an_id_is_ascii_digits_within_the_column_range(text):
    with pytest.raises(InvalidInput) as refused:
        parse_id(text)
    assert refused.value.reason == "not_an_id"


def test_ids_read_at_the_edges_of_their_columns():
    assert parse_id("1") == 1 and parse_id(str(MAX_ID)) == MAX_ID
    assert parse_id(str(MAX_BIG_ID), MAX_BIG_ID) == MAX_BIG_ID
    with pytest.raises(InvalidInput):
        parse_id(str(MAX_BIG_ID + 1), MAX_BIG_ID)


def test_ids_from_someone_elses_records_are_none_when_unreadable():
    assert id_or_none("42") == 42
    assert [id_or_none(value) for value in ("²", "١٢", str(2**31), 42, None, "")] == [None] * 6


def test_whole_numbers_take_a_sign_and_stay_in_their_range():
    assert parse_integer("-12", -100, 100) == -12 and parse_integer(" 7 ", 0, 10) == 7
    for text in ("١٢", "²", "101", "1_000", "--1"):
        with pytest.raises(InvalidInput):
            parse_integer(text, -100, 100)


@pytest.mark.parametrize(("text", "reason"), [
    ("9999-12-31", "day_out_of_range"), ("1999-12-31", "day_out_of_range"), ("0000-01-01", "not_a_day"),
    ("0001-01-01", "day_out_of_range"), ("2026-02-30", "not_a_day"), ("٢٠٢٦-٠١-٠١", "not_a_day"),
    ("20260101", "not_a_day"), ("2026-1-1", "not_a_day"), ("", "not_a_day"),
])
def test_a_day_is_iso_within_the_years_2000_to_2100(text, reason):
    with pytest.raises(InvalidInput) as refused:
        parse_day(text)
    assert refused.value.reason == reason


def test_days_at_the_edges_are_read():
    assert parse_day("2000-01-01") == date(2000, 1, 1) and parse_day(" 2100-12-31 ") == date(2100, 12, 31)


def test_timestamps_that_overflow_when_moved_to_utc_are_refused():
    assert parse_timestamp("2026-11-21T10:00:00+01:00") == datetime(2026, 11, 21, 9, 0)
    for text in ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00", "٢٠٢٦-١١-٢١T10:00:00Z", 5, None):
        with pytest.raises(InvalidInput):
            parse_timestamp(text)


def test_a_choice_is_one_of_its_values_and_blank_only_when_listed():
    assert parse_choice("", ["", "a"]) == ""
    with pytest.raises(InvalidInput):
        parse_choice("", ["a", "b"])


@pytest.mark.parametrize("text", ["a\x00b", "\ud800"])
def test_text_refuses_nul_and_lone_surrogates(text):
    with pytest.raises(InvalidInput):
        check_text(text)


@pytest.mark.parametrize(("body", "reason"), [
    ("[" * 100_000, "too_deep"), ('{"a":' * 100_000, "too_deep"), ("NaN", "invalid_json"),
    ('{"x": -Infinity}', "invalid_json"), ("1e309", "invalid_json"), ("9" * 5000, "invalid_json"),
    ('{"x": "a\\u0000"}', "unsafe_text"), ('{"\\ud800": 1}', "unsafe_text"), (b"\xff", "invalid_json"),
])
def test_json_from_outside_is_depth_limited_and_finite(body, reason):
    with pytest.raises(InvalidInput) as refused:
        parse_json(body)
    assert refused.value.reason == reason


def test_json_brackets_inside_strings_do_not_count_as_depth():
    assert parse_json('{"a": "' + "[" * 1000 + '"}') == {"a": "[" * 1000}
    assert parse_json('{"a": "\\"[[["}') == {"a": '"[[['}


@pytest.mark.parametrize("text", ["١٢٣", "١٢٣,٤٥", "²", "NaN", "Infinity", "1e309", "9" * 400])
def test_amounts_are_ascii_numbers_of_sensible_size(text):
    with pytest.raises(InvalidAmount):
        parse_amount(text, "de")


def test_decimals_read_in_the_locale_of_the_person():
    assert str(parse_decimal("7,5", "de")) == "7.5" and str(parse_decimal("7.5", "en")) == "7.5"


@pytest.mark.parametrize("raw", [f"2026-01-01T00:00:00|{MAX_BIG_ID + 1}", "2026-01-01T00:00:00|١٢",
                                 "2026-01-01T00:00:00|0", "9999-99-99|1"])
def test_forged_cursors_are_invalid(raw):
    token = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    with pytest.raises(InvalidCursor):
        Cursor.decode(token)
