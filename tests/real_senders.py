"""The real alert senders for tests: Prometheus and Alertmanager from Debian's packages
(scripts/bootstrap.sh senders unpacks them into .local/), our API under the shipped gunicorn
config, and a stand-in receiver that records what the senders post.

Every process runs on a free port with its state in a temporary directory and is stopped
whatever happens (test_e2e_gunicorn.running)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from test_e2e_gunicorn import _free_port, running

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / ".local"
# Debian's alertmanager reads its built-in templates from the directory it is started in
# (scripts/bootstrap.sh senders explains why)
AM_TEMPLATES = LOCAL / "share" / "alertmanager"


def binary(name: str) -> str:
    found = LOCAL / "bin" / name
    assert found.exists(), f"{found} is missing: make senders (make test installs it)"
    return str(found)


def post_json(url: str, body, headers: dict | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get_json(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def wait_for(what: str, check: Callable[[], object], timeout: float = 30.0, every: float = 0.25):
    """Polls `check` until it returns something truthy and returns that; fails naming `what`
    and the last value seen after `timeout` seconds (wall clock: the senders run on it)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {value!r}")
        time.sleep(every)


# --- a stand-in receiver ------------------------------------------------------------------

@dataclass
class Received:
    path: str
    headers: dict
    body: object
    at: float


@dataclass
class Recorder:
    """A local HTTP server that answers `status` to every POST and records it."""

    url: str
    requests: list[Received] = field(default_factory=list)
    status: int = 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def to(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]


@contextmanager
def recorder() -> Iterator[Recorder]:
    rec = Recorder(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
            with rec.lock:
                rec.requests.append(Received(self.path, dict(self.headers.items()), body, time.monotonic()))
            self.send_response(rec.status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        httpd.shutdown()
        httpd.server_close()


# --- Alertmanager -------------------------------------------------------------------------

@dataclass
class Alertmanager:
    url: str
    proc: subprocess.Popen

    def alerts(self) -> list[dict]:
        return get_json(self.url + "/api/v2/alerts")


@contextmanager
def alertmanager(config_yaml: str) -> Iterator[Alertmanager]:
    """Alertmanager alone (no cluster gossip) with `config_yaml`, on a free port."""
    exe = binary("alertmanager")
    with tempfile.TemporaryDirectory(prefix="opsguard-am-") as tmp:
        work = Path(tmp)
        for tmpl in AM_TEMPLATES.glob("*.tmpl"):
            shutil.copy(tmpl, work / tmpl.name)
        (work / "alertmanager.yml").write_text(config_yaml)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [exe, "--config.file=alertmanager.yml", f"--storage.path={work / 'data'}",
               f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"]
        with running_in(work, cmd, url + "/-/ready") as proc:
            yield Alertmanager(url, proc)


# --- Prometheus ---------------------------------------------------------------------------

@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen
    rules_dir: Path

    def write_rules(self, name: str, text: str) -> None:
        (self.rules_dir / name).write_text(text)

    def reload(self) -> None:
        status, body = post_json(self.url + "/-/reload", None)
        assert status == 200, (status, body)

    def rule_names(self) -> set[str]:
        data = get_json(self.url + "/api/v1/rules")["data"]
        return {r["name"] for g in data["groups"] for r in g["rules"]}

    def firing(self) -> set[str]:
        data = get_json(self.url + "/api/v1/alerts")["data"]
        return {a["labels"]["alertname"] for a in data["alerts"] if a["state"] == "firing"}


@contextmanager
def prometheus(alertmanager_url: str, rule_files: dict[str, str]) -> Iterator[Prometheus]:
    """Prometheus scraping nothing, evaluating `rule_files` (name → YAML) every second and
    sending to one Alertmanager. --rules.alert.resend-delay=1s: it resends firing alerts every
    second with endsAt = now + 4 s, so Alertmanager resolves an alert ~4 s after Prometheus
    stops sending it (the default, 1 min, would make that 4 min). /-/reload rereads the rules."""
    exe = binary("prometheus")
    with tempfile.TemporaryDirectory(prefix="opsguard-prom-") as tmp:
        work = Path(tmp)
        rules = work / "rules"
        rules.mkdir()
        for name, text in rule_files.items():
            (rules / name).write_text(text)
        am_host = alertmanager_url.split("://", 1)[1]
        (work / "prometheus.yml").write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  evaluation_interval: 1s\n"
            "alerting:\n"
            "  alertmanagers:\n"
            f"  - static_configs:\n    - targets: ['{am_host}']\n"
            "rule_files:\n"
            "- rules/*.yml\n"
        )
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [exe, "--config.file=prometheus.yml", f"--storage.tsdb.path={work / 'data'}",
               f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle",
               "--rules.alert.resend-delay=1s", "--log.level=warn"]
        with running_in(work, cmd, url + "/-/ready") as proc:
            yield Prometheus(url, proc, rules)


@contextmanager
def running_in(cwd: Path, cmd: list[str], ready_url: str) -> Iterator[subprocess.Popen]:
    """test_e2e_gunicorn.running, with the process started in `cwd` (sh execs it: same pid)."""
    with running(["/bin/sh", "-c", 'cd "$0" && exec "$@"', str(cwd), *cmd], ready_url,
                 timeout=30.0, grace=10.0) as proc:
        yield proc


# --- our API ------------------------------------------------------------------------------

@contextmanager
def gunicorn(db_url: str, env: dict | None = None) -> Iterator[str]:
    """The API under the shipped gunicorn config on a free port; yields its base URL."""
    from conftest import SECRET

    port = _free_port()
    full_env = {**os.environ, "DATABASE_URL": db_url, "OPS_HMAC_SECRET": SECRET, "PORT": str(port),
                "PYTHONPATH": str(ROOT / "api"), "OPS_ACCESS_LOG": "", **(env or {})}
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "api/gunicorn.conf.py"), "opsguard.app:create_app()"]
    with running(cmd, base + "/healthz", env=full_env):
        yield base
