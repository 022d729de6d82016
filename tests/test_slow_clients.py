"""Slow and idle clients against the shipped gunicorn config (docs/runbook.md, Deployment): the
worker reads every request whole before a thread takes it, so hundreds of connections that
send nothing, or a byte a second, leave the API answering everyone else; a client that dawdles
past the read timeout is answered 408 and changes nothing. And the logs the server writes never
show a feed token or a bearer key, whatever the request looks like."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from bench.slow_clients import IDLE, TRICKLING, slow_crowd
from real_senders import gunicorn
from test_e2e_gunicorn import _post, v1_headers

ANSWER_WITHIN_S = 20  # a bound so that a stalled server fails the test instead of hanging it


def _call(req: urllib.request.Request) -> tuple[int, dict] | str:
    try:
        with urllib.request.urlopen(req, timeout=ANSWER_WITHIN_S) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError as exc:  # a timeout included
        return f"no answer: {exc!r}"


@pytest.fixture
def watched(conn):
    """An open critical incident, and a heartbeat key with a heartbeat that has missed."""
    incident_id = conn.execute("SELECT id FROM ops.trigger_incident('GET /slow::x', 'critical')").fetchone()[0]
    key = conn.execute("SELECT ops.create_integration_key('cron', 'heartbeat', 'alice')").fetchone()[0]
    conn.execute("SELECT ops.set_heartbeat('nightly', '5 minutes', 'alice', 'platform', "
                 "p_now => now() - interval '10 minutes')")
    return incident_id, key


@pytest.mark.slow
def test_idle_and_byte_a_second_clients_do_not_stop_the_api(db_url, conn, watched):
    incident_id, key = watched
    with gunicorn(db_url) as base:
        port = urllib.parse.urlsplit(base).port
        with slow_crowd("127.0.0.1", port) as crowd:
            time.sleep(3)  # each trickling client has sent a few more bytes: a thread each, were they given one
            guard = _call(urllib.request.Request(base + "/ops/release-guard"))
            try:
                ack = _post(f"{base}/ops/incidents/{incident_id}/ack", b'{"reason":"slow-clients"}')
            except OSError as exc:
                ack = f"no answer: {exc!r}"
            ping = _call(urllib.request.Request(base + "/ops/heartbeats/nightly", method="POST",
                                                headers={"Authorization": f"Bearer {key}"}))
            guard_after = _call(urllib.request.Request(base + "/ops/release-guard"))
            assert len(crowd.idle) == IDLE and len(crowd.trickling) == TRICKLING
    assert not isinstance(guard, str), guard
    assert (guard[0], guard[1]["failingCount"]) == (409, 1), guard
    assert not isinstance(ack, str), ack
    assert (ack[0], ack[1]["incident"]["status"]) == (200, "acknowledged"), ack
    assert not isinstance(ping, str), ping
    assert (ping[0], ping[1]["heartbeat"]["name"]) == (200, "nightly"), ping
    assert guard_after[0] == 200, guard_after
    assert all(s.fileno() == -1 for s in crowd.idle + crowd.trickling), "every client socket is closed"


def _read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.slow
def test_a_client_that_dawdles_is_cut_off_and_changes_nothing(db_url, conn, watched):
    """Read timeouts of 1 s (head) and 2 s (body) here instead of 10 s and 30 s."""
    incident_id, _ = watched
    body = b'{"reason":"too-slow"}'
    head = (f"POST /ops/incidents/{incident_id}/ack HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n").encode()
    for name, value in v1_headers("POST", f"/ops/incidents/{incident_id}/ack", body).items():
        head += f"{name}: {value}\r\n".encode()
    with gunicorn(db_url, {"OPS_HEADER_TIMEOUT_S": "1", "OPS_BODY_TIMEOUT_S": "2"}) as base:
        port = urllib.parse.urlsplit(base).port
        with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WITHIN_S) as idle, \
                socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WITHIN_S) as half_head, \
                socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WITHIN_S) as half_body:
            half_head.sendall(head[:40])
            half_body.sendall(head + b"\r\n" + body[:5])
            answers = [_read_until_closed(s) for s in (idle, half_head, half_body)]
    assert answers[0] == b"", "a connection that sent nothing is closed without an answer"
    for answer in answers[1:]:
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 408 Request Timeout", answer
        assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"] == "request_timeout"
    assert conn.execute("SELECT status FROM ops.incidents WHERE id = %s", (incident_id,)).fetchone()[0] == "open"


@pytest.mark.slow  # pauses between the pieces, so that each arrives on its own
def test_a_whole_request_sent_in_pieces_is_answered(db_url, conn, watched):
    """The read-ahead stage waits for the rest: a head split mid-line, then a chunked body split
    mid-chunk, then a second request on the same connection, all answered in order."""
    incident_id, _ = watched
    target = f"/ops/incidents/{incident_id}/ack"
    body = b'{"reason":"in-pieces"}'
    chunked = f"{len(body) - 5:x}\r\n".encode() + body[:-5] + b"\r\n5\r\n" + body[-5:] + b"\r\n0\r\n\r\n"
    head = f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in v1_headers("POST", target, body).items()) + "\r\n"
    request = head.encode() + chunked
    second = b"GET /ops/release-guard HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with gunicorn(db_url) as base:
        with socket.create_connection(("127.0.0.1", urllib.parse.urlsplit(base).port), timeout=ANSWER_WITHIN_S) as s:
            for cut in (20, len(head) + 3, len(request) - 2):
                s.sendall(request[:cut])
                request = request[cut:]
                time.sleep(0.3)
            s.sendall(request + second)
            answer = _read_until_closed(s)
    first, _, after = answer.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 "), answer
    assert b"HTTP/1.1 200 " in after and after.count(b"HTTP/1.1 ") == 1, answer
    assert conn.execute("SELECT status FROM ops.incidents WHERE id = %s", (incident_id,)).fetchone()[0] == "acknowledged"


def test_no_log_the_server_writes_shows_a_secret(db_url, conn, tmp_path):
    """A request line with a raw space is refused by gunicorn itself, which writes it to its error
    log; the access log gets the ordinary requests; a bearer key goes by in a header."""
    token = conn.execute("SELECT ops.create_integration_key('cron', 'heartbeat', 'alice')").fetchone()[0]
    feed = "ogf_" + "cd" * 16
    error_log, access_log = tmp_path / "error.log", tmp_path / "access.log"
    env = {"OPS_ACCESS_LOG": str(access_log), "GUNICORN_CMD_ARGS": f"--error-logfile {error_log} --log-level debug"}
    with gunicorn(db_url, env) as base:
        port = urllib.parse.urlsplit(base).port
        for line in (f"GET /ops/schedules/platform /calendar.ics?token={feed} HTTP/1.1",
                     f"GET /ops/schedules/platform/calendar.ics?token={feed}&x=1 HTTP/1.1"):
            with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WITHIN_S) as s:
                s.sendall(f"{line}\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n".encode())
                assert _read_until_closed(s).startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 404 "))
        _call(urllib.request.Request(base + "/ops/heartbeats/none", method="POST",
                                     headers={"Authorization": f"Bearer {token}"}))
    logs = error_log.read_text() + access_log.read_text()
    assert "Invalid request" in error_log.read_text() and "calendar.ics" in error_log.read_text(), logs
    assert "calendar.ics?token=[redacted]&x=1" in access_log.read_text(), logs
    for secret in (feed, "cd" * 16, token, token[4:]):
        assert secret not in logs, (secret, logs)


def test_redact_hides_every_kind_of_secret():
    from opsguard.access_log import redact

    feed, key = "ogf_" + "ab" * 16, "ogk_" + "12" * 16
    assert redact(f"GET /ops/schedules/p /calendar.ics?token={feed} HTTP/1.1") == \
        "GET /ops/schedules/p /calendar.ics?token=[redacted] HTTP/1.1"
    assert redact(f"?x=1&TOKEN=guess&y=2 and {feed} and {key}") == \
        "?x=1&TOKEN=[redacted]&y=2 and ogf_[redacted] and ogk_[redacted]"
    assert redact("Authorization: Bearer abc.def-123") == "Authorization: [redacted]"
    assert redact("('AUTHORIZATION', 'Basic dXNlcjpwYXNz')") == "('AUTHORIZATION', 'Basic [redacted]')"
    assert redact("GET /ops/incidents?status=active") == "GET /ops/incidents?status=active"


def test_a_request_sent_before_a_half_close_is_answered(db_url):
    """`printf ... | nc` sends its request and shuts its side: the request is whole, so answered."""
    with gunicorn(db_url) as base:
        with socket.create_connection(("127.0.0.1", urllib.parse.urlsplit(base).port), timeout=ANSWER_WITHIN_S) as s:
            s.sendall(b"GET /ops/release-guard HTTP/1.1\r\nHost: x\r\n\r\n")
            s.shutdown(socket.SHUT_WR)
            answer = _read_until_closed(s)
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.count(b"HTTP/1.1 ") == 1, answer


def test_the_apps_own_log_lines_are_redacted_too():
    """The record factory RedactingLogger installs covers every logger of the process, the app's
    included, and a traceback's text as well as the message."""
    import io
    import logging

    from opsguard.access_log import install

    install()
    install()  # twice: still one redaction, not a factory wrapping itself
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    log = logging.getLogger("opsguard.views.example")
    log.addHandler(handler)
    try:
        log.warning("feed %s asked with %r", "ogf_" + "ef" * 16, {"Authorization": "Bearer s3cret"})
        try:
            raise ValueError("bad calendar.ics?token=ogf_" + "ef" * 16)
        except ValueError:
            log.exception("while serving")
    finally:
        log.removeHandler(handler)
    text = out.getvalue()
    assert "ef" * 16 not in text and "s3cret" not in text, text
    assert "feed ogf_[redacted] asked with {'Authorization': '[redacted]'}" in text, text
    assert "ValueError: bad calendar.ics?token=[redacted]" in text, text


def test_requests_still_being_read_share_one_bounded_buffer(db_url, conn, watched):
    """OPS_READ_BUFFER_MB caps what all unfinished requests may hold together (1 KiB here): the
    client that would pass it is answered 503 and changes nothing; whole requests still go through."""
    incident_id, _ = watched
    target = f"/ops/incidents/{incident_id}/ack"
    body = json.dumps({"reason": "x" * 3000}).encode()
    head = f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in v1_headers("POST", target, body).items()) + "\r\n"
    with gunicorn(db_url, {"OPS_READ_BUFFER_MB": str(1 / 1024)}) as base:
        with socket.create_connection(("127.0.0.1", urllib.parse.urlsplit(base).port), timeout=ANSWER_WITHIN_S) as s:
            s.sendall(head.encode() + body[:2000])
            answer = _read_until_closed(s)
        guard = _call(urllib.request.Request(base + "/ops/release-guard"))
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 503 Service Unavailable", answer
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"] == "server_busy"
    assert guard[0] == 409, guard
    assert conn.execute("SELECT status FROM ops.incidents WHERE id = %s", (incident_id,)).fetchone()[0] == "open"
