"""Time in one place: naive UTC datetimes everywhere in the database, local time only on display."""

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
