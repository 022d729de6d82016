"""The README's signing recipes, run verbatim (curl + openssl, and the stdlib Python snippet)
against the shipped gunicorn server: what a newcomer pastes must work."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from conftest import SECRET
from test_e2e_gunicorn import server  # noqa: F401 - the gunicorn fixture

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(language: str) -> str:
    """The first ```<language> block of the README's "Calling the API" section."""
    section = README.read_text().split("## Calling the API", 1)[1].split("\n## ", 1)[0]
    match = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert match, f"no {language} block in README's Calling the API"
    return match.group(1)


def json_documents(text: str) -> list:
    decoder, docs, i = json.JSONDecoder(), [], 0
    while (i := _skip_space(text, i)) < len(text):
        doc, i = decoder.raw_decode(text, i)
        docs.append(doc)
    return docs


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


@pytest.fixture
def env(server, conn):  # noqa: F811 - the imported fixture
    incident = conn.execute("SELECT id FROM ops.trigger_incident('GET /readme::x', 'critical')").fetchone()[0]
    return {**os.environ, "HOST": server, "OPS_HMAC_SECRET": SECRET, "INCIDENT_ID": str(incident)}


def test_the_readme_curl_recipe_acks_and_lists(env, conn):
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", readme_block("bash")], env=env,
                         capture_output=True, text=True, check=True, timeout=60).stdout
    ack, listed = json_documents(out)
    assert ack["ok"] is True and ack["incident"]["status"] == "acknowledged", ack
    assert listed["ok"] is True and [i["id"] for i in listed["incidents"]] == [env["INCIDENT_ID"]], listed
    assert conn.execute("SELECT status, acknowledged_by FROM incidents").fetchone() == ("acknowledged", "ops-bot")


def test_the_readme_python_snippet_lists_and_resolves(env, conn):
    out = subprocess.run([sys.executable, "-c", readme_block("python")], env=env,
                         capture_output=True, text=True, check=True, timeout=60).stdout
    listed, resolved = (ast.literal_eval(line) for line in out.splitlines())  # the snippet prints dicts
    assert [i["id"] for i in listed["incidents"]] == [env["INCIDENT_ID"]]
    assert resolved["ok"] is True and resolved["incident"]["status"] == "resolved"
    assert conn.execute("SELECT status FROM incidents").fetchone()[0] == "resolved"


def section_block(heading: str, language: str) -> str:
    """The first ```<language> block under the README's `## <heading>`."""
    section = README.read_text().split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert match, f"no {language} block in README's {heading}"
    return match.group(1)


ACTING = "Acting for a person (X-Ops-Actor)"


def test_the_readme_principal_recipe_lets_alice_act(env, conn, db_url):
    """Before: the 403 points at the SQL; the README's SQL, run as an operator, adds alice; then
    its signed curl acks as her."""
    recipe = section_block(ACTING, "bash")
    other = conn.execute("SELECT id FROM ops.trigger_incident('GET /readme::y', 'critical')").fetchone()[0]
    refused, = json_documents(subprocess.run(
        ["bash", "-euo", "pipefail", "-c", recipe], env={**env, "INCIDENT_ID": str(other)},
        capture_output=True, text=True, check=True, timeout=60).stdout)
    assert refused["ok"] is False and refused["error"] == "forbidden", refused
    assert "SELECT ops.add_principal('alice', 'human', ARRAY['ops_responder'], 'your-name');" in refused["hint"]
    assert "README, Acting for a person" in refused["hint"]

    sql = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", db_url], input="SELECT current_user;\n"
                         + section_block(ACTING, "sql"), capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PGOPTIONS": "-c role=opsguard_operator"})
    assert sql.returncode == 0 and "opsguard_operator" in sql.stdout, sql.stderr

    acked, = json_documents(subprocess.run(["bash", "-euo", "pipefail", "-c", recipe], env=env,
                                           capture_output=True, text=True, check=True, timeout=60).stdout)
    assert acked["ok"] is True and acked["incident"]["acknowledgedBy"] == "alice", acked
    assert conn.execute("SELECT acknowledged_by FROM incidents WHERE id = %s",
                        (env["INCIDENT_ID"],)).fetchone()[0] == "alice"
    assert conn.execute("SELECT count(*) FROM ops.audit_log WHERE actor = 'alice' AND action = 'UPDATE'"
                        " AND row_key = %s", (env["INCIDENT_ID"],)).fetchone()[0] == 1


def test_an_actor_without_the_permission_is_told_which_role_to_grant(conn):
    conn.execute("SELECT ops.add_principal('bob', 'human', ARRAY['ops_viewer'], 'admin')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as err:
        conn.execute("SELECT ops.authorize('ops-bot', 'incidents.ack', 'bob')")
    assert err.value.diag.message_detail == "its roles do not carry the permission"
    assert "SELECT ops.grant_role('bob', 'ops_responder', 'your-name');" in err.value.diag.message_hint


def test_get_me_for_an_unknown_actor_points_at_add_principal(conn):
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as err:
        conn.execute("SELECT ops.api_me('ops-bot', 'carol')")
    assert "SELECT ops.add_principal('carol', 'human', ARRAY['ops_responder'], 'your-name');" in err.value.diag.message_hint
