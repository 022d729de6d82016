"""Every ```sql block in the docs runs, in order, against a fresh database with the demo
data, as an operator would paste it into psql: a snippet no test runs is one that rots."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def sql_blocks(doc: str) -> list[str]:
    return re.findall(r"```sql\n(.*?)```", (DOCS / doc).read_text(), flags=re.S)


def sql_fences(doc: str) -> int:
    """The ```sql fences an operator sees, counted line by line (not with sql_blocks' pattern):
    a fence that pattern misreads (```sql with a trailing space, an unclosed block) is a
    snippet no test runs."""
    return sum(1 for line in (DOCS / doc).read_text().splitlines() if line.lower().startswith("```sql"))


def run_blocks(db_url: str, doc: str) -> int:
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", db_url, "-f", str(ROOT / "scripts/demo_data.sql")],
                   check=True, capture_output=True)
    blocks = sql_blocks(doc)
    for block in blocks:
        res = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", db_url],
                             input=block, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, f"{doc} snippet failed:\n{block}\n{res.stderr}"
    return len(blocks)


DOCS_WITH_SQL = ["escalation.md", "release-guard.md", "notifications.md", "intake.md", "oncall.md", "ha.md"]


def test_every_doc_with_sql_is_run():
    assert sorted(p.name for p in DOCS.glob("*.md") if sql_fences(p.name)) == sorted([*DOCS_WITH_SQL, "runbook.md"])


@pytest.mark.parametrize("doc", DOCS_WITH_SQL)
def test_every_doc_snippet_runs(db_url, doc):
    assert run_blocks(db_url, doc) == sql_fences(doc) >= 1


def test_every_runbook_snippet_runs(db_url, conn):
    assert run_blocks(db_url, "runbook.md") == sql_fences("runbook.md") >= 10
    settings = dict(conn.execute(
        "SELECT key, value #>> '{}' FROM ops.settings WHERE key IN"
        " ('escalation_enabled', 'dry_run', 'pause_cron', 'canary_pct', 'slack_webhook_url', 'notify_paused')"
    ).fetchall())
    assert settings == {
        "escalation_enabled": "true", "dry_run": "false", "pause_cron": "", "canary_pct": "100",
        "slack_webhook_url": "https://hooks.slack.com/services/T000/B000/NEWSECRET", "notify_paused": "false",
    }, "the runbook leaves escalation and delivery running, as its steps say"
    assert conn.execute("SELECT count(*) FROM ops.route_webhooks").fetchone()[0] == 0, "... and no route webhook behind"
    actors = conn.execute("SELECT DISTINCT actor FROM ops.audit_log WHERE action = 'UPDATE'").fetchall()
    assert ("alice",) in actors
