"""The README's first steps after `make run`, run as a newcomer pastes them: the line that sets
$INCIDENT_ID, and "Watch it page in two minutes" (demo data, pg_cron's tick, the Slack stand-in)."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

from fake_slack import log_line
from test_escalation_paging import drain, hooks  # noqa: F401 - hooks: the Slack stand-ins fixture
from test_readme_signing import section_block

KEY = "GET /checkout::error_rate_critical"
ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def first_block_after(text: str, language: str) -> str:
    match = re.search(rf"```{language}\n(.*?)```", text, re.S)
    assert match, f"no {language} block"
    return match.group(1)


def test_the_first_commands_set_incident_id_to_an_id_alone(db_url, conn):
    intro = README.read_text().split("## Calling the API", 1)[0]
    first = first_block_after(intro.split("`make run` also starts the API", 1)[1], "bash")
    assert first.startswith("export INCIDENT_ID=$(psql")
    env = {**os.environ, "DATABASE_URL": db_url, "PSQLRC": str(ROOT / "scripts" / "psqlrc")}
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", first + 'echo "INCIDENT_ID=[$INCIDENT_ID]"'],
                         env=env, capture_output=True, text=True, check=True, timeout=60).stdout
    got = re.search(r"INCIDENT_ID=\[(.*)\]", out, re.S).group(1)
    assert uuid.UUID(got) and conn.execute("SELECT incident_key FROM incidents WHERE id = %s",
                                           (got,)).fetchone() == ("GET /projects::slo_violation",)


def test_watch_it_page_in_two_minutes(db_url, conn, hooks, dispatcher):  # noqa: F811
    route, _ = hooks
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", db_url, "-f", str(ROOT / "scripts/demo_data.sql")],
                   check=True, capture_output=True)
    conn.execute("SELECT ops.set_setting('slack_webhook_url', %s, 'make-run')", (route.url("/services/demo"),))
    recipe = section_block("Watch it page in two minutes", "sql")
    sql = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", db_url], input=recipe,
                         capture_output=True, text=True, timeout=60)
    assert sql.returncode == 0, sql.stderr
    opened, = conn.execute("SELECT first_seen FROM incidents WHERE incident_key = %s", (KEY,)).fetchone()

    def level_after_tick(at):  # as pg_cron's tick at that time (the demo's other incidents tick too)
        conn.execute("SELECT ops.escalation_tick(%s)", (at,))
        return conn.execute("SELECT escalation_level FROM incidents WHERE incident_key = %s", (KEY,)).fetchone()[0]

    assert level_after_tick(opened + timedelta(seconds=59)) == 0
    at = opened + timedelta(minutes=2)
    assert level_after_tick(at) == 1
    drain(dispatcher, conn)
    [on_call] = [r[0] for r in conn.execute("SELECT ops.on_call('platform', %s)", (at,))]
    [line] = [log_line(m) for m in route.messages() if KEY in m.body["text"]]
    assert line["to"] == "/services/demo" and line["text"].startswith(f"[CRITICAL] {KEY}")
    assert any(c.endswith(f"paged {on_call}") for c in line["context"]), line
