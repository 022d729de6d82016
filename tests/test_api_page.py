"""GET/POST /p/<token> (docs/notifications.md, Acknowledging from the page): the page a link in an
e-mail or SMS opens. A GET shows and changes nothing; a POST acts once as the paged principal;
malformed and unknown tokens are one 404; answers are HTML with no-store and no-referrer."""

from __future__ import annotations

import pytest
from test_api_bad_input import checksum
from test_api_limits import clock  # noqa: F401 - the limiter's clock


def mint(conn, incident_id, principal: str = "bob", channel: str = "link") -> str:
    return conn.execute("SELECT r_token FROM ops._mint_page_token(NULL, %s, %s, %s, now())",
                        (incident_id, principal, channel)).fetchone()[0]


@pytest.fixture
def incident(conn):
    conn.execute("SELECT ops.add_principal('bob', 'human', ARRAY['ops_responder'], 'admin')")
    conn.execute("SELECT ops.add_principal('victor', 'human', ARRAY['ops_viewer'], 'admin')")
    return conn.execute("SELECT id FROM ops.trigger_incident('GET /checkout::error_rate', 'critical', 'GET /checkout', "
                        "'checkout <b>5xx</b> & <script>alert(1)</script>')").fetchone()[0]


def status(conn, incident_id) -> tuple:
    return conn.execute("SELECT status, acknowledged_by, resolved_by FROM ops.incidents WHERE id = %s",
                        (incident_id,)).fetchone()


def test_a_get_shows_the_incident_and_changes_nothing(app, conn, incident):
    client, token = app.test_client(), mint(conn, incident)
    before = checksum(conn)
    first, second = client.get(f"/p/{token}"), client.get(f"/p/{token}")
    assert checksum(conn) == before
    assert first.status_code == second.status_code == 200 and first.mimetype == "text/html"
    page = first.get_data(as_text=True)
    assert "GET /checkout::error_rate" in page and "bob" in page and "<dd>GET /checkout</dd>" in page
    assert '<form method="post">' in page
    assert 'value="acknowledge">Acknowledge</button>' in page and 'value="resolve">Resolve</button>' in page
    # the summary is text, never markup
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert first.headers["Cache-Control"] == "no-store"
    assert first.headers["Referrer-Policy"] == "no-referrer"
    csp = first.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "form-action 'self'" in csp


def test_a_post_acknowledges_once_as_the_paged_principal(app, conn, incident):
    client, token = app.test_client(), mint(conn, incident)
    resp = client.post(f"/p/{token}", data={"action": "acknowledge"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert "Acknowledged by bob at" in resp.get_data(as_text=True)
    assert resp.headers["Cache-Control"] == "no-store"
    assert status(conn, incident) == ("acknowledged", "bob", None)
    assert conn.execute("SELECT actor, note FROM ops.audit_log WHERE table_name = 'incidents' AND action = 'UPDATE' "
                        "AND row_key = %s", (str(incident),)).fetchall() == [("bob", "via link")]

    before = checksum(conn)
    again = client.post(f"/p/{token}", data={"action": "resolve"})
    assert again.status_code == 410 and "already answered" in again.get_data(as_text=True)
    assert checksum(conn) == before
    assert "already used" in client.get(f"/p/{token}").get_data(as_text=True)


def test_a_second_person_is_told_who_acknowledged_first(app, conn, incident):
    conn.execute("SELECT ops.ack_incident(%s, 'bob')", (incident,))
    conn.execute("SELECT ops.add_principal('carol', 'human', ARRAY['ops_responder'], 'admin')")
    resp = app.test_client().post(f"/p/{mint(conn, incident, 'carol')}", data={"action": "acknowledge"})
    assert resp.status_code == 200 and "Already acknowledged by bob" in resp.get_data(as_text=True)


def test_malformed_and_unknown_tokens_are_the_same_404(app, conn, incident):
    client = app.test_client()
    before = checksum(conn)
    answers = [client.get("/p/nope"), client.get("/p/" + "A" * 43),
               client.post("/p/" + "A" * 43, data={"action": "acknowledge"}),
               client.post("/p/x'%3B--", data={"action": "acknowledge"})]
    assert {r.status_code for r in answers} == {404}
    assert len({r.get_data() for r in answers}) == 1
    assert checksum(conn) == before


@pytest.mark.parametrize("case", ["revoked", "resolved", "viewer", "bad_action", "voice_token"])
def test_refusals_are_html_and_change_nothing(app, conn, incident, case):
    token = mint(conn, incident, "victor" if case == "viewer" else "bob", "voice" if case == "voice_token" else "link")
    if case == "revoked":
        conn.execute("UPDATE ops.page_tokens SET revoked_at = now()")
    if case == "resolved":
        conn.execute("SELECT ops.resolve_incident(%s, 'admin')", (incident,))
    before = checksum(conn)
    resp = app.test_client().post(f"/p/{token}", data={"action": "nope" if case == "bad_action" else "acknowledge"})
    want = {"revoked": 404, "resolved": 409, "viewer": 403, "bad_action": 400, "voice_token": 404}[case]
    assert resp.status_code == want and resp.mimetype == "text/html"
    assert "<h1>" in resp.get_data(as_text=True)
    assert checksum(conn) == before


@pytest.mark.usefixtures("clock")
def test_guessing_tokens_is_rate_limited_by_address(app, conn, incident):
    client = app.test_client()
    answers = [client.get(f"/p/{'B' * 43}").status_code for _ in range(31)]
    assert answers[:30] == [404] * 30 and answers[30] == 429
    other = app.test_client().get(f"/p/{mint(conn, incident)}", environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 200


def test_page_tokens_stay_out_of_the_logs():
    from opsguard.access_log import redact

    token = "S25mXF6cRZGUBYbgtve3bPkmKAZN5ErHhTzTf3u89lU"
    for line in (f'127.0.0.1 "POST /p/{token} HTTP/1.1" 200', f'"POST /twilio/voice?t={token} HTTP/1.1" 200',
                 f'"POST /twilio/voice?x=1&t={token}&y=2 HTTP/1.1" 200'):
        assert token not in redact(line) and "[redacted]" in redact(line)
