"""docs/runbook.md's "Was she actually reached?" query, run as an operator pastes it into psql, answers for a
real page: dana's DM went out, her webhook page was cancelled when she acknowledged, her address is
redacted, and the answer's time and way are there."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def section_sql(doc: str, heading: str) -> str:
    text = (ROOT / "docs" / doc).read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sql\n(.*?)```", section, flags=re.S)[0]


def test_the_runbook_query_shows_how_each_page_went(db_url, conn):
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", db_url, "-f", str(ROOT / "scripts/demo_data.sql")],
                   check=True, capture_output=True)
    dm = conn.execute("SELECT ops.add_contact_method('dana', 'slack_dm', 'U0DEMO', 'dana')").fetchone()[0]
    hook = conn.execute("SELECT id FROM ops.add_webhook_contact_method('dana', 'https://pager.example.com/dana', "
                        "'dana')").fetchone()[0]
    conn.execute("SELECT ops.add_notification_rule('dana', %s, 0, 'dana')", (dm,))
    conn.execute("SELECT ops.add_notification_rule('dana', %s, 5, 'dana')", (hook,))
    conn.execute("SELECT ops.create_policy('reached', 'dana')")
    conn.execute("""SELECT ops.add_policy_step('reached', 1, '[{"principal": "dana"}]', 'dana')""")
    conn.execute("SELECT ops.set_route_policy('GET /reached', 'reached', 'dana')")
    conn.execute("SELECT ops.set_setting('slack_webhook_url', 'http://127.0.0.1:9/hook', 'dana')")
    # paged a minute ago, dispatched at once, acknowledged now: 3 minutes before the webhook was due
    incident = conn.execute("SELECT id FROM ops.trigger_incident('GET /reached::slo_violation', 'critical', "
                            "p_now => now() - interval '6 minutes')").fetchone()[0]
    conn.execute("SELECT ops.escalation_tick(now() - interval '1 minute')")
    claimed = conn.execute("SELECT id, claim_id FROM ops.claim_notifications('w', 100, now())").fetchall()
    conn.execute("SELECT ops.finish_notifications('w', %s::jsonb, now())", (
        "[" + ",".join(f'{{"id": {i}, "claim": {c}, "outcome": "sent"}}' for i, c in claimed) + "]",))
    conn.execute("SELECT ops.ack_incident(%s, 'dana')", (incident,))

    env = {**os.environ, "PGOPTIONS": "-c role=opsguard_operator"}
    res = subprocess.run(["psql", "-X", "-A", "-F", "|", "-v", "ON_ERROR_STOP=1", db_url],
                         input=section_sql("runbook.md", "Was she actually reached?"),
                         capture_output=True, text=True, timeout=60, env=env)
    assert res.returncode == 0, res.stderr
    rows = [line.split("|") for line in res.stdout.splitlines()[1:-1]]
    header = res.stdout.splitlines()[0].split("|")
    got = [dict(zip(header, row, strict=True)) for row in rows]
    assert [(r["incident_key"], r["kind"], r["status"], r["via"]) for r in got] == [
        ("GET /reached::slo_violation", "slack_dm", "sent", "other"),
        ("GET /reached::slo_violation", "webhook", "cancelled", "other"),
    ]
    assert got[0]["address"] == "U…MO" and "pager.example.com/dana" not in res.stdout
    assert got[1]["cancelled_at"] and not got[1]["sent_at"], "the webhook page was never sent"
    assert got[0]["acted_at"] == got[1]["acted_at"] != "", "when dana answered"
