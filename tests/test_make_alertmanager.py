"""`make alertmanager` (scripts/alertmanager.py): a newcomer's real Alertmanager against a running
API, with docs/intake.md's tested configuration and keys it makes itself. The alert pushed with
the line it prints becomes an incident on the route its `service` label names, through the
webhook and through pagerduty_configs (whose `component` carries the route); Ctrl-C stops it
and revokes its keys."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from real_senders import binary, gunicorn, wait_for
from test_e2e_gunicorn import _free_port

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _printed(proc: subprocess.Popen) -> list[str]:
    """What the script prints up to its `stop:` line (the alertmanager is ready then)."""
    lines = []
    deadline = time.monotonic() + 60
    while not lines or not lines[-1].startswith("stop:"):
        line = proc.stdout.readline()
        assert line or proc.poll() is None, "".join(lines)
        assert time.monotonic() < deadline, "".join(lines)
        lines.append(line.rstrip("\n"))
    return lines


def _incidents(conn: psycopg.Connection) -> dict[str, tuple]:
    rows = conn.execute("SELECT split_part(incident_key, ':', 1), route, severity, summary FROM ops.incidents "
                        "WHERE incident_key LIKE 'alertmanager:%' OR incident_key LIKE 'events_v2:%'").fetchall()
    return {r[0]: r[1:] for r in rows}


def test_make_alertmanager_pushes_a_test_alert_into_an_incident(db_url, conn, tmp_path):
    binary("alertmanager")  # make senders
    with gunicorn(db_url) as base:
        env = {**os.environ, "HOST": base, "DATABASE_URL": db_url, "AM_PORT": str(_free_port()),
               "AM_DIR": str(tmp_path / "am")}
        proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "alertmanager.py")], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            out = _printed(proc)
            assert (tmp_path / "am" / "default.tmpl").exists()
            keys = [x.split(": ", 1)[1] for x in out if x.startswith("  make-alertmanager-")]
            assert len(keys) == 2 and all(k.startswith("ogk_") for k in keys), out
            pushes = [x.strip() for x in out if "alert add" in x or "/api/v2/alerts" in x]
            assert len(pushes) == 3, out
            webhook_curl, pagerduty_amtool = pushes[1], pushes[2]
            for line in (webhook_curl, pagerduty_amtool):
                res = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=30)
                assert res.returncode == 0, (line, res.stdout, res.stderr)
            seen = wait_for("both incidents", lambda: len(_incidents(conn)) == 2 and _incidents(conn))
            assert seen["alertmanager"][:2] == ("platform", "critical"), seen
            # without `component` the route would be the payload's source, "Alertmanager"
            assert seen["events_v2"][:2] == ("platform", "warning"), seen
            assert "DemoSlow" in seen["events_v2"][2], seen
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
            rest = proc.communicate(timeout=30)[0]
        assert proc.returncode == 0, rest
        assert "keys are revoked" in rest
        live = conn.execute("SELECT count(*) FROM ops.integration_keys WHERE revoked_at IS NULL").fetchone()[0]
        assert live == 0


def test_make_alertmanager_uses_the_tested_block_of_docs_intake_md():
    """The configuration it runs is the doc's, with the heartbeat receiver left out (nothing runs
    a Watchdog rule here) and seconds instead of the doc's waits."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import alertmanager

    config = alertmanager.doc_config("http://127.0.0.1:1", "ogk_a", "ogk_b")
    res = subprocess.run([binary("amtool"), "check-config", "/dev/stdin"], input=config, capture_output=True,
                         text=True)
    assert res.returncode == 0, config + res.stdout + res.stderr
    assert "url: http://127.0.0.1:1/ops/integrations/alertmanager" in config
    assert "url: http://127.0.0.1:1/v2/enqueue" in config and "routing_key: ogk_b" in config
    assert "component: '{{ .CommonLabels.service }}'" in config
    assert "heartbeat" not in config and "group_wait: 1s" in config
