"""core.clock is the one clock: naive UTC, and tests move it with time-machine."""

from datetime import datetime
from zoneinfo import ZoneInfo

import time_machine

from core.clock import utcnow


def test_the_clock_reads_naive_utc_wherever_time_machine_puts_it():
    with time_machine.travel(datetime(2026, 3, 29, 3, 30, tzinfo=ZoneInfo("Europe/Berlin")), tick=False):
        assert utcnow() == datetime(2026, 3, 29, 1, 30)  # summer time began at 02:00 Berlin that night
