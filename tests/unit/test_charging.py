import pytest

from core.calls.rating import billed_seconds, rate_call
from core.money import eur


@pytest.mark.parametrize(
    ("duration", "increment", "expected"),
    [(0, 1, 0), (1, 1, 1), (59, 1, 59), (61, 6, 66), (60, 60, 60), (61, 60, 120), (3601, 60, 3660)],
)
def test_duration_is_rounded_up_to_the_billing_increment(duration, increment, expected):
    assert billed_seconds(duration, increment) == expected


def test_per_second_charge_at_the_default_rate_is_exact():
    rating = rate_call(61, eur("0.42"), 1)
    assert rating.billed_seconds == 61
    assert rating.amount == eur("0.427")


def test_a_charge_that_does_not_divide_evenly_rounds_half_up_once():
    # 1 s at 0.0999 EUR/min = 0.001665 EUR → 16.65 units → 17 units
    assert rate_call(1, eur("0.0999"), 1).amount == 17
    # 7 s at 0.0999 EUR/min = 0.011655 EUR → 116.55 units → 117 units
    assert rate_call(7, eur("0.0999"), 1).amount == 117


def test_negative_durations_are_refused():
    with pytest.raises(ValueError):
        billed_seconds(-1, 1)


# Expected amounts in units (0.0001 EUR), worked out by hand: ceil(d / inc) × inc × rate ÷ 60, half-up.
RATING_TABLE = {
    ("0.42", 1): [0, 70, 4130, 4200, 4270, 252070],
    ("0.42", 6): [0, 420, 4200, 4200, 4620, 252420],
    ("0.42", 60): [0, 4200, 4200, 4200, 8400, 256200],
    ("0.35", 1): [0, 58, 3442, 3500, 3558, 210058],
    ("0.35", 6): [0, 350, 3500, 3500, 3850, 210350],
    ("0.35", 60): [0, 3500, 3500, 3500, 7000, 213500],
    ("0.0999", 1): [0, 17, 982, 999, 1016, 59957],
    ("0.0999", 6): [0, 100, 999, 999, 1099, 60040],
    ("0.0999", 60): [0, 999, 999, 999, 1998, 60939],
}
DURATIONS = [0, 1, 59, 60, 61, 3601]


@pytest.mark.parametrize(("rate", "increment"), list(RATING_TABLE))
def test_the_rating_table(rate, increment):
    amounts = [rate_call(duration, eur(rate), increment).amount for duration in DURATIONS]
    assert amounts == RATING_TABLE[(rate, increment)]
