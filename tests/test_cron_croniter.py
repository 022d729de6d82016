"""ops.cron_matches against a real cron implementation (croniter): the same verdict for a sample
of expressions (fixed ones and seeded random ones: lists, ranges, steps, names) at a sample of
minutes, and the same refusals. One known, deliberate difference is pinned in
tests/sql/20-cron-matches.sql: a day field written */2 counts as unrestricted, as in Vixie
cron, while croniter treats it as restricted; the random sample keeps its steps off * in the
day fields so the two are compared where they agree. croniter also reads a backwards range
(5-1) as wrapping around; opsguard refuses it (tests/sql/20-cron-matches.sql)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from croniter import croniter

FIXED = [
    "* * * * *", "*/15 * * * *", "5/15 * * * *", "0 22 * * 1-5", "0 0 * * 0", "0 0 * * 7", "0 0 * * 5-7",
    "0,30 9-17 * * mon-fri", "0 0 * nov mon-fri", "0 0 1 * mon", "59 23 31 dec *", "0 0 29 feb *",
    "0-59/10 0-23/6 * * *", "0 0 1-31/2 * *", "0 0 * jan-mar/2 *", "30 2 15 * sat,sun", "@daily", "@hourly",
    "@weekly", "@monthly", "@yearly",
]
BAD = ["5 99 * * *", "5 * * 13 *", "0 24 * * *", "5 * * foo *", "60 * * * *", "* * 0 * *", "* * 32 * *",
       "* * * * 8", "*/0 * * * *", "* * * *", "1-60 * * * *"]
FIELDS = [(0, 59, []), (0, 23, []), (1, 31, []), (1, 12, "jan feb mar apr may jun jul aug sep oct nov dec".split()),
          (0, 7, "sun mon tue wed thu fri sat".split())]


def _item(rng: random.Random, lo: int, hi: int, names: list[str], day_field: bool) -> str:
    def value(v: int) -> str:
        if names and v - lo < len(names) and rng.random() < 0.3:
            return names[v - lo]
        return str(v)

    kind = rng.choice(["value", "range", "step", "range_step", "star"])
    a, b = sorted(rng.sample(range(lo, hi + 1), 2))
    if kind == "value":
        return value(a)
    if kind == "range":
        return f"{value(a)}-{value(b)}"
    if kind == "step":
        return f"{a}-{hi}/{rng.randint(1, 6)}" if day_field else f"*/{rng.randint(1, 20)}"
    if kind == "range_step":
        return f"{a}-{b}/{rng.randint(1, 5)}"
    return "*"


def _random_expressions(n: int) -> list[str]:
    rng = random.Random(20261201)  # noqa: S311 -- a reproducible sample, not a secret
    out = []
    for _ in range(n):
        fields = []
        for i, (lo, hi, names) in enumerate(FIELDS):
            items = [_item(rng, lo, hi, names, i in (2, 4)) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
            fields.append("*" if "*" in items else ",".join(items))
        out.append(" ".join(fields))
    return out


def _minutes(n: int) -> list[datetime]:
    rng = random.Random(7)  # noqa: S311
    start = datetime(2026, 1, 1, tzinfo=UTC)
    fixed = [datetime(2026, 12, 31, 23, 59, tzinfo=UTC), datetime(2028, 2, 29, 0, 0, tzinfo=UTC),
             datetime(2026, 3, 1, 0, 0, tzinfo=UTC), datetime(2026, 11, 22, 0, 0, tzinfo=UTC)]
    return fixed + [start + timedelta(minutes=rng.randrange(2 * 366 * 24 * 60)) for _ in range(n)]


def test_cron_matches_agrees_with_croniter(conn):
    expressions = FIXED + _random_expressions(80)
    minutes = _minutes(200)
    ours = {(e, t): m for e, t, m in conn.execute(
        "SELECT e, t, ops.cron_matches(e, t) FROM unnest(%s::text[]) AS e, unnest(%s::timestamptz[]) AS t",
        (expressions, minutes)).fetchall()}
    assert len(ours) == len(expressions) * len(minutes)
    differ = [(e, t.isoformat()) for e in expressions for t in minutes
              if ours[(e, t)] != croniter.match(e, t.replace(tzinfo=None))]
    assert differ == [], f"{len(differ)} verdicts differ, e.g. {differ[:5]}"
    # the sample is worth something: both answers occur
    assert 0 < sum(ours.values()) < len(ours)


@pytest.mark.parametrize("expr", BAD)
def test_refused_like_croniter_at_any_minute(conn, expr):
    assert not croniter.is_valid(expr)
    for at in ("2026-03-02 00:00Z", "2026-03-02 05:05Z", "2026-03-02 18:07Z", "2026-12-31 23:59Z"):
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            conn.execute("SELECT ops.cron_matches(%s, %s)", (expr, at))
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            conn.execute("SELECT ops.set_setting('pause_cron', %s, 'test')", (expr,))
