"""docs/oncall.md's Schedules examples, pasted on any day, show what they describe: the override is
on call now (paging asks ops.on_call at the time it escalates) and in the calendar feed, and the
example instants name the people their comments say. Dates fixed in the past would run
(tests/test_runbook.py) but show nothing a reader could see."""

from __future__ import annotations

import subprocess

from test_runbook import ROOT, sql_blocks


def _run_until(db_url: str, marker: str) -> None:
    """demo_data.sql, then docs/oncall.md's sql blocks in order up to the first containing `marker`."""
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", db_url, "-f", str(ROOT / "scripts/demo_data.sql")],
                   check=True, capture_output=True)
    for block in sql_blocks("oncall.md"):
        if marker in block:
            return
        res = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", db_url], input=block, capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 0, f"docs/oncall.md snippet failed:\n{block}\n{res.stderr}"
    raise AssertionError(f"no docs/oncall.md sql block contains {marker!r}")


def test_the_docs_override_is_on_call_now_and_in_the_feed(db_url, conn):
    _run_until(db_url, "remove_override")
    [(reason,)] = conn.execute("SELECT reason FROM ops.schedule_overrides WHERE schedule = 'primary'").fetchall()
    assert conn.execute("SELECT ops.on_call('primary')").fetchall() == [("carol",)], reason
    token = conn.execute("SELECT ops.schedule_feed_token('primary', 'alice')").fetchone()[0]
    feed = conn.execute("SELECT ops.api_schedule_feed('primary', %s)", (token,)).fetchone()[0]
    overrides = [s for s in feed["shifts"] if s["source"] == "override"]
    assert [s["principal"] for s in overrides] == ["carol"], feed
    # the layers' examples: next week is alice's, carol keeps weekday business hours
    wednesday = ("(date_trunc('week', now() AT TIME ZONE 'Europe/Berlin') + interval '1 week 2 days {}')"
                 " AT TIME ZONE 'Europe/Berlin'")
    at = {h: conn.execute(f"SELECT ops.on_call('primary', {wednesday.format(h)})").fetchall()  # noqa: S608 (constants)
          for h in ("12 hours", "20 hours")}
    assert at == {"12 hours": [("carol",)], "20 hours": [("alice",)]}
