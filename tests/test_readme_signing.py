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
