"""A real pg_cron job fires in the test cluster and its tick lands in the tick log.

pg_cron fires at minute boundaries, so this waits up to ~75 s."""

from __future__ import annotations

import time

import psycopg
import pytest
from conftest import CRON_DB
from opsguard.migrate import apply


@pytest.mark.slow
def test_pg_cron_runs_the_escalation_tick_every_minute(pg_cluster):
    url = pg_cluster.url(CRON_DB)
    installed = "pg_cron: installed: opsguard-escalation-tick, opsguard-evaluate-routes, opsguard-guard-retention"
    assert apply(url)[-1] == installed
    assert apply(url) == [installed], "installing again is harmless"
    with psycopg.connect(url, autocommit=True) as c:
        jobs = c.execute("SELECT jobname, schedule FROM cron.job ORDER BY jobname").fetchall()
        assert jobs == [("opsguard-escalation-tick", "* * * * *"), ("opsguard-evaluate-routes", "* * * * *"),
                        ("opsguard-guard-retention", "17 3 * * *")], "each job once, updated in place"
        c.execute("SELECT ops.trigger_incident('GET /cron::slo_violation', 'critical', p_now => now() - interval '1 hour')")
        deadline = time.monotonic() + 75
        row = None
        while time.monotonic() < deadline and row is None:
            row = c.execute(
                "SELECT state, escalations_count FROM ops.tick_log WHERE source = 'pg_cron' ORDER BY id LIMIT 1"
            ).fetchone()
            time.sleep(1)
        assert row == ("ran", 1), "pg_cron ticked and escalated the overdue incident"
        statuses = c.execute("SELECT DISTINCT status FROM cron.job_run_details").fetchall()
        assert statuses == [("succeeded",)], "the tick and the route evaluation both ran cleanly"
