"""`make run` in the background (tmux, a systemd unit): a SIGTERM or SIGINT to its pid stops
everything it started within 5 s: no process of its group is left, and the API, the Slack
stand-in and the embedded cluster's ports are free (run.sh stops the cluster it started)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from localpg import Cluster, make_temp_datadir

ROOT = Path(__file__).resolve().parents[1]
STOP_WITHIN_S = 5.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _group_alive(pgid: int) -> bool:
    """A live process left in the group. A zombie is not one: it has exited and holds nothing;
    it only waits for init to reap it (a gunicorn worker whose master went first on a Ctrl-C
    to the whole group is reparented to init, which this machine's reaps lazily)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        state, group = fields[0], int(fields[2])
        if group == pgid and state not in ("Z", "X"):
            return True
    return False


@pytest.fixture(scope="module")
def datadir():
    """One cluster directory for the module: the first run migrates it, later runs reuse it."""
    path = make_temp_datadir("opsguard-run-")
    yield path
    Cluster(datadir=path, port=0).destroy()


@pytest.fixture
def started(datadir, tmp_path):
    """Starts the command as its own process group (as tmux or systemd would) and waits until
    /healthz answers; yields (process, ports); kills whatever the test left behind."""
    procs = []

    def start(cmd: list[str], **extra_env: str):
        ports = {"PORT": _free_port(), "OPSGUARD_PGPORT": _free_port(), "SLACK_PORT": _free_port()}
        env = {**os.environ, **{k: str(v) for k, v in ports.items()}, "OPSGUARD_PGDATA": str(datadir), **extra_env}
        log = (tmp_path / "run.log").open("w")
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(proc)
        deadline = time.monotonic() + 180  # the first run applies every migration
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{ports['PORT']}/healthz", timeout=1)
                break
            except urllib.error.HTTPError:  # any answer (a 503 names what is unhealthy): up
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "run.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()
                time.sleep(0.2)
        # the dispatcher and the Slack stand-in start after the API answers: stop a fully started run
        for _ in range(100):
            if "opsguard is running" in (tmp_path / "run.log").read_text():
                break
            time.sleep(0.1)
        return proc, ports

    yield start
    for proc in procs:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _stop_and_check(proc, ports, sig, *, group: bool = False) -> float:
    t0 = time.monotonic()
    (os.killpg if group else os.kill)(proc.pid, sig)
    try:
        proc.wait(timeout=STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {STOP_WITHIN_S} s after {sig.name}")
    took = time.monotonic() - t0
    time.sleep(0.2)  # a straggler that outlived its parent would still hold the group
    assert not _group_alive(proc.pid), subprocess.run(
        ["ps", "-o", "pid,cmd", "-g", str(proc.pid)], capture_output=True, text=True).stdout
    for name, port in ports.items():
        assert not _listening(port), f"{name} {port} is still taken"
    print(f"{sig.name} to {'the group' if group else 'the pid'}: stopped in {took:.2f} s")
    return took


@pytest.mark.slow
def test_sigterm_to_make_run_stops_everything(started):
    proc, ports = started(["make", "--no-print-directory", "run"])
    _stop_and_check(proc, ports, signal.SIGTERM)


@pytest.mark.slow
def test_sigint_to_make_run_stops_everything(started):
    """GNU make passes SIGTERM on to its recipe but not SIGINT (it waits for the recipe): run.sh
    has to notice the SIGINT its parent make is handling."""
    proc, ports = started(["make", "--no-print-directory", "run"])
    _stop_and_check(proc, ports, signal.SIGINT)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_run_sh_stops_everything(started, sig):
    proc, ports = started(["bash", "scripts/run.sh"])
    _stop_and_check(proc, ports, sig)


@pytest.mark.slow
def test_ctrl_c_in_a_terminal_stops_everything(started):
    """Ctrl-C (tmux send-keys C-c) sends SIGINT to every process of the foreground group at once."""
    proc, ports = started(["make", "--no-print-directory", "run"])
    _stop_and_check(proc, ports, signal.SIGINT, group=True)


def _tick(port: int, body: bytes, **headers: str) -> int:
    """POST /ops/escalation/tick signed body-only with make run's secret, as the smoke test signs it."""
    secret = (ROOT / ".local/hmac_secret").read_text().strip().encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/ops/escalation/tick", data=body, method="POST", headers={
        "Content-Type": "application/json", "X-Signature": hmac.new(secret, body, hashlib.sha256).hexdigest(),
        **headers})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.slow
def test_make_run_says_body_only_signatures_are_on_and_how_to_turn_them_off(started, tmp_path):
    """make run accepts the smoke test's body-only tick (make serve and the app do not, by default),
    and says so in one line of what it prints, with the way to turn it off."""
    proc, ports = started(["make", "--no-print-directory", "run"])
    [line] = [x for x in (tmp_path / "run.log").read_text().splitlines() if x.startswith("body-only:")]
    assert line.startswith("body-only: ON") and "OPS_HMAC_BODY_ONLY=off make run" in line, line
    assert _tick(ports["PORT"], b"{}") == 200
    assert _tick(ports["PORT"], b'{"a":1}', **{"X-Ops-Actor": "ops-bot"}) == 401, "never with an actor"
    _stop_and_check(proc, ports, signal.SIGTERM)

    proc, ports = started(["make", "--no-print-directory", "run"], OPS_HMAC_BODY_ONLY="off")
    [line] = [x for x in (tmp_path / "run.log").read_text().splitlines() if x.startswith("body-only:")]
    assert line.startswith("body-only: off"), line
    assert _tick(ports["PORT"], b"{}") == 401
    _stop_and_check(proc, ports, signal.SIGTERM)


def _printed_shell(log: str, after: str) -> str:
    """The `export` lines make run prints, then the line that follows the one starting `after`:
    what a newcomer pastes into another shell."""
    lines = log.splitlines()
    exports = [x for x in lines if x.startswith("export ")]
    [at] = [i for i, x in enumerate(lines) if x.startswith(after)]
    return "\n".join([*exports, lines[at + 1]])


@pytest.mark.slow
def test_make_run_prints_a_signed_slack_oncall_that_answers_who_is_on_call(started, tmp_path):
    """make run sets a demo Slack signing secret and links a demo Slack user, so the printed /oncall
    curl (signed when pasted, as Slack signs: v0 over "v0:<ts>:<body>") gets who is on call; twice
    in a row too, a second later (each paste signs afresh)."""
    proc, ports = started(["make", "--no-print-directory", "run"])
    shell = _printed_shell((tmp_path / "run.log").read_text(), "oncall:")
    answers = []
    for _ in range(2):
        res = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stderr
        answers.append(json.loads(res.stdout))
        time.sleep(1.1)  # a new second: a repeated signature is refused as a replay
    for answer in answers:
        assert answer["ok"] is True, answer
        [who] = answer["onCall"]
        assert who["schedule"] == "platform" and who["principal"] in {"dana", "eli", "fay"}, answer
        assert f"*platform*: {who['principal']} until" in answer["text"]
    # the same line with another secret is Slack's 401, so the curl really is signed
    forged = shell.replace('export SLACK_SIGNING_SECRET="', 'export SLACK_SIGNING_SECRET="x')
    res = subprocess.run(["bash", "-c", forged], capture_output=True, text=True, timeout=30)
    assert json.loads(res.stdout)["error"] == "unauthorized", res.stdout
    _stop_and_check(proc, ports, signal.SIGTERM)


@pytest.mark.slow
def test_make_run_starts_the_collector_once_a_prometheus_source_exists(started, tmp_path):
    proc, ports = started(["scripts/run.sh"])
    log = (tmp_path / "run.log").read_text()
    assert "metrics: no Prometheus source" in log
    url = next(line.split('"')[1] for line in log.splitlines() if line.startswith("export DATABASE_URL="))
    subprocess.run(["psql", "-X", "-q", url, "-c", "SELECT 1 FROM ops.set_metrics_source('GET /run', 'prometheus', "
                    "'{\"url\": \"http://127.0.0.1:9\"}', 'test')"], check=True, capture_output=True)
    _stop_and_check(proc, ports, signal.SIGTERM)
    proc, ports = started(["scripts/run.sh"])
    assert "metrics: collector every minute, log in .local/collector.log" in (tmp_path / "run.log").read_text()
    collectors = subprocess.run(["pgrep", "-g", str(proc.pid), "-f", "opsguard.collector"], capture_output=True, text=True)
    assert collectors.stdout.split(), "the collector runs in make run's group"
    _stop_and_check(proc, ports, signal.SIGTERM)  # and stops with it
