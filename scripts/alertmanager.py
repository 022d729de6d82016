"""`make alertmanager`: a real Alertmanager (make senders unpacks it into .local/) sending to the
running `make run`, configured with docs/intake.md's tested alertmanager.yml: the webhook
receiver and, for alerts labelled pagerduty="true", pagerduty_configs with `url:`. Two fresh
global integration keys are made in psql as an operator (printed once, revoked when it stops, so
a stopped demo leaves no live key behind). Prints the address it listens on and an amtool and a
curl line that push a test alert. Ctrl-C (or SIGTERM) stops it.

Environment: HOST (make run's, default http://localhost:3000), DATABASE_URL (default the local
cluster's), AM_PORT (default 9093, on 127.0.0.1), AM_DIR (its directory, default .local/alertmanager)."""

from __future__ import annotations

import getpass
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from opsguard import settings

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / ".local"
DOC = ROOT / "docs" / "intake.md"
# Debian's alertmanager reads its built-in templates (default.tmpl) from the directory it is
# started in (scripts/bootstrap.sh senders explains why), so it runs in a directory of its own
WORKDIR = Path(os.environ.get("AM_DIR") or LOCAL / "alertmanager")
DOC_MARKER = "<!-- tested: alertmanager.yml -->"
# seconds instead of the doc's 30 s group_wait, so a pushed alert shows as an incident at once
DEMO_TIMINGS = {"group_wait": "1s", "group_interval": "10s"}


def doc_config(host: str, webhook_key: str, events_key: str) -> str:
    """docs/intake.md's tested alertmanager.yml for this host and these keys, without the
    Watchdog heartbeat (it needs Prometheus's always-firing rule, which nothing runs here)."""
    text = DOC.read_text()
    m = re.compile(r"```ya?ml\n(.*?)```", re.S).search(text, text.index(DOC_MARKER))
    block = m.group(1)
    block = re.sub(r"\n  - receiver: opsguard-heartbeat\n(?:    .*\n)+", "\n", block)
    block = re.sub(r"\n- name: opsguard-heartbeat\n(?:  .*\n)+", "\n", block)
    for name, value in DEMO_TIMINGS.items():
        block = re.sub(rf"^(  {name}: )\S+", rf"\g<1>{value}", block, flags=re.M)
    block = (block.replace("https://opsguard.example.com", host.rstrip("/"))
                  .replace("<alertmanager key>", webhook_key).replace("<events_v2 key>", events_key))
    if "heartbeat" in block or re.search(r"<[a-z0-9_ ]+ key>", block):
        raise SystemExit(f"{DOC}: the tested alertmanager.yml changed shape; update {__file__}")
    return block


def psql(dsn: str, sql: str, *args: str) -> str:
    """One statement as the operator role (what an operator's psql session is), values bound by
    psql's own quoting (:'v1', :'v2', ...)."""
    cmd = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", dsn]
    for i, arg in enumerate(args, 1):
        cmd += ["-v", f"v{i}={arg}"]
    script = f"SET ROLE opsguard_operator;\n{sql};\n"
    res = subprocess.run(cmd, input=script, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"psql {dsn}: {res.stderr.strip()}\n(is make run running? DATABASE_URL as it printed)")
    return res.stdout.strip()


def make_keys(dsn: str, actor: str) -> dict[str, str]:
    """A fresh global key per receiver (names are never reused): the alerts' `service` label
    (webhook) and `component` (pagerduty_configs) choose the route."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    keys = {}
    for kind in ("alertmanager", "events_v2"):
        name = f"make-alertmanager-{kind.replace('_', '-')}-{stamp}-{os.getpid()}"
        keys[name] = psql(dsn, "SELECT ops.create_integration_key(:'v1', :'v2', :'v3')", name, kind, actor)
    return keys


def revoke(dsn: str, names: list[str], actor: str) -> None:
    for name in names:
        psql(dsn, "SELECT ops.revoke_integration_key(:'v1', :'v2')", name, actor)


def start(port: int, config: str) -> subprocess.Popen:
    exe = LOCAL / "bin" / "alertmanager"
    if not exe.exists():
        raise SystemExit(f"{exe} is missing: make senders")
    WORKDIR.mkdir(parents=True, exist_ok=True)
    for tmpl in (LOCAL / "share" / "alertmanager").glob("*.tmpl"):
        shutil.copy(tmpl, WORKDIR / tmpl.name)
    config_file = WORKDIR / "alertmanager.yml"
    config_file.touch(mode=0o600)  # it holds the keys
    config_file.chmod(0o600)
    config_file.write_text(config)
    cmd = [str(exe), "--config.file=alertmanager.yml", "--storage.path=data",
           f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"]
    return subprocess.Popen(cmd, cwd=WORKDIR)


def wait_ready(proc: subprocess.Popen, url: str) -> None:
    import urllib.request

    for _ in range(150):
        if proc.poll() is not None:
            raise SystemExit(f"alertmanager exited ({proc.returncode}); its configuration: {WORKDIR / 'alertmanager.yml'}")
        try:
            urllib.request.urlopen(url + "/-/ready", timeout=1)  # noqa: S310 (our own http:// URL)
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"alertmanager did not answer {url}/-/ready")


def check_host(host: str) -> None:
    """Alertmanager would start against a HOST that is down and only log failed posts."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(host.rstrip("/") + "/healthz", timeout=5)  # noqa: S310 (the operator's HOST)
    except urllib.error.HTTPError:
        pass  # any answer (a 503 names what is unhealthy): the API is there
    except (OSError, ValueError) as exc:
        raise SystemExit(f"opsguard does not answer at HOST={host} ({exc}): start make run, or set HOST") from None


def usage(url: str, keys: dict[str, str]) -> str:
    amtool = LOCAL / "bin" / "amtool"
    alert = ('[{"labels": {"alertname": "DemoDown", "service": "platform", "severity": "critical"}, '
             '"annotations": {"summary": "demo: platform answers 5xx"}}]')
    lines = ["", f"alertmanager is running on {url}, sending to opsguard with docs/intake.md's tested configuration",
             f"(configuration and data in {WORKDIR}; log on this terminal).", "",
             "integration keys, made just now by an operator (shown once; revoked when this stops):"]
    lines += [f"  {name}: {token}" for name, token in keys.items()]
    lines += ["", "push a test alert (the webhook receiver; its service label is the route):",
              f"  {amtool} alert add --alertmanager.url={url} alertname=DemoDown service=platform severity=critical"
              " --annotation=summary='demo: platform answers 5xx'",
              f"  curl -s -X POST {url}/api/v2/alerts -H 'Content-Type: application/json' --data '{alert}'",
              "the same through pagerduty_configs -> /v2/enqueue (component is the service label):",
              f"  {amtool} alert add --alertmanager.url={url} alertname=DemoSlow service=platform severity=warning"
              " pagerduty=true --annotation=summary='demo: platform is slow'",
              "see it:  psql \"$DATABASE_URL\" -c 'SELECT incident_key, route, severity, status FROM ops.incidents"
              " ORDER BY id DESC LIMIT 3'",
              "stop:    Ctrl-C", ""]
    return "\n".join(lines)


def main() -> int:
    # make run's API and database, as the settings module reads them (PORT, DATABASE_URL)
    host = os.environ.get("HOST") or f"http://localhost:{settings.value('PORT', 'make alertmanager')}"
    dsn = settings.value("DATABASE_URL", "make alertmanager") or subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "localpg.py"), "url"], capture_output=True, text=True,
        check=True).stdout.strip()
    port = int(os.environ.get("AM_PORT", "9093"))
    url = f"http://127.0.0.1:{port}"
    actor = getpass.getuser()
    check_host(host)
    keys = make_keys(dsn, actor)
    proc = None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        proc = start(port, doc_config(host, *keys.values()))
        wait_ready(proc, url)
        print(usage(url, keys), flush=True)
        proc.wait()
        return proc.returncode
    except KeyboardInterrupt:
        return 0
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
        revoke(dsn, list(keys), actor)
        print("alertmanager stopped; its keys are revoked.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
