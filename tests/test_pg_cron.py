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
    assert apply(url)[-1] == "pg_cron: installed: opsguard-escalation-tick"
    assert apply(url) == ["pg_cron: installed: opsguard-escalation-tick"], "installing again is harmless"
    with psycopg.connect(url, autocommit=True) as c:
        jobs = c.execute("SELECT jobname, schedule FROM cron.job").fetchall()
        assert jobs == [("opsguard-escalation-tick", "* * * * *")], "one job, updated in place"
        c.execute("SELECT ops.trigger_incident('GET /cron::slo_violation', 'critical', p_now => now() - interval '1 hour')")
        deadline = time.monotonic() + 75
        row = None
        while time.monotonic() < deadline and row is None:
            row = c.execute(
                "SELECT state, escalations_count FROM ops.tick_log WHERE source = 'pg_cron' ORDER BY id LIMIT 1"
            ).fetchone()
            time.sleep(1)
        assert row == ("ran", 1), "pg_cron ticked and escalated the overdue incident"
        status = c.execute(
            "SELECT status FROM cron.job_run_details ORDER BY runid DESC LIMIT 1"
        ).fetchone()[0]
        assert status == "succeeded"
