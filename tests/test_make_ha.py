"""`make ha` (scripts/run.sh ha): etcd, three Patroni nodes and make run's processes; it prints the
multi-host DATABASE_URL and PATRONICTL, make smoke passes against it, a SIGTERM stops all of it
within 10 s, and a second run finds the first one's data."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest
from localpg import RUN_AS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
STOP_WITHIN_S = 10.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _left_behind(marker: str) -> list[str]:
    """Live processes whose command line names the cluster's directory."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (cmdline.parent / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in text and state not in ("Z", "X"):
            found.append(text)
    return found


@pytest.fixture(scope="module")
def ha_dir():
    parent = Path(tempfile.mkdtemp(prefix="opsguard-make-ha-", dir="/var/tmp" if RUN_AS else None))  # noqa: S108
    parent.chmod(0o755)
    yield parent / "ha"
    shutil.rmtree(parent, ignore_errors=True)


def _run(ha_dir: Path, ports: list[int], log: Path) -> tuple[subprocess.Popen, str]:
    args = ["--dir", str(ha_dir), "--pg-ports", ",".join(map(str, ports[:3])),
            "--rest-ports", ",".join(map(str, ports[3:6])), "--etcd-ports", ",".join(map(str, ports[6:8]))]
    env = {**os.environ, "PORT": str(ports[8]), "SLACK_PORT": str(ports[9])}
    proc = subprocess.Popen(["scripts/run.sh", "ha", *args], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 240
    while "PATRONICTL=" not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)
    return proc, log.read_text()


def _stop(proc: subprocess.Popen) -> float:
    t0 = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(STOP_WITHIN_S + 20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return time.monotonic() - t0


def test_make_ha_runs_stops_within_10_s_and_reuses_its_data(ha_dir, tmp_path):
    ports = [_free_port() for _ in range(10)]
    proc, out = _run(ha_dir, ports, tmp_path / "first.log")
    try:
        url = re.search(r'export DATABASE_URL="([^"]+)"', out).group(1)
        assert url.count("127.0.0.1:") == 3 and "target_session_attrs=read-write" in url
        assert re.search(r'export OPS_HMAC_SECRET="[0-9a-f]{64}"', out)
        patronictl = re.search(r'export PATRONICTL="([^"]+)"', out).group(1)
        listed = subprocess.run([*patronictl.split(), "list"], capture_output=True, text=True, check=True).stdout
        assert listed.count("running") + listed.count("streaming") == 3 and "Leader" in listed
        with urllib.request.urlopen(f"http://127.0.0.1:{ports[8]}/healthz", timeout=5) as resp:  # noqa: S310
            assert resp.status == 200
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT ops.trigger_incident('GET /make-ha::slo_violation', 'warning')")
            assert conn.execute("SELECT ops.pg_cron_status()").fetchone()[0] == "installed"
        # make smoke's psql, curl and openssl steps against the multi-host URL
        secret = re.search(r'export OPS_HMAC_SECRET="([0-9a-f]{64})"', out).group(1)
        smoke = subprocess.run(["scripts/smoke.sh"], cwd=ROOT, capture_output=True, text=True, timeout=120, env={
            **os.environ, "HOST": f"http://127.0.0.1:{ports[8]}", "DATABASE_URL": url, "OPS_HMAC_SECRET": secret})
        assert smoke.returncode == 0 and "all six steps passed" in smoke.stdout, smoke.stdout[-2000:] + smoke.stderr
    finally:
        took = _stop(proc)
    print(f"\nmake ha stopped in {took:.1f} s")
    assert took < STOP_WITHIN_S, f"stopped in {took:.1f} s"
    assert _left_behind(str(ha_dir)) == []

    proc, out = _run(ha_dir, [_free_port() for _ in range(10)], tmp_path / "second.log")
    try:
        assert re.search(r'export DATABASE_URL="([^"]+)"', out).group(1) == url  # ports and password kept
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM ops.incidents WHERE incident_key = "
                                "'GET /make-ha::slo_violation'").fetchone()[0] == 1
    finally:
        took = _stop(proc)
    print(f"\nmake ha stopped in {took:.1f} s")
    assert took < STOP_WITHIN_S, f"stopped in {took:.1f} s"
