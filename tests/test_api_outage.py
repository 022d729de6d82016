"""After a database outage the API recovers once and for all: the
database stops for 15 s under load, and once a request succeeds after it returns, no later
request fails for that outage. Its own cluster: the shared session cluster must not stop."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from conftest import SECRET
from localpg import Cluster, make_temp_datadir
from opsguard.app import create_app
from opsguard.migrate import apply

THREADS = 16  # twice the pool's max_size: requests queue for connections, as under real load
OUTAGE_S = 15
AFTER_S = 25  # longer than psycopg_pool's backoff reaches (1+2+4+8+16 s) across a 15 s outage


@pytest.mark.slow
def test_no_relapse_after_a_database_outage_under_load():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cluster = Cluster(datadir=make_temp_datadir(), port=port, cron_database="postgres")
    cluster.start()
    app = None
    answers: list[tuple[float, float, int]] = []  # (sent, answered, status)
    stop = threading.Event()
    try:
        cluster.psql("postgres", "CREATE DATABASE flaky")
        apply(cluster.url("flaky"))
        app = create_app({"DATABASE_URL": cluster.url("flaky"), "OPS_HMAC_SECRET": SECRET,
                          "RATELIMIT_ENABLED": False})

        def load():
            client = app.test_client()
            while not stop.is_set():
                sent = time.monotonic()
                status = client.get("/ops/release-guard").status_code
                answers.append((sent, time.monotonic(), status))

        threads = [threading.Thread(target=load) for _ in range(THREADS)]
        for t in threads:
            t.start()
        time.sleep(2)
        cluster.stop()
        time.sleep(OUTAGE_S)
        cluster.start()
        back = time.monotonic()
        time.sleep(AFTER_S)
        stop.set()
        for t in threads:
            t.join(30)
    finally:
        stop.set()
        if app:
            app.extensions["opsguard_pool"].close()
        cluster.destroy()

    assert {s for _, _, s in answers} <= {200, 503}
    assert any(s == 503 for _, t, s in answers if t < back), "the outage was not seen"
    first_ok = min(t for _, t, s in answers if t >= back and s == 200)
    assert first_ok - back < 5, f"recovered {first_ok - back:.1f} s after the database returned"
    # a request sent after that first success must not fail; one sent during the outage may
    # still be answering 503 from its wait for a connection
    late = sorted(round(t - back, 1) for sent, t, s in answers if sent > first_ok and s != 200)
    assert late == [], f"answered {len(late)} errors after recovering (s after return: {late[:10]})"
