"""What every bench part shares: the clock, signing, wrk, a gunicorn of the shipped config, a
fresh migrated database, and how a figure is written (name, measured, goal)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from localpg import REPO, Cluster
from opsguard.migrate import apply

# A figure: (what was measured, the measured value as printed, its goal or ""). A goal is
# "<= N", ">= N" or "yes"; `make bench CHECK=1` fails when a measured value misses it.
Figure = tuple[str, str, str]

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
REPEAT = 7


def sign_v1(secret: str, method: str, target: str, body: bytes, ts: int) -> dict[str, str]:
    """The headers every client sends: X-Timestamp and X-Signature v1 (README, "Calling the API")."""
    mac = hmac.new(secret.encode(), f"v1:{ts}:{method}:{target}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Timestamp": str(ts), "X-Signature": f"v1={mac}"}


WRK_THREADS = 2
# each wrk thread gets its number as `tid`, so threads can split work and make distinct requests
WRK_THREAD_IDS = """
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
"""
# wrk cannot compute an HMAC, so the signed requests are made beforehand: thread t sends
# lines t, t + threads, ... of the file, each once (a write's signature is accepted once)
WRK_SCRIPT = WRK_THREAD_IDS + """
function init(args)
  reqs, n = {}, 0
  local i = 0
  for line in io.lines("%(file)s") do
    if i %% %(threads)d == tid then
      local path, ts, sig = line:match("^(%%S+) (%%S+) (%%S+)$")
      reqs[#reqs + 1] = wrk.format("POST", path,
        {["Content-Type"] = "application/json", ["X-Timestamp"] = ts, ["X-Signature"] = sig}, "{}")
    end
    i = i + 1
  end
end
function request()
  n = n + 1
  return reqs[(n - 1) %% #reqs + 1]
end
"""


def wrk(base: str, paths: list[str], secret: str, seconds: int, requests: int = 100_000) -> tuple[float, float]:
    """Requests per second and p99 latency in ms for v1-signed POSTs of {} spread over paths,
    each signature distinct (a timestamp a second earlier per round over the paths)."""
    with tempfile.TemporaryDirectory() as tmp:
        data, script = Path(tmp, "requests.txt"), Path(tmp, "bench.lua")
        now = int(time.time())
        with data.open("w") as f:
            for i in range(requests):
                path = paths[i % len(paths)]
                h = sign_v1(secret, "POST", path, b"{}", now - i // len(paths) % 240)
                f.write(f"{path} {h['X-Timestamp']} {h['X-Signature']}\n")
        script.write_text(WRK_SCRIPT % {"file": data, "threads": WRK_THREADS})
        rps, p99 = run_wrk(script, base, seconds)
    assert rps * seconds < requests, f"wrk sent more requests than were signed ({rps:.0f}/s for {seconds} s)"
    return rps, p99


def run_wrk(script: Path, base: str, seconds: int) -> tuple[float, float]:
    """wrk with a Lua script, 16 connections: requests per second and p99 ms; every answer a 2xx."""
    out = subprocess.run(["wrk", f"-t{WRK_THREADS}", "-c16", f"-d{seconds}s", "--latency", "-s", str(script), base],
                         capture_output=True, text=True, check=True).stdout
    assert "Non-2xx" not in out, out
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()
    return rps, float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a (local) server process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_api(url: str, port: int, secret: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url, "OPS_HMAC_SECRET": secret, "PORT": str(port),
           "RATELIMIT_ENABLED": "false", "OPS_BENCH_ENDPOINTS": "1", "OPS_ACCESS_LOG": "",
           "PYTHONPATH": str(REPO / "api")}
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(REPO / "api/gunicorn.conf.py"),
                               "opsguard.app:create_app()"], env=env)
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)  # noqa: S310 - our own loopback server
            break
        except urllib.error.HTTPError:  # answering (503 names what is unhealthy): up
            break
        except OSError:
            time.sleep(0.2)
    return server


@contextlib.contextmanager
def api_server(url: str, port: int, secret: str) -> Iterator[str]:
    """gunicorn on port for the block; yields its base URL."""
    server = start_api(url, port, secret)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=15)


def free_port() -> int:
    """A port nothing listens on now: a fixed one collides with another bench on the same machine."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_db(cluster: Cluster, name: str) -> str:
    """A new migrated database on the bench cluster; its URL."""
    cluster.psql("postgres", f"CREATE DATABASE {name}")
    url = cluster.url(name)
    apply(url)
    return url


def median_pair(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The medians of (requests per second, p99 ms) over runs of wrk."""
    return statistics.median(r for r, _ in runs), statistics.median(p for _, p in runs)
