from datetime import date, datetime, timedelta

import pytest
import pytz
from sqlalchemy import select, update

from core.accounts.users import create_company
from core.calls.rating import charge_call
from core.schema import CallCharge, Company
from core.ledger.history import Cursor
from core.calls.usage import (
    RUNWAY_COLUMNS, InvalidRange, Period, UsageTotals, calls_page, iter_calls, resolve_range, runway_of,
    runway_parameters, usage_by_day, usage_report, utc_offsets, zone_name,
)

BERLIN = "Europe/Berlin"
TODAY = date(2026, 11, 21)
JANUARY = datetime(2026, 1, 1)


@pytest.mark.parametrize("period, first, last, start, end", [
    (Period.THIS_MONTH, date(2026, 11, 1), TODAY, datetime(2026, 10, 31, 23), datetime(2026, 11, 21, 23)),
    (Period.LAST_MONTH, date(2026, 10, 1), date(2026, 10, 31), datetime(2026, 9, 30, 22), datetime(2026, 10, 31, 23)),
    (Period.LAST_7_DAYS, date(2026, 11, 15), TODAY, datetime(2026, 11, 14, 23), datetime(2026, 11, 21, 23)),
    (Period.LAST_30_DAYS, date(2026, 10, 23), TODAY, datetime(2026, 10, 22, 22), datetime(2026, 11, 21, 23)),
    (Period.LAST_90_DAYS, date(2026, 8, 24), TODAY, datetime(2026, 8, 23, 22), datetime(2026, 11, 21, 23)),
])
def test_each_preset_is_a_range_of_local_days_ending_today_as_utc_bounds(period, first, last, start, end):
    usage_range = resolve_range(period, today=TODAY, zone=BERLIN)
    assert (usage_range.first_day, usage_range.last_day) == (first, last)
    assert (usage_range.start, usage_range.end) == (start, end)  # Berlin midnights, summer and winter time
    assert usage_range.day_count == len(usage_range.days) == (last - first).days + 1


def test_last_month_in_january_is_the_previous_december():
    usage_range = resolve_range("last_month", today=date(2027, 1, 5), zone=BERLIN)
    assert (usage_range.first_day, usage_range.last_day) == (date(2026, 12, 1), date(2026, 12, 31))


def test_this_month_on_the_first_is_a_single_day():
    usage_range = resolve_range(Period.THIS_MONTH, today=date(2026, 11, 1), zone=BERLIN)
    assert usage_range.days == [date(2026, 11, 1)]


def test_a_custom_range_includes_both_days_and_may_be_a_year_long():
    usage_range = resolve_range("custom", today=TODAY, zone=BERLIN, start=date(2025, 11, 22), end=TODAY)
    assert usage_range.day_count == 365
    leap = resolve_range("custom", today=TODAY, zone=BERLIN, start=date(2028, 1, 1), end=date(2028, 12, 31))
    assert leap.day_count == 366


@pytest.mark.parametrize("start, end, reason", [
    (None, date(2026, 11, 1), "missing_dates"),
    (date(2026, 11, 1), None, "missing_dates"),
    (date(2026, 11, 2), date(2026, 11, 1), "end_before_start"),
    (date(2025, 1, 1), date(2026, 1, 2), "too_long"),
    (date(1999, 12, 31), date(2000, 1, 5), "out_of_bounds"),
    (date(2026, 1, 1), date(2101, 1, 1), "out_of_bounds"),
])
def test_a_custom_range_that_cannot_be_used_is_refused_with_a_reason(start, end, reason):
    with pytest.raises(InvalidRange) as refused:
        resolve_range(Period.CUSTOM, today=TODAY, zone=BERLIN, start=start, end=end)
    assert refused.value.reason == reason


def test_an_unknown_period_is_refused():
    with pytest.raises(ValueError):
        resolve_range("yesterday", today=TODAY, zone=BERLIN)


def test_the_zone_may_be_a_name_a_zoneinfo_or_the_pytz_zone_flask_babel_returns():
    from zoneinfo import ZoneInfo

    assert zone_name(BERLIN) == zone_name(ZoneInfo(BERLIN)) == zone_name(pytz.timezone(BERLIN)) == BERLIN
    with pytest.raises(ValueError):
        zone_name("Mars/Olympus_Mons")


def test_the_utc_offsets_of_a_year_change_at_the_daylight_saving_transitions():
    usage_range = resolve_range(Period.CUSTOM, today=TODAY, zone=BERLIN, start=date(2026, 1, 1), end=date(2026, 12, 31))
    assert utc_offsets(usage_range) == [
        (datetime(2026, 3, 29, 1), timedelta(hours=1)),
        (datetime(2026, 10, 25, 1), timedelta(hours=2)),
        (None, timedelta(hours=1)),
    ]
    half_hour = resolve_range(Period.CUSTOM, today=TODAY, zone="Australia/Lord_Howe",
                              start=date(2026, 1, 1), end=date(2026, 12, 31))
    assert [offset for _until, offset in utc_offsets(half_hour)] == [
        timedelta(hours=11), timedelta(hours=10, minutes=30), timedelta(hours=11)]


@pytest.fixture
def calls(session):
    """Calls of one company around month ends and the October time change (0.42 €/min, per second)."""
    company = create_company(session, "Usage Unit GmbH", created_at=JANUARY)
    other = create_company(session, "Other Usage AG", created_at=JANUARY)
    session.flush()
    seeded = [
        ("oct-31-late", datetime(2026, 10, 31, 22, 30), 60),  # 23:30 in Berlin: still October 31
        ("nov-01-early", datetime(2026, 10, 31, 23, 30), 125),  # 00:30 in Berlin: November 1
        ("nov-01-noon", datetime(2026, 11, 1, 11, 0), 300),
        ("nov-03", datetime(2026, 11, 3, 8, 0), 1),
        ("oct-25-early", datetime(2026, 10, 24, 22, 30), 10),  # 00:30 CEST on the day of the change
        ("oct-25-late", datetime(2026, 10, 25, 22, 30), 20),  # 23:30 CET, same local day
    ]
    for call_id, started_at, seconds in seeded:
        charge_call(session, company.id, call_id, started_at=started_at, duration_seconds=seconds,
                    posted_at=started_at + timedelta(seconds=seconds))
    charge_call(session, other.id, "other-nov-01", started_at=datetime(2026, 11, 1, 12, 0), duration_seconds=999,
                posted_at=datetime(2026, 11, 1, 12, 30))
    session.execute(update(CallCharge).where(CallCharge.call_id == "nov-01-noon")
                    .values(refund_status="partial", refunded_amount=7000))
    session.commit()
    return company.id


def custom(first: date, last: date):
    return resolve_range(Period.CUSTOM, today=TODAY, zone=BERLIN, start=first, end=last)


def test_the_daily_series_counts_each_call_on_its_local_day_and_fills_the_other_days_with_zeros(session, calls):
    days = usage_by_day(session, calls, custom(date(2026, 10, 31), date(2026, 11, 3)))
    assert [one.day for one in days] == [date(2026, 10, 31), date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)]
    assert [one.totals.calls for one in days] == [1, 2, 0, 1]
    assert days[1].totals == UsageTotals(calls=2, billed_seconds=425, duration_seconds=425,
                                         cost=125 * 70 + 300 * 70 - 7000)
    assert days[2].totals == UsageTotals()
    assert days[3].totals.cost == 70  # one second at 0.42 €/min = 0.007 €


def test_the_day_of_the_october_time_change_holds_its_calls_from_both_offsets(session, calls):
    days = usage_by_day(session, calls, custom(date(2026, 10, 24), date(2026, 10, 26)))
    assert [one.totals.calls for one in days] == [0, 2, 0]
    assert days[1].totals.billed_seconds == 30


def test_the_totals_are_calls_billed_seconds_cost_after_refunds_and_the_rounded_average_length(session, calls):
    report = usage_report(session, calls, resolve_range(Period.THIS_MONTH, today=TODAY, zone=BERLIN))
    assert report.totals.calls == 3  # nov-01-early, nov-01-noon, nov-03
    assert report.totals.billed_seconds == 426
    assert report.totals.cost == (125 + 300 + 1) * 70 - 7000
    assert report.totals.average_duration_seconds == 142  # 426 / 3
    assert len(report.days) == 21 and sum(one.totals.calls for one in report.days) == 3


def test_a_range_without_calls_has_zero_totals_and_no_average(session, calls):
    report = usage_report(session, calls, custom(date(2026, 6, 1), date(2026, 6, 30)))
    assert report.totals == UsageTotals() and report.totals.average_duration_seconds is None
    assert len(report.days) == 30


def test_another_companys_calls_are_never_counted(session, calls):
    report = usage_report(session, calls, custom(date(2026, 11, 1), date(2026, 11, 1)))
    assert report.totals.calls == 2 and report.totals.billed_seconds == 425


@pytest.fixture
def many_calls(session):
    """23 calls, two of them at the very same second (the id breaks the tie), and one of another company."""
    company = create_company(session, "Paging Usage GmbH", created_at=JANUARY)
    other = create_company(session, "Paging Other AG", created_at=JANUARY)
    session.flush()
    start = datetime(2026, 11, 2, 8, 0)
    for index in range(22):
        charge_call(session, company.id, f"call-{index:02d}", started_at=start + timedelta(minutes=index),
                    duration_seconds=30 + index)
    charge_call(session, company.id, "call-tie", started_at=start + timedelta(minutes=10), duration_seconds=5)
    charge_call(session, other.id, "foreign", started_at=start + timedelta(minutes=3), duration_seconds=5)
    session.commit()
    return company.id


def test_keyset_pages_walk_all_calls_newest_first_without_gaps_or_repeats(session, many_calls):
    usage_range = custom(date(2026, 11, 1), date(2026, 11, 30))
    seen, cursor, pages = [], None, 0
    while True:
        page = calls_page(session, many_calls, usage_range, after=cursor, limit=5)
        pages += 1
        seen.extend(page.calls)
        if page.older is None:
            break
        cursor = page.older
    assert pages == 5 and len(seen) == 23 and len({call.id for call in seen}) == 23
    positions = [(call.started_at, call.id) for call in seen]
    assert positions == sorted(positions, reverse=True)
    assert "foreign" not in {call.call_id for call in seen}


def test_the_newer_cursor_leads_back_to_the_previous_page(session, many_calls):
    usage_range = custom(date(2026, 11, 1), date(2026, 11, 30))
    first = calls_page(session, many_calls, usage_range, limit=5)
    assert first.newer is None
    second = calls_page(session, many_calls, usage_range, after=first.older, limit=5)
    back = calls_page(session, many_calls, usage_range, before=second.newer, limit=5)
    assert [call.id for call in back.calls] == [call.id for call in first.calls]
    assert back.newer is None and back.older == first.older


def test_a_cursor_never_leaves_the_company_or_the_range(session, many_calls):
    usage_range = custom(date(2026, 11, 2), date(2026, 11, 2))
    far_future = Cursor(datetime(2030, 1, 1), 10**9)
    page = calls_page(session, many_calls, usage_range, after=far_future, limit=50)
    assert len(page.calls) == 23 and {call.company_id for call in page.calls} == {many_calls}
    assert calls_page(session, many_calls, custom(date(2026, 11, 3), date(2026, 11, 4))).calls == []


def test_iter_calls_yields_every_call_of_the_range_in_batches(session, many_calls):
    usage_range = custom(date(2026, 11, 2), date(2026, 11, 2))
    call_ids = [call.call_id for call in iter_calls(session, many_calls, usage_range, batch_size=4)]
    assert len(call_ids) == 23 and call_ids[0] == "call-21" and call_ids[-1] == "call-00"


NOW = datetime(2026, 11, 21, 12, 0)


def runway(session, company_id, *, available, now):
    """The runway as the dashboard's summary computes it, for a chosen available balance."""
    row = session.execute(select(*RUNWAY_COLUMNS).where(Company.id == company_id), runway_parameters(now)).one()
    return runway_of(row, available=available, now=now)


def test_runway_is_the_available_balance_over_the_average_daily_spend_of_the_last_14_days(session):
    company = create_company(session, "Runway GmbH", created_at=JANUARY)
    session.flush()
    charge_call(session, company.id, "in-window", started_at=NOW - timedelta(days=3), duration_seconds=2000)
    charge_call(session, company.id, "refunded", started_at=NOW - timedelta(days=2), duration_seconds=600)
    charge_call(session, company.id, "too-old", started_at=NOW - timedelta(days=15), duration_seconds=9000)
    session.execute(update(CallCharge).where(CallCharge.call_id == "refunded")
                    .values(refund_status="full", refunded_amount=600 * 70))
    session.commit()
    estimate = runway(session, company.id, available=860_000, now=NOW)
    assert estimate.average_daily_spend == 10_000  # 2000 s × 70 units / 14 days = 1 € a day
    assert estimate.days == 86 and estimate.window_days == 14
    assert runway(session, company.id, available=-5, now=NOW).days == 0


def test_a_company_younger_than_the_window_is_averaged_over_its_own_age(session):
    company = create_company(session, "Young GmbH", created_at=NOW - timedelta(days=2))
    session.flush()
    charge_call(session, company.id, "young-call", started_at=NOW - timedelta(days=1), duration_seconds=2000)
    session.commit()
    assert runway(session, company.id, available=1_000_000, now=NOW).average_daily_spend == 70_000


def test_there_is_no_runway_without_spend(session):
    company = create_company(session, "Quiet GmbH", created_at=JANUARY)
    session.flush()
    charge_call(session, company.id, "free", started_at=NOW - timedelta(days=1), duration_seconds=0)
    session.commit()
    assert runway(session, company.id, available=1_000_000, now=NOW) is None


def test_the_average_daily_spend_is_rounded_half_up_to_whole_cents(session):
    company = create_company(session, "Cents GmbH", created_at=JANUARY)
    session.flush()
    charge_call(session, company.id, "odd", started_at=NOW - timedelta(days=1), duration_seconds=1001)
    session.commit()
    estimate = runway(session, company.id, available=1_000_000, now=NOW)
    assert estimate.average_daily_spend == 5_000  # 70,070 units / 14 days = 0.5005 € → 0.50 €
    assert estimate.days == 200
