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


# The largest clock changes in the zone database, each with an hourly layer under a 22:00-06:00 night layer of
# daily turns, against the rules of docs/oncall.md computed here: handoff 0 is the first handoff as given (here in
# the first reading of a repeated hour where there is one), handoff k the local wall-clock time of the first plus
# k shifts at its later reading; a night window belongs to the local day it opens on and ends at 06:00 the next
# local day, at its later reading, even when a whole local day was skipped in between.
BIG_CHANGES = [
    ("Pacific/Apia", datetime(2011, 12, 30, 10, tzinfo=UTC)),  # 30 December 2011 skipped: -10 to +14
    ("Antarctica/Vostok", datetime(1994, 1, 31, 17, tzinfo=UTC)),  # +07 to +00: seven hours twice
    ("Antarctica/Casey", datetime(2010, 3, 4, 15, tzinfo=UTC)),  # +11 to +08
    ("Antarctica/Troll", datetime(2026, 10, 25, 1, tzinfo=UTC)),  # +02 to +00
    ("America/New_York", datetime(2026, 11, 1, 6, tzinfo=UTC)),  # EDT to EST
]
NIGHT_PEOPLE = ["n1", "n2"]  # not in the hourly layer, so a wrong layer shows


def reference_on_call(zone: str, first: datetime, t: datetime, nights_on_top: bool) -> str | None:
    """Who docs/oncall.md says is on call at t: the top layer where it applies, else the one below, else nobody."""
    z = ZoneInfo(zone)
    local_t = t.astimezone(z).replace(tzinfo=None)
    night = hourly = None
    for day in (local_t.date() - timedelta(days=d) for d in range(4)):
        start = instant(datetime.combine(day, time(22)), zone)
        if start <= t < instant(datetime.combine(day + timedelta(days=1), time(6)), zone):
            night = NIGHT_PEOPLE[(day - date(1990, 1, 1)).days % 2]
    if t >= first:
        wall0 = first.astimezone(z).replace(tzinfo=None)
        k = max(0, int((local_t - wall0) // timedelta(hours=1)) + 1)
        while k > 0 and instant(wall0 + k * timedelta(hours=1), zone) > t:
            k -= 1
        hourly = PEOPLE[k % len(PEOPLE)]
    return (night or hourly) if nights_on_top else (hourly or night)


@pytest.mark.parametrize("lead", [timedelta(hours=20), timedelta(minutes=30)], ids=["20h-before", "30min-before"])
@pytest.mark.parametrize(("zone", "change"), BIG_CHANGES, ids=[z for z, _ in BIG_CHANGES])
def test_large_clock_changes_match_the_rules(schedules, zone, change, lead):
    # the first handoff: 20 hours before the change (turns counted back across it), or 30 minutes before it, in the
    # first reading of a repeated hour where the clock goes back (kept as given, not moved to the second reading)
    first = change - lead
    # the night turns count from a local 22:00 that is day 0 of the reference (1990-01-01, before every change here)
    night0 = instant(datetime(1990, 1, 1, 22), zone)
    # the night layer on top, or, when the first handoff falls in the night, below (where it would hide it)
    nights_on_top = lead > timedelta(hours=1)
    for p in NIGHT_PEOPLE:
        schedules.execute("SELECT ops.add_principal(%s, 'human', ARRAY['ops_responder'], 'admin')", (p,))
    schedules.execute("SELECT ops.create_schedule('big', %s, 'admin')", (zone,))
    if not nights_on_top:
        schedules.execute("SELECT ops.add_rotation('big', 'nights', '1 day', %s, %s, 'admin', NULL, '22:00', '06:00')",
                          (night0, NIGHT_PEOPLE))
    schedules.execute("SELECT ops.add_rotation('big', 'hourly', '1 hour', %s, %s, 'admin')", (first, PEOPLE))
    if nights_on_top:
        schedules.execute("SELECT ops.add_rotation('big', 'nights', '1 day', %s, %s, 'admin', NULL, '22:00', '06:00')",
                          (night0, NIGHT_PEOPLE))
    t_from, t_to = change - timedelta(hours=30), change + timedelta(hours=30)
    minutes = [t_from + timedelta(minutes=m) for m in range(int((t_to - t_from) / timedelta(minutes=1)))]
    expected = [reference_on_call(zone, first, t, nights_on_top) for t in minutes]
    assert set(expected) >= set(PEOPLE) and set(expected) & set(NIGHT_PEOPLE), "both layers show"
    asked = schedules.execute(
        "SELECT (SELECT min(w) FROM ops.on_call('big', t) AS w) FROM unnest(%s::timestamptz[]) AS t",
        (minutes,)).fetchall()
    assert [r[0] for r in asked] == expected, "ops.on_call"
    rows = schedules.execute("SELECT principal, starts_at, ends_at FROM ops.on_call_shifts('big', %s, %s)",
                             (t_from, t_to)).fetchall()
    from_shifts = [next((p for p, s, e in rows if s <= t < e), None) for t in minutes]
    assert from_shifts == expected, "ops.on_call_shifts"
