"""Every client follows the writable server by itself (docs/ha.md, "What a client must set"): a
primary and a streaming standby made with pg_basebackup stand in for a Patroni cluster, and the
standby's promotion for a failover. A client that lands on the standby answers 503 JSON with
Retry-After and keeps running; a multi-host URL with target_session_attrs=read-write finds the
writable one, before and after the promotion."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from conftest import SECRET, Api
from fake_slack import FakeSlack
from localpg import PG_BIN, SUPERUSER, Cluster, _as_server_user, _hand_to_server_user, make_temp_datadir
from opsguard import ticker
from opsguard.app import create_app
from opsguard.dispatcher import Dispatcher, Options
from opsguard.migrate import apply

DB = "opsguard"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Pair:
    primary: Cluster
    standby: Cluster

    def url(self, *clusters: Cluster) -> str:
        """A multi-host URL over clusters, in that order, that only settles on a writable one."""
        hosts = ",".join(f"127.0.0.1:{c.port}" for c in clusters)
        return f"postgresql://{SUPERUSER}@{hosts}/{DB}?target_session_attrs=read-write&connect_timeout=2"

    def promote(self) -> None:
        subprocess.run(_as_server_user([str(PG_BIN / "pg_ctl"), "promote", "-w", "-D", str(self.standby.datadir)]),
                       check=True, stdout=subprocess.DEVNULL)


def _standby_of(primary: Cluster) -> Cluster:
    standby = Cluster(datadir=make_temp_datadir(), port=_free_port(), cron_database=DB)
    standby.datadir.mkdir()
    _hand_to_server_user(standby.datadir)
    # a fast checkpoint: a spread one waits up to checkpoint_timeout before the copy starts
    subprocess.run(_as_server_user([str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
                                    "-U", SUPERUSER, "-D", str(standby.datadir), "-R", "--checkpoint=fast"]),
                   check=True, stdout=subprocess.DEVNULL)
    standby.start()
    return standby


def _make_pair() -> Iterator[Pair]:
    primary = Cluster(datadir=make_temp_datadir(), port=_free_port(), cron_database=DB,
                      extra_options={"fsync": "off", "full_page_writes": "off"})
    primary.start()
    standby = None
    try:
        apply(primary.url(DB))
        standby = _standby_of(primary)
        yield Pair(primary, standby)
    finally:
        if standby:
            standby.destroy()
        primary.destroy()


@pytest.fixture(scope="module")
def standing_pair() -> Iterator[Pair]:
    """Never promoted: shared by the tests that only read it or write through its primary."""
    yield from _make_pair()


@pytest.fixture
def pair() -> Iterator[Pair]:
    """Its own, for a test that stops the primary and promotes the standby."""
    yield from _make_pair()


def _api(url: str, openapi_spec) -> tuple:
    app = create_app({"DATABASE_URL": url, "OPS_HMAC_SECRET": SECRET, "TESTING": True, "RATELIMIT_ENABLED": False})
    return app, Api(app.test_client(), openapi_spec)


def _incidents(url: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT incident_key FROM ops.incidents")}


def test_a_write_that_reaches_a_standby_answers_503_with_retry_after_and_changes_nothing(standing_pair,
                                                                                        openapi_spec):
    pair = standing_pair
    app, api = _api(pair.standby.url(DB), openapi_spec)
    try:
        resp = api.post("/ops/incidents", {"incident_key": "GET /a::slo_violation", "severity": "critical"})
        assert resp.status_code == 503, resp.get_json()
        assert resp.get_json()["error"] == "database_unavailable" and resp.get_json()["sqlstate"] == "25006"
        assert resp.headers["Retry-After"] == "1"
        # the guard writes its evaluation: on a standby it fails closed, in both of its shapes
        assert api.get("/ops/release-guard").status_code == 503
        always = api.get("/ops/release-guard", query={"always200": "1"})
        assert always.status_code == 200 and always.get_json()["ok"] is False
    finally:
        app.extensions["opsguard_pool"].close()
    assert "GET /a::slo_violation" not in _incidents(pair.primary.url(DB))


def test_a_multi_host_url_skips_the_standby_for_the_api_migrate_and_the_ticker(standing_pair, openapi_spec):
    pair = standing_pair
    url = pair.url(pair.standby, pair.primary)
    assert apply(url)[-1].startswith("pg_cron: installed")  # nothing pending; yoyo found the primary
    app, api = _api(url, openapi_spec)
    try:
        resp = api.post("/ops/incidents", {"incident_key": "GET /b::slo_violation", "severity": "critical"})
        assert resp.status_code in (200, 201), resp.get_json()
    finally:
        app.extensions["opsguard_pool"].close()
    assert ticker.run(url, once=True) == 0
    assert "GET /b::slo_violation" in _incidents(pair.primary.url(DB))


def test_the_ticker_reports_a_standby_as_unavailable_instead_of_dying(standing_pair, capsys):
    assert ticker.run(standing_pair.standby.url(DB), once=True) == 1
    assert "ticker: database unavailable (ReadOnlySqlTransaction)" in capsys.readouterr().err


class CountingDispatcher(Dispatcher):
    def __init__(self, options: Options):
        super().__init__(options)
        self.connects = 0

    def connect(self):
        self.connects += 1
        return super().connect()


def _until(what, timeout: float = 15.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while not (value := what()):
        assert time.monotonic() < deadline, "not within the deadline"
        time.sleep(step)
    return value


def test_the_dispatcher_keeps_running_on_a_standby_and_delivers_once_it_is_promoted(pair):
    slack = FakeSlack().start()
    with psycopg.connect(pair.primary.url(DB), autocommit=True) as conn:
        conn.execute("SELECT ops.set_setting('slack_webhook_url', %s, 'test')", (slack.url("/hooks/ha"),))
        conn.execute("SELECT ops.trigger_incident('GET /c::slo_violation', 'critical', NULL, NULL, 'ops-bot', "
                     "now() - interval '1 hour')")
        conn.execute("SELECT ops.escalation_tick(now())")
        lsn = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    with psycopg.connect(pair.standby.url(DB), autocommit=True) as conn:
        _until(lambda: conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0])
    pair.primary.stop()
    dispatcher = CountingDispatcher(Options(dsn=pair.standby.url(DB), timeout_s=1.0, poll_s=0.2, worker="ha"))
    stop = threading.Event()
    loop = threading.Thread(target=dispatcher.run, args=(stop,))
    loop.start()
    try:
        # LISTEN on a standby fails (25006): the loop reconnects instead of ending
        _until(lambda: dispatcher.connects >= 2 or not loop.is_alive())
        assert loop.is_alive() and slack.messages() == []
        pair.promote()
        [msg] = _until(slack.messages)
        assert msg.path == "/hooks/ha" and msg.body["text"].startswith("[CRITICAL] GET /c::slo_violation")
    finally:
        stop.set()
        loop.join(10)
        dispatcher.close()
        slack.stop()


def _timed(api: Api, body: dict) -> tuple[int, float, dict, str | None]:
    t0 = time.monotonic()
    resp = api.post("/ops/incidents", body)
    return resp.status_code, time.monotonic() - t0, resp.get_json(), resp.headers.get("Retry-After")


def test_the_api_follows_a_promoted_standby_within_seconds_and_loses_no_acknowledged_write(pair, openapi_spec):
    app, api = _api(pair.url(pair.primary, pair.standby), openapi_spec)
    acknowledged, answers = set(), []
    try:
        for i in range(3):
            key = f"GET /before{i}::slo_violation"
            assert _timed(api, {"incident_key": key, "severity": "warning"})[0] in (200, 201)
            acknowledged.add(key)
        pair.primary.stop()  # a fast shutdown: sessions are ended (57P01), new ones refused
        for i in range(3):
            answers.append(_timed(api, {"incident_key": f"GET /down{i}::slo_violation", "severity": "warning"}))
        pair.promote()
        promoted = time.monotonic()
        for i in range(200):
            key = f"GET /after{i}::slo_violation"
            status, took, body, retry = _timed(api, {"incident_key": key, "severity": "warning"})
            answers.append((status, took, body, retry))
            if status in (200, 201):
                acknowledged.add(key)
                break
        recovered = time.monotonic() - promoted
    finally:
        app.extensions["opsguard_pool"].close()
    failures = [(s, b.get("error"), r) for s, _, b, r in answers if s not in (200, 201)]
    assert failures and set(failures) == {(503, "database_unavailable", "1")}, failures
    assert max(took for _, took, _, _ in answers) < 10
    assert recovered < 5, f"first write {recovered:.1f} s after the promotion"
    assert acknowledged <= _incidents(pair.standby.url(DB))


def test_pg_cron_runs_on_no_standby_and_starts_on_the_promoted_one_without_a_restart(pair):
    launcher = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_cron launcher'"
    with psycopg.connect(pair.primary.url(DB), autocommit=True) as conn:
        assert _until(lambda: conn.execute(launcher).fetchone()[0]) == 1
    with psycopg.connect(pair.standby.url(DB), autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
        assert conn.execute(launcher).fetchone()[0] == 0
        jobs = {r[0] for r in conn.execute("SELECT jobname FROM cron.job")}
        assert "opsguard-escalation-tick" in jobs  # cron.job is replicated: the jobs are there, not run
    pair.primary.stop()
    pair.promote()
    with psycopg.connect(pair.standby.url(DB), autocommit=True) as conn:
        assert _until(lambda: conn.execute(launcher).fetchone()[0]) == 1
