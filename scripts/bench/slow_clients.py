"""The API's latency while slow clients hold connections (also the crowd
tests/test_slow_clients.py uses): p99 of signed and open requests while 200 idle clients and 200
clients sending a byte a second (half of them inside the request head, half inside the body)
are connected, beside the p99 of the same requests with nobody else connected, measured in turns
in the same run (goal: ratio <= 3)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from localpg import Cluster

from bench.common import Figure, api_server, fresh_db, sign_v1

IDLE, TRICKLING = 200, 200
PARTIAL_HEAD = b"POST /ops/escalation/tick HTTP/1.1\r\nHost: opsguard\r\nX-Slow: "
PARTIAL_BODY = (b"POST /ops/escalation/tick HTTP/1.1\r\nHost: opsguard\r\nContent-Type: application/json\r\n"
                b"Content-Length: 4096\r\n\r\n{\"pad\": \"")


class SlowCrowd:
    """`idle` connections that send nothing and `trickling` ones that send a byte a second, to
    one server; close() closes every socket it opened."""

    def __init__(self, host: str, port: int, idle: int = IDLE, trickling: int = TRICKLING):
        self.idle: list[socket.socket] = []
        self.trickling: list[socket.socket] = []
        self.cut_off = 0  # trickling connections the server closed
        self._stop = threading.Event()
        try:
            for _ in range(idle):
                self.idle.append(socket.create_connection((host, port), timeout=10))
            for i in range(trickling):
                s = socket.create_connection((host, port), timeout=10)
                self.trickling.append(s)
                s.sendall(PARTIAL_HEAD if i % 2 else PARTIAL_BODY)
                s.setblocking(False)
        except BaseException:
            self.close()
            raise
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()

    def _trickle(self) -> None:
        alive = list(self.trickling)
        while alive and not self._stop.wait(1.0):
            for s in list(alive):
                try:
                    s.send(b"a")
                except OSError:  # the server cut it off (or answered 408 and closed)
                    alive.remove(s)
                    self.cut_off += 1

    def close(self) -> None:
        self._stop.set()
        if getattr(self, "_thread", None) is not None:
            self._thread.join(timeout=5)
        for s in self.idle + self.trickling:
            s.close()


@contextmanager
def slow_crowd(host: str, port: int, idle: int = IDLE, trickling: int = TRICKLING) -> Iterator[SlowCrowd]:
    crowd = SlowCrowd(host, port, idle, trickling)
    try:
        yield crowd
    finally:
        crowd.close()


def _timed(port: int, method: str, path: str, body: bytes, headers: dict) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        t0 = time.perf_counter()
        conn.request(method, path, body=body or None, headers=headers)
        resp = conn.getresponse()
        resp.read()
        took = (time.perf_counter() - t0) * 1000
    finally:
        conn.close()
    assert resp.status in (200, 409), (method, path, resp.status)
    return took


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def bench(port: int, sign, requests_per_turn: int = 50, turns: int = 8) -> list[Figure]:
    """`sign(method, target, body)` gives v1 headers. A new connection per request, as CI's curl
    and most senders make them; quiet and crowded turns alternate, so drift hits both alike."""
    sent = [0]

    def one() -> float:
        sent[0] += 1
        if sent[0] % 2:
            return _timed(port, "GET", "/ops/release-guard", b"", {})
        body = json.dumps({"n": sent[0]}).encode()
        return _timed(port, "POST", "/bench/select1", body,
                      {"Content-Type": "application/json", **sign("POST", "/bench/select1", body)})

    quiet, crowded = [], []
    for _ in range(turns):
        quiet += [one() for _ in range(requests_per_turn)]
        with slow_crowd("127.0.0.1", port):
            time.sleep(2)  # every trickling client has sent a byte or two
            crowded += [one() for _ in range(requests_per_turn)]
    q, c = p99(quiet), p99(crowded)
    return [
        ("HTTP: signed + open requests, quiet, p99 (ms)", f"{q:.2f}", ""),
        (f"HTTP: same with {IDLE} idle + {TRICKLING} byte-a-second clients, p99 (ms)", f"{c:.2f}", ""),
        ("HTTP: p99 with slow clients / quiet", f"{c / q:.2f}", "<= 3"),
    ]


def bench_slow_clients(cluster: Cluster) -> list[Figure]:
    """A database of its own on the bench cluster and the API under the shipped gunicorn config."""
    url = fresh_db(cluster, "bench_slow_clients")
    port, secret = int(os.environ.get("OPSGUARD_BENCH_SLOW_PORT", "54398")), "bench-secret"  # noqa: S105 - loopback
    with api_server(url, port, secret):
        return bench(port, lambda method, target, body: sign_v1(secret, method, target, body, int(time.time())))
