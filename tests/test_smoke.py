"""`make smoke` (scripts/smoke.sh) against the shipped gunicorn server as make run starts it
(OPS_HMAC_BODY_ONLY=on: the smoke test signs its tick body-only) and a database with make run's
demo data: it passes, leaves no incident it opened active, keeps its files private, and a failed
run says why and still resolves what it opened."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import SECRET
from test_e2e_gunicorn import body_only_server, server  # noqa: F401 - the gunicorn fixtures

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def demo_data(db_url):
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", db_url, "-f", str(ROOT / "scripts/demo_data.sql")],
                   check=True, capture_output=True)


def smoke_against(host: str, db_url: str, tmp_path: Path):
    def run(secret: str = SECRET) -> subprocess.CompletedProcess:
        env = {**os.environ, "HOST": host, "DATABASE_URL": db_url, "OPS_HMAC_SECRET": secret,
               "TMPDIR": str(tmp_path)}
        return subprocess.run(["bash", str(ROOT / "scripts/smoke.sh")], env=env, capture_output=True, text=True,
                              timeout=120)

    return run


@pytest.fixture
def smoke(body_only_server, db_url, demo_data, tmp_path):  # noqa: F811 - the imported fixture
    return smoke_against(body_only_server, db_url, tmp_path)


def active_critical(conn) -> list:
    return conn.execute("SELECT id FROM incidents WHERE severity = 'critical' AND status = 'open'").fetchall()


def test_smoke_passes_and_leaves_nothing_open(smoke, conn, tmp_path):
    before = active_critical(conn)
    result = smoke()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "smoke: all six steps passed" in result.stdout
    incident_id = next(line.split("=", 1)[1] for line in result.stdout.splitlines() if line.startswith("INCIDENT_ID="))
    assert conn.execute("SELECT status FROM incidents WHERE id = %s", (incident_id,)).fetchone()[0] == "resolved"
    assert active_critical(conn) == [r for r in before if str(r[0]) != incident_id]
    assert list(tmp_path.iterdir()) == [], "its temp files are removed"


def test_a_failed_smoke_says_why_and_resolves_its_incident(smoke, conn, tmp_path):
    result = smoke(secret="not-the-secret")
    assert result.returncode == 1
    assert "SMOKE FAILED: step 2" in result.stderr and "OPS_HMAC_SECRET" in result.stderr
    incident_id = next(line.split("=", 1)[1] for line in result.stdout.splitlines() if line.startswith("INCIDENT_ID="))
    assert conn.execute("SELECT status FROM incidents WHERE id = %s", (incident_id,)).fetchone()[0] == "resolved"
    assert list(tmp_path.iterdir()) == []


def test_with_body_only_off_the_smoke_says_what_to_turn_on(server, db_url, demo_data, conn, tmp_path):  # noqa: F811
    result = smoke_against(server, db_url, tmp_path)()
    assert result.returncode == 1
    assert "SMOKE FAILED: step 2" in result.stderr and "OPS_HMAC_BODY_ONLY=on" in result.stderr
    assert conn.execute("SELECT count(*) FROM ops.tick_log").fetchone()[0] == 0, "the refused tick did not run"


STEP_1 = """WITH pick AS (SELECT id FROM incidents ORDER BY random() LIMIT 1)
UPDATE incidents SET status='open', severity='critical' WHERE id IN (SELECT id FROM pick) RETURNING id;"""


def test_psqlrc_makes_step_1_print_the_id_alone(db_url, conn):
    """Why make run prints `export PSQLRC=...` (README): without it psql -At adds the command tag."""
    conn.execute("SELECT ops.trigger_incident('GET /psqlrc::x', 'warning')")
    plain = subprocess.run(["psql", db_url, "-At", "-c", STEP_1], capture_output=True, text=True, check=True,
                           env={**os.environ, "PSQLRC": "/dev/null"}).stdout.splitlines()
    assert len(plain) == 2 and plain[1] == "UPDATE 1", plain
    quiet = subprocess.run(["psql", db_url, "-At", "-c", STEP_1], capture_output=True, text=True, check=True,
                           env={**os.environ, "PSQLRC": str(ROOT / "scripts/psqlrc")}).stdout.splitlines()
    assert quiet == plain[:1]
    assert 'export PSQLRC="$PWD/scripts/psqlrc"' in (ROOT / "scripts/run.sh").read_text()
    assert "Why `PSQLRC`" in (ROOT / "README.md").read_text()
