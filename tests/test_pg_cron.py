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
    installed = "pg_cron: installed: opsguard-escalation-tick, opsguard-evaluate-routes, opsguard-retention"
    assert apply(url)[-1] == installed
    assert apply(url) == [installed], "installing again is harmless"
    with psycopg.connect(url, autocommit=True) as c:
        jobs = c.execute("SELECT jobname, schedule FROM cron.job ORDER BY jobname").fetchall()
        assert jobs == [("opsguard-escalation-tick", "* * * * *"), ("opsguard-evaluate-routes", "* * * * *"),
                        ("opsguard-retention", "17 3 * * *")], "each job once, updated in place"
        c.execute("SELECT ops.trigger_incident('GET /cron::slo_violation', 'critical', p_now => now() - interval '1 hour')")
        # a tick that started before the incident was committed cannot see it: wait for one that started after
        committed = c.execute("SELECT clock_timestamp()").fetchone()[0]
        deadline = time.monotonic() + 75
        row = None
        while time.monotonic() < deadline and row is None:
            row = c.execute(
                "SELECT state, escalations_count FROM ops.tick_log WHERE source = 'pg_cron' AND tick_at > %s"
                " ORDER BY id LIMIT 1", (committed,)
            ).fetchone()
            time.sleep(1)
        assert row == ("ran", 1), "pg_cron ticked and escalated the overdue incident"
        statuses = c.execute("SELECT DISTINCT status FROM cron.job_run_details").fetchall()
        assert statuses == [("succeeded",)], "the tick and the route evaluation both ran cleanly"

        # what operators and /healthz read of pg_cron's record
        last = c.execute("SELECT scheduled, status FROM ops.cron_job_last_run('opsguard-escalation-tick')").fetchone()
        assert last == (True, "succeeded")
        health = c.execute("SELECT ops.api_health()").fetchone()[0]
        assert (health["reasons"], health["pgCronJob"]["lastStatus"]) == ([], "succeeded")
        assert c.execute("SELECT count(*) FROM ops.alerts WHERE alert LIKE 'Tick%'").fetchone()[0] == 0

        # a failing job shows in the alert's summary and in the health answer
        c.execute("UPDATE cron.job_run_details SET status = 'failed', return_message = 'ERROR: boom'"
                  " WHERE runid = (SELECT max(runid) FROM cron.job_run_details d JOIN cron.job j USING (jobid)"
                  "                WHERE j.jobname = 'opsguard-escalation-tick')")
        health = c.execute("SELECT ops.api_health()").fetchone()[0]
        assert health["reasons"] == ["the last pg_cron tick failed: ERROR: boom"]
        summary = c.execute("SELECT summary FROM ops.evaluate_alerts(now() + interval '3 minutes')"
                            " WHERE alert = 'TickMissing' AND firing").fetchone()[0]
        assert "pg_cron's last run: failed at " in summary and summary.endswith(": ERROR: boom")

        # retention purges pg_cron's run details of our jobs, by cron_history_retention_days
        # one snapshot for the count and the purge: pg_cron keeps adding runs meanwhile
        with c.transaction():
            c.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            finished = c.execute(
                "SELECT count(*) FROM cron.job_run_details WHERE end_time IS NOT NULL"
                " AND jobid IN (SELECT jobid FROM cron.job WHERE jobname LIKE 'opsguard-%')").fetchone()[0]
            purged = c.execute("SELECT ops.purge_history(now() + interval '8 days')").fetchone()[0]
        assert purged["cronRunDetails"] == finished >= 1, "every finished run of our jobs"
        assert c.execute("SELECT count(*) FROM cron.job_run_details WHERE end_time IS NOT NULL").fetchone()[0] == 0
