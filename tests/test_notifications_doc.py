"""docs/notifications.md, Acknowledging from the page: the Slack app manifest it shows turns
interactivity on at the API's /chat/slack/interactions with the bot scope chat:write, and every
URL it tells to configure is an endpoint the API serves; the answers it shows under a SELECT are
what the functions return. (Its `make dispatch` lines run in tests/test_pager_e2e.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

DOC = (Path(__file__).resolve().parents[1] / "docs" / "notifications.md").read_text()
SECTION = DOC.split("## Acknowledging from the page", 1)[1]


def test_the_slack_manifest_turns_interactivity_on_at_the_interactions_endpoint(app):
    [manifest] = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", SECTION, re.S)]
    interactivity = manifest["settings"]["interactivity"]
    assert interactivity["is_enabled"] is True
    assert interactivity["request_url"].endswith("/chat/slack/interactions")
    assert "chat:write" in manifest["oauth_config"]["scopes"]["bot"]
    served = {r.rule for r in app.url_map.iter_rules()}
    commands = {c["url"].split("ops.example.com", 1)[1] for c in manifest["features"]["slash_commands"]}
    assert commands == {"/chat/slack/commands"} <= served
    assert "/chat/slack/interactions" in served


def test_the_twilio_urls_to_configure_are_served(app):
    urls = re.findall(r"`https://ops\.example\.com(/twilio/\w+)", SECTION)
    assert set(urls) == {"/twilio/sms", "/twilio/status", "/twilio/voice"}
    assert set(urls) <= {r.rule for r in app.url_map.iter_rules()}


def test_the_psql_lines_answer_a_page(conn):
    conn.execute("SELECT ops.add_principal('bob', 'human', ARRAY['ops_responder'], 'admin')")
    conn.execute("INSERT INTO ops.contact_methods (principal, kind, address, created_by, verified_at) "
                 "VALUES ('bob', 'sms', '+14155550142', 'bob', now())")
    incident = conn.execute("SELECT id FROM ops.trigger_incident('GET /x::y', 'critical')").fetchone()[0]
    [sql] = re.findall(r"```text\n(SELECT ops\.page_view.*?)```", SECTION, re.S)
    view, act, sms = [line.split("--")[0].strip() for line in sql.strip().splitlines()]
    token, code = conn.execute(
        "SELECT r_token, r_short_code FROM ops._mint_page_token(NULL, %s, 'bob', 'sms', now(), true)",
        (incident,)).fetchone()
    assert conn.execute(view.replace("<token>", token)).fetchone()[0]["usable"] is True
    assert conn.execute(sms.replace("123456", code)).fetchone()[0]["message"].startswith("Acknowledged by bob")
    other = conn.execute("SELECT r_token FROM ops._mint_page_token(NULL, %s, 'bob', 'link', now())",
                         (incident,)).fetchone()[0]
    assert conn.execute(act.replace("<token>", other)).fetchone()[0]["message"].startswith("Already acknowledged by bob")


def _answered_blocks() -> list[tuple[str, str]]:
    """The ```sql blocks that are one statement followed by the answer it gives, as -- lines."""
    found = []
    for block in re.findall(r"```sql\n(.*?)```", DOC, re.S):
        statement, sep, answer = block.partition(";\n-- ")
        if sep and all(line.startswith("-- ") for line in ("-- " + answer).strip().splitlines()):
            found.append((statement + ";", "\n".join(line[3:] for line in ("-- " + answer).strip().splitlines())))
    return found


def test_the_answers_the_doc_shows_are_what_the_functions_return(conn):
    blocks = _answered_blocks()
    assert len(blocks) >= 2, "ops.slack_message and ops.page_sms"
    for statement, answer in blocks:
        assert conn.execute(statement).fetchone()[0] == answer, statement
