"""Realistic call traffic for the demo: what a telephony platform sends to the usage API."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

Post = Callable[[str, dict], tuple[int, dict]]  # (path, JSON body) -> (status, JSON answer)


@dataclass
class SimulationResult:
    started: int = 0
    refused: int = 0
    ended: int = 0
    charged_units: int = 0
    last_balance: str | None = None
    errors: dict[str, int] = field(default_factory=dict)


def call_duration(rng: random.Random) -> int:
    """Mostly short business calls, some long ones, a few unanswered (0 s)."""
    if rng.random() < 0.05:
        return 0
    return max(1, min(int(rng.lognormvariate(4.5, 0.9)), 2 * 3600))


def phone_number(rng: random.Random) -> str:
    return f"+49{rng.choice(['30', '40', '89', '69', '221'])}{rng.randrange(1000000, 9999999)}"


def simulate_calls(post: Post, count: int, now: datetime, rng: random.Random | None = None) -> SimulationResult:
    """Start and end ``count`` calls, one after another, ending at ``now``. Refused starts are counted."""
    rng = rng or random.Random()
    result = SimulationResult()
    durations = [call_duration(rng) for _ in range(count)]
    moment = now - timedelta(seconds=sum(durations) + 5 * count)
    for duration in durations:
        call_id = f"sim-{uuid.uuid4().hex[:16]}"
        status, answer = post(f"/api/v1/calls/{call_id}/start", {
            "started_at": _iso(moment), "from": "+4930123456", "to": phone_number(rng)})
        if status != 200:
            result.refused += 1
            code = answer.get("error", {}).get("code", str(status))
            result.errors[code] = result.errors.get(code, 0) + 1
            moment += timedelta(seconds=5)
            continue
        result.started += 1
        moment += timedelta(seconds=duration)
        status, answer = post(f"/api/v1/calls/{call_id}/end", {"duration_seconds": duration, "ended_at": _iso(moment)})
        if status == 200:
            result.ended += 1
            result.last_balance = answer["balance_after"]
        moment += timedelta(seconds=5)
    return result


def _iso(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat() + "Z"
