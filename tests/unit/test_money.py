from decimal import Decimal

import pytest

from core.money import (
    InvalidAmount, cents, divide_half_up, eur, format_amount_plain, format_money, parse_amount,
    to_decimal_string, units_to_decimal,
)


def test_eur_values_become_exact_integer_units():
    assert eur("0.42") == 4200
    assert eur("1234.56") == 12_345_600
    assert eur(0) == 0


def test_a_value_finer_than_the_ledger_precision_is_refused():
    with pytest.raises(InvalidAmount) as error:
        eur("0.00001")
    assert error.value.reason == "too_precise"


@pytest.mark.parametrize(
    ("text", "locale", "expected"),
    [
        ("50", "de", eur("50")),
        ("1.234,56", "de", eur("1234.56")),
        ("1234,5", "de", eur("1234.50")),
        ("1,234.56", "en", eur("1234.56")),
        ("1234.56", "en", eur("1234.56")),
        (" 250 € ", "de", eur("250")),
        ("-12,30", "de", eur("-12.30")),
    ],
)
def test_amounts_people_type_are_parsed_for_their_locale(text, locale, expected):
    assert parse_amount(text, locale) == expected


@pytest.mark.parametrize(
    ("text", "locale", "reason"),
    [
        ("", "de", "missing"),
        (None, "de", "missing"),
        ("abc", "de", "not_a_number"),
        ("1.2.3", "en", "not_a_number"),
        ("12,345", "de", "too_precise"),
        ("1,23,4", "en", "not_a_number"),
        ("1e5", "en", "not_a_number"),
        ("NaN", "en", "not_a_number"),
        ("99999999999", "en", "too_large"),
    ],
)
def test_bad_amount_text_is_rejected_with_a_stable_reason(text, locale, reason):
    with pytest.raises(InvalidAmount) as error:
        parse_amount(text, locale)
    assert error.value.reason == reason


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [(5, 10, 1), (4, 10, 0), (15, 10, 2), (-5, 10, -1), (-4, 10, 0), (0, 7, 0), (1199, 60, 20), (1170, 60, 20)],
)
def test_division_rounds_half_away_from_zero(numerator, denominator, expected):
    assert divide_half_up(numerator, denominator) == expected


def test_formatting_follows_the_locale():
    assert format_money(eur("1234.56"), "de") == "1.234,56\xa0€"
    assert format_money(eur("1234.56"), "en") == "€1,234.56"
    assert format_money(eur("-5"), "de") == "-5,00\xa0€"


@pytest.mark.parametrize("locale", ["de", "en"])
def test_whole_numbers_are_formatted_as_babel_does(locale):
    from babel.numbers import format_decimal

    from core.money import format_whole_number

    for value in (0, 7, -7, 999, 1000, -1234, 12_345, 1_234_567, -98_765_432_101):
        assert format_whole_number(value, locale) == format_decimal(value, locale=locale)


def test_formatting_keeps_sub_cent_digits_of_per_second_charges():
    assert format_money(70, "de") == "0,007\xa0€"
    assert format_money(eur("12.3456"), "en") == "€12.3456"


def test_machine_formats_are_exact_decimal_strings():
    assert to_decimal_string(eur("123.45")) == "123.4500"
    assert units_to_decimal(-70) == Decimal("-0.0070")
    assert format_amount_plain(eur("1234.5"), "de") == "1234,5000"
    assert format_amount_plain(eur("1234.5"), "en") == "1234.5000"


def test_cents_refuses_amounts_that_are_not_whole_cents():
    assert cents(eur("10.99")) == 1099
    with pytest.raises(InvalidAmount):
        cents(70)
