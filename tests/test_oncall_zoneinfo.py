"""ops.on_call_shifts against an independent oracle: Python's zoneinfo. For a year (2026, both DST changes
of every zone that has them) in Europe/Berlin, America/New_York, Asia/Kolkata (+05:30, no DST) and
Australia/Adelaide (+09:30/+10:30, southern DST), each rotation's handoffs are computed here as local
wall-clock times (the first handoff plus k shifts) turned into instants by zoneinfo, and restriction
windows as local days' opening and closing times; SQL must return exactly those rows.

A local time that does not exist (the skipped hour) or exists twice (the repeated hour) has two zoneinfo
readings (fold 0 and 1); opsguard takes the later one, as PostgreSQL reads such a timestamp: a skipped
02:30 becomes 03:30 summer time, a repeated 02:30 its second occurrence. The 02:30 rotations pin that."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

ZONES = ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Adelaide"]
YEAR_FROM = datetime(2026, 1, 1, tzinfo=UTC)
YEAR_TO = datetime(2027, 1, 1, tzinfo=UTC)
PEOPLE = ["p1", "p2", "p3"]


def instant(wall: datetime, zone: str) -> datetime:
    """A naive local wall-clock time as an instant: the later of zoneinfo's two readings."""
    z = ZoneInfo(zone)
    # to UTC before comparing: aware datetimes of one tzinfo compare by wall time, ignoring fold
    return max(wall.replace(tzinfo=z, fold=f).astimezone(UTC) for f in (0, 1))


def rotation_rows(zone: str, first: datetime, shift: timedelta, name: str) -> list[tuple]:
    rows, k = [], 0
    while True:
        start, end = instant(first + k * shift, zone), instant(first + (k + 1) * shift, zone)
        if start >= YEAR_TO:
            return rows
        if end > YEAR_FROM and end > start:
            rows.append((PEOPLE[k % len(PEOPLE)], max(start, YEAR_FROM), min(end, YEAR_TO), f"rotation:{name}"))
        k += 1


def window_rows(zone: str, days: set[int], t_from: time, t_to: time, name: str) -> list[tuple]:
    rows, day = [], date(2025, 12, 30)
    while day <= date(2027, 1, 2):
        if day.isoweekday() in days:
            end_day = day + timedelta(days=1) if t_to < t_from else day
            start = instant(datetime.combine(day, t_from), zone)
            end = instant(datetime.combine(end_day, t_to), zone)
            if end > YEAR_FROM and start < YEAR_TO:
                rows.append(("p1", max(start, YEAR_FROM), min(end, YEAR_TO), f"rotation:{name}"))
        day += timedelta(days=1)
    return rows


@pytest.fixture
def schedules(conn: psycopg.Connection) -> psycopg.Connection:
    for p in PEOPLE:
        conn.execute("SELECT ops.add_principal(%s, 'human', ARRAY['ops_responder'], 'admin')", (p,))
    return conn


def shifts(conn: psycopg.Connection, schedule: str) -> list[tuple]:
    return [tuple(r) for r in conn.execute(
        "SELECT principal, starts_at, ends_at, source FROM ops.on_call_shifts(%s, %s, %s) ORDER BY starts_at",
        (schedule, YEAR_FROM, YEAR_TO)).fetchall()]


ROTATIONS = [
    ("daily", timedelta(days=1), datetime(2026, 1, 5, 9, 0)),
    ("weekly", timedelta(weeks=1), datetime(2026, 1, 5, 9, 0)),
    ("half-day", timedelta(hours=12), datetime(2026, 1, 5, 9, 0)),
    ("night", timedelta(days=1), datetime(2026, 1, 5, 2, 30)),  # in the skipped and the repeated hour
    ("five-hours", timedelta(hours=5), datetime(2026, 1, 5, 0, 30)),  # every :30 of the day, DST hours too
]
WINDOWS = [
    ("business-hours", {1, 2, 3, 4, 5}, time(9), time(17)),
    ("weekend-nights", {5, 6}, time(22), time(6)),  # past midnight: Friday and Saturday nights
    ("dst-hour", {7}, time(2, 15), time(2, 45)),  # Sunday 02:15-02:45: skipped or repeated on change days
]


@pytest.mark.parametrize("zone", ZONES)
def test_rotation_handoffs_match_zoneinfo(schedules, zone):
    for name, shift, local_first in ROTATIONS:
        sched = f"{name}-{zone.replace('/', '.')}"
        schedules.execute("SELECT ops.create_schedule(%s, %s, 'admin')", (sched, zone))
        schedules.execute("SELECT ops.add_rotation(%s, %s, %s, %s, %s, 'admin')",
                          (sched, name, shift, instant(local_first, zone), PEOPLE))
        expected = rotation_rows(zone, local_first, shift, name)
        got = shifts(schedules, sched)
        assert len(got) == len(expected) > 50, sched
        assert got == expected, sched


@pytest.mark.parametrize("zone", ZONES)
def test_restricted_windows_match_zoneinfo(schedules, zone):
    for name, days, t_from, t_to in WINDOWS:
        sched = f"{name}-{zone.replace('/', '.')}"
        schedules.execute("SELECT ops.create_schedule(%s, %s, 'admin')", (sched, zone))
        # one participant on a long shift: the rows are exactly the windows
        schedules.execute(
            "SELECT ops.add_rotation(%s, %s, '1 week', '2025-12-01', ARRAY['p1'], 'admin', %s, %s, %s)",
            (sched, name, sorted(days), t_from, t_to))
        expected = [r for r in window_rows(zone, days, t_from, t_to, name) if r[2] > r[1]]
        assert len(expected) > 50
        assert shifts(schedules, sched) == expected, sched
