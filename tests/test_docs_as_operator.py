"""The docs' SQL is what operators paste into psql: every block runs as opsguard_operator, who
may read everything, UPDATE incidents and call the ops.* verbs, and nothing else (0019)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from test_runbook import sql_blocks

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("doc", ["runbook.md", "escalation.md", "release-guard.md", "notifications.md", "intake.md",
                                 "oncall.md", "ha.md"])
def test_every_doc_snippet_runs_as_an_operator(db_url, conn, doc):
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", db_url, "-f", str(ROOT / "scripts/demo_data.sql")],
                   check=True, capture_output=True)
    env = {**os.environ, "PGOPTIONS": "-c role=opsguard_operator"}
    blocks = sql_blocks(doc)
    for block in blocks:
        res = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", db_url],
                             input="SELECT current_user;\n" + block, capture_output=True, text=True, timeout=60, env=env)
        assert res.returncode == 0, f"{doc} snippet failed as an operator:\n{block}\n{res.stderr}"
        assert "opsguard_operator" in res.stdout
    assert blocks
    if doc == "runbook.md":
        # its changes went through the verbs and the audited UPDATE, with the actor it names
        actors = conn.execute("SELECT DISTINCT actor FROM ops.audit_log WHERE action = 'UPDATE'").fetchall()
        assert ("alice",) in actors
