"""End to end: the shipped gunicorn config serving the app over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import SECRET

ROOT = Path(__file__).resolve().parents[1]


class ServerNotReady(Exception):
    """The server exited, or did not answer in time; it has been stopped, and its log is in the message."""

    def __init__(self, message: str, proc: subprocess.Popen):
        super().__init__(message)
        self.proc = proc


def wait_until_answering(url: str, proc: subprocess.Popen, timeout: float = 20.0, attempt_timeout: float = 1.0) -> None:
    """Returns once `url` answers with any HTTP status (a 503 from /healthz names what is
    unhealthy: the server is up). Refused, reset, or a read that timed out (a busy machine: the
    worker is still booting) mean not up yet. Raises ServerNotReady when `proc` exits or `timeout`
    passes."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            with urllib.request.urlopen(url, timeout=attempt_timeout):
                return
        except urllib.error.HTTPError:
            return
        # URLError (refused), ConnectionResetError, TimeoutError (a slow answer) are all OSError;
        # a connection closed mid-status-line is an HTTPException
        except (OSError, http.client.HTTPException) as exc:
            last = exc
        if proc.poll() is not None:
            raise ServerNotReady(f"the server exited with {proc.returncode} before answering {url}", proc)
        if time.monotonic() >= deadline:
            raise ServerNotReady(f"{url} did not answer within {timeout} s (last: {last!r})", proc)
        time.sleep(0.2)


def stop(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if it is still running after `grace` seconds: never left behind."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@contextmanager
def running(cmd: list[str], url: str, *, env: dict | None = None, timeout: float = 20.0,
            grace: float = 15.0) -> Iterator[subprocess.Popen]:
    """Starts `cmd`, waits until `url` answers, yields the process, and stops it whatever happens
    (not ready in time, a failing test, Ctrl-C). Its output goes to a file, not a pipe: a pipe
    nobody reads fills up and blocks the server, and reading it before the server exits hangs."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            try:
                wait_until_answering(url, proc, timeout)
            except ServerNotReady as exc:
                stop(proc, grace)
                log.seek(0)
                raise ServerNotReady(f"{exc}\n--- server output ---\n{log.read().decode(errors='replace')}", proc) from None
            yield proc
        finally:
            stop(proc, grace)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(db_url: str, *args: str, **env: str) -> Iterator[str]:
    """The shipped gunicorn config on a free port, with the signing settings as given (one not
    given is unset, as in a fresh deployment) and extra gunicorn options; yields its base URL."""
    port = _free_port()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_HMAC_", "SLACK_"))}
    env = {**base_env, "DATABASE_URL": db_url, "OPS_HMAC_SECRET": SECRET, "PORT": str(port),
           "PYTHONPATH": str(ROOT / "api"), "OPS_ACCESS_LOG": "", **env}
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "api/gunicorn.conf.py"), *args,
           "opsguard.app:create_app()"]
    with running(cmd, base + "/healthz", env=env):
        yield base


@pytest.fixture
def server(db_url):
    with serving(db_url) as base:
        yield base


@pytest.fixture
def body_only_server(db_url):
    """As make run starts the API, for the smoke test: OPS_HMAC_BODY_ONLY=on."""
    with serving(db_url, OPS_HMAC_BODY_ONLY="on") as base:
        yield base


# A stand-in server for the readiness loop: it accepts every connection, holds the first
# `stall` of them for `hold` seconds without a byte of answer (longer than one attempt waits),
# then answers 503 to the rest; it counts the stalled ones in `counter`.
SLOW_SERVER = r"""
import socket, sys, time
port, stall, hold, counter = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", port)); s.listen(16)
n = 0
while True:
    c, _ = s.accept()
    if n < stall:
        n += 1
        time.sleep(hold)
        open(counter, "w").write(str(n))
    else:
        c.recv(65536)
        c.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    c.close()
"""


def test_readiness_survives_a_slow_server(tmp_path):
    """A server that accepts but answers nothing for longer than one attempt waits (the first
    /healthz of a worker still booting on a busy machine) is not up yet, not an error."""
    port, counter = _free_port(), tmp_path / "stalled"
    cmd = [sys.executable, "-c", SLOW_SERVER, str(port), "2", "1.5", str(counter)]
    with running(cmd, f"http://127.0.0.1:{port}/healthz", timeout=20) as proc:
        assert proc.poll() is None
        assert counter.read_text() == "2", "both stalled connections were waited out"
    assert proc.returncode is not None, "stopped when the block ends"


def test_a_server_that_never_answers_is_stopped_and_its_output_shown(tmp_path):
    port = _free_port()
    cmd = [sys.executable, "-c", SLOW_SERVER.replace("import socket", "print('booting', flush=True); import socket"),
           str(port), "1000", "60", str(tmp_path / "stalled")]
    started = time.monotonic()
    with pytest.raises(ServerNotReady) as exc:
        with running(cmd, f"http://127.0.0.1:{port}/healthz", timeout=2, grace=1):
            pytest.fail("never ready, so never entered")
    assert time.monotonic() - started < 10, "gave up at the deadline"
    assert exc.value.proc.returncode is not None, "the server is not left running"
    assert "did not answer within 2 s" in str(exc.value) and "booting" in str(exc.value)


def test_a_server_that_exits_early_is_reported():
    cmd = [sys.executable, "-c", "import sys; print('bad config', flush=True); sys.exit(3)"]
    with pytest.raises(ServerNotReady) as exc:
        with running(cmd, f"http://127.0.0.1:{_free_port()}/healthz", timeout=20):
            pytest.fail("never ready, so never entered")
    assert exc.value.proc.returncode == 3
    assert "exited with 3" in str(exc.value) and "bad config" in str(exc.value)


def test_a_failing_test_still_stops_a_server_that_ignores_sigterm(tmp_path):
    port = _free_port()
    cmd = [sys.executable, "-c", "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + SLOW_SERVER,
           str(port), "0", "0", str(tmp_path / "stalled")]
    with pytest.raises(ZeroDivisionError, match="the test body fails"):
        with running(cmd, f"http://127.0.0.1:{port}/healthz", grace=0.5) as proc:
            raise ZeroDivisionError("the test body fails")
    assert proc.returncode == -signal.SIGKILL, "SIGTERM ignored, so killed"


_signed: set[tuple] = set()


def v1_headers(method: str, target: str, body: bytes) -> dict:
    """v1 (docs/api.md, Signatures). A repeated identical write is signed a second earlier: each is accepted once."""
    ts = int(time.time())
    while (ts, method, target, body) in _signed:
        ts -= 1
    _signed.add((ts, method, target, body))
    return {"X-Timestamp": str(ts), "X-Signature": "v1=" + hmac.new(
        SECRET.encode(), f"v1:{ts}:{method}:{target}:".encode() + body, hashlib.sha256).hexdigest()}


def _send(req: urllib.request.Request):
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _post(url: str, body: bytes, *, body_only: bool = False):
    target = urllib.parse.urlsplit(url).path
    sign = {"X-Signature": hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()} if body_only \
        else v1_headers("POST", target, body)
    return _send(urllib.request.Request(url, data=body, method="POST",
                                        headers={"Content-Type": "application/json", **sign}))


def _get(base: str, target: str):
    return _send(urllib.request.Request(base + target, headers=v1_headers("GET", target, b"")))


def test_ack_over_http_through_gunicorn(server, conn):
    incident_id = conn.execute("SELECT id FROM ops.trigger_incident('GET /e2e::x', 'critical')").fetchone()[0]
    status, body = _post(f"{server}/ops/incidents/{incident_id}/ack", b'{"reason":"chatops-ack"}')
    assert status == 200
    assert (body["ok"], body["incident"]["status"], body["incident"]["acknowledgedBy"]) == (True, "acknowledged", "ops-bot")
    assert conn.execute("SELECT acknowledged_by FROM incidents").fetchone()[0] == "ops-bot"


def test_a_body_only_ack_is_refused_by_a_server_started_without_the_setting(server, conn):
    incident_id = conn.execute("SELECT id FROM ops.trigger_incident('GET /e2e::x', 'critical')").fetchone()[0]
    status, body = _post(f"{server}/ops/incidents/{incident_id}/ack", b'{"reason":"chatops-ack"}', body_only=True)
    assert (status, body["error"]) == (401, "unauthorized")
    assert "v1:<timestamp>:<METHOD>" in body["hint"]
    assert conn.execute("SELECT status FROM incidents").fetchone()[0] == "open"


def test_a_body_only_ack_works_over_http_where_it_is_on(body_only_server, conn):
    server = body_only_server
    incident_id = conn.execute("SELECT id FROM ops.trigger_incident('GET /e2e::x', 'critical')").fetchone()[0]
    status, body = _post(f"{server}/ops/incidents/{incident_id}/ack", b'{"reason":"chatops-ack"}', body_only=True)
    assert (status, body["incident"]["status"]) == (200, "acknowledged")
    status, body = _post(f"{server}/ops/incidents/{incident_id}/resolve", b'{"reason":"chatops-ack"}', body_only=True)
    assert (status, body["error"]) == (401, "unauthorized")


def test_the_signed_path_is_the_raw_uri_with_its_query(server, conn):
    """gunicorn's RAW_URI, percent-encoding and query string as sent, is what a client signs."""
    conn.execute("SELECT ops.trigger_incident('GET /e2e space::x', 'critical', p_route => 'GET /e2e space')")
    status, body = _get(server, "/ops/incidents?route=GET%20%2Fe2e%20space&status=active")
    assert (status, body["count"]) == (200, 1)
    signed_for_other_query = v1_headers("GET", "/ops/incidents?status=resolved", b"")
    req = urllib.request.Request(server + "/ops/incidents?status=active", headers=signed_for_other_query)
    assert _send(req)[0] == 401


@pytest.mark.parametrize("name, value", [
    ("X-Signature", b"v1=" + "é".encode() * 32),
    ("X-Signature", b"\xff\xfe" * 32),
    ("X-Timestamp", b"4" * 400),
], ids=["utf8-signature", "binary-signature", "400-digit-timestamp"])
def test_bad_header_bytes_are_401_json_not_500(server, conn, name, value):
    """Raw bytes on the wire, as urllib would refuse to send them."""
    url = urllib.parse.urlsplit(server)
    body = b"{}"
    client = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    headers = {**v1_headers("POST", "/ops/escalation/tick", body), "Content-Type": "application/json"}
    headers[name] = value
    client.putrequest("POST", "/ops/escalation/tick")
    for k, v in headers.items():
        client.putheader(k, v)
    client.putheader("Content-Length", str(len(body)))
    client.endheaders(body)
    resp = client.getresponse()
    answer = json.loads(resp.read())
    client.close()
    assert (resp.status, answer["ok"], answer["error"]) == (401, False, "unauthorized")
    assert conn.execute("SELECT count(*) FROM ops.tick_log").fetchone()[0] == 0


def test_the_tick_limit_holds_across_the_server(server):
    codes = [_post(f"{server}/ops/escalation/tick", b"{}")[0] for _ in range(11)]
    assert codes == [200] * 10 + [429]


def test_a_forced_tick_delivers_one_slack_message(server, conn, db_url):
    """The issue's check: with the API and a dispatcher running, a signed tick (dry_run off)
    delivers one Slack-shaped message, with the event's hash as dedup key."""
    from fake_slack import FakeSlack
    from test_dispatcher import start

    slack = FakeSlack().start()
    dispatcher = start(db_url, "--worker", "e2e")
    try:
        conn.execute("SELECT ops.set_setting('slack_webhook_url', %s, 'test')", (slack.url(),))
        conn.execute("SELECT ops.trigger_incident('GET /e2e::slo_violation', 'critical', p_now => now() - interval '6 min')")
        status, body = _post(f"{server}/ops/escalation/tick", b"{}")
        assert (status, body["dryRun"], body["escalationsCount"]) == (200, False, 1)
        [msg] = slack.wait_for(1)
        time.sleep(0.3)
        assert len(slack.messages(answered=None)) == 1, "exactly one message"
    finally:
        dispatcher.terminate()
        dispatcher.wait(10)
        slack.stop()
    assert msg.body["text"] == "[CRITICAL] GET /e2e::slo_violation escalated to level 1"
    assert msg.body["blocks"][0]["type"] == "section"
    assert msg.dedup_key == msg.body["dedup_key"] == conn.execute("SELECT unique_hash FROM escalation_events").fetchone()[0]


@pytest.mark.slow
def test_slack_bodies_that_are_not_utf8_leave_no_traceback_in_the_server_log(db_url, tmp_path):
    """An anonymous caller posting bytes that are not UTF-8 to the Slack endpoint gets a 401 JSON
    every time, until the address's failed-signature budget is spent (429), and the server writes
    no traceback for any of them."""
    log = tmp_path / "error.log"
    with serving(db_url, "--error-logfile", str(log), SLACK_SIGNING_SECRET="8f742231b10e8888abcd99yyyzzz85a5") as base:
        answers = []
        for _ in range(31):
            req = urllib.request.Request(base + "/chat/slack/commands", data=b"text=\xff", method="POST", headers={
                "Content-Type": "application/x-www-form-urlencoded", "X-Slack-Signature": "v0=" + "0" * 64,
                "X-Slack-Request-Timestamp": str(int(time.time()))})
            answers.append(_send(req))
    assert [status for status, _ in answers] == [401] * 30 + [429]
    assert {(body["ok"], body["error"]) for _, body in answers[:30]} == {(False, "unauthorized")}
    text = log.read_text()
    assert "Booting worker" in text, "the log is the server's"
    assert "Traceback" not in text and "UnicodeDecodeError" not in text, text


def _guard_from(base: str, source: str, target: str, headers: dict) -> int:
    """One GET of the guard from a client socket bound to `source` (a 127.0.0.x address)."""
    host, port = urllib.parse.urlsplit(base).hostname, urllib.parse.urlsplit(base).port
    c = http.client.HTTPConnection(host, port, timeout=30, source_address=(source, 0))
    try:
        c.request("GET", target, headers=headers)
        resp = c.getresponse()
        resp.read()
        return resp.status
    finally:
        c.close()


@pytest.mark.slow
def test_anonymous_guard_history_stays_under_its_cap_from_many_addresses(server, conn):
    """1,000 unsigned guard calls from 20 source addresses, each with a fresh route_prefix, a
    200-character User-Agent and 2 KB of CI headers (about 1.5 MB to keep), against a 1 MB
    cap: the anonymous rows kept stay under it, and every signed call's row stays."""
    from concurrent.futures import ThreadPoolExecutor

    conn.execute("SELECT ops.set_setting('guard_anonymous_history_mb', '1', 'test')")
    ci = {"User-Agent": "u" * 200, **{h: "x" * 500 for h in ("X-Commit-Sha", "X-CI-Pipeline", "X-CI-Job", "X-Git-Ref")}}

    def anonymous(k: int) -> list[int]:
        source = f"127.0.0.{2 + k % 20}"
        return [_guard_from(server, source, f"/ops/release-guard?route_prefix=GET%20/anon/{k}/{i}", ci)
                for i in range(50)]

    signed = [f"/ops/release-guard?route_prefix=GET%20/signed/{i}" for i in range(5)]
    statuses = [_guard_from(server, "127.0.0.1", t, v1_headers("GET", t, b"")) for t in signed[:2]]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for done in pool.map(anonymous, range(20)):
            statuses += done
    statuses += [_guard_from(server, "127.0.0.1", t, v1_headers("GET", t, b"")) for t in signed[2:]]
    assert statuses == [200] * 1005
    kept, live, total = conn.execute(
        "SELECT count(*), coalesce(sum(pg_column_size(e.*)), 0), (SELECT bytes FROM ops.guard_anonymous_usage)"
        " FROM ops.guard_evaluations AS e WHERE e.anonymous_bytes IS NOT NULL").fetchone()
    assert 300 < kept < 1000
    assert live <= total <= 1024 * 1024
    kept_in_full = conn.execute("SELECT route_prefix FROM ops.guard_evaluations WHERE anonymous_bytes IS NULL ORDER BY id")
    assert [r[0] for r in kept_in_full] == [f"GET /signed/{i}" for i in range(5)]
    callers = conn.execute("SELECT count(DISTINCT caller), max(length(caller)) FROM ops.guard_evaluations"
                           " WHERE anonymous_bytes IS NOT NULL").fetchone()
    assert callers == (1, 200)
    conn.execute("VACUUM ops.guard_evaluations")
    assert conn.execute("SELECT pg_total_relation_size('ops.guard_evaluations')").fetchone()[0] < 3 * 1024 * 1024
