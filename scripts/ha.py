"""`make ha`'s database: etcd and three Patroni-managed PostgreSQL 15 nodes on loopback ports,
data under .local/ha/ (docs/ha.md). Patroni owns leadership; this script only starts the
processes, restarts a Patroni that died (as systemd does in production), and stops them all.

    python scripts/ha.py start [--dir D] [--pg-ports A,B,C] ...   # prints the multi-host DATABASE_URL
    python scripts/ha.py stop [--dir D]
    python scripts/ha.py url | info [--dir D]

As root, etcd, Patroni and PostgreSQL run as the `postgres` system user, as make run's cluster does.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from string import Template

from localpg import PG_BIN, REPO, RUN_AS, _hand_to_server_user, local_path

HERE = Path(__file__).resolve().parent / "ha"
NODES = ("node1", "node2", "node3")
STOP_GRACE_S = 4.0  # Patroni's own fast shutdown (~1 s; a sync standby waits to be released); then the rest is killed
LEADER_WAIT_S = 120.0
RESTART_EVERY_S = 2.0  # a first start runs initdb and two base backups


def parse_ports(text: str, n: int) -> list[int]:
    ports = [int(p) for p in text.split(",")]
    if len(ports) != n or not all(0 < p < 65536 for p in ports):
        raise argparse.ArgumentTypeError(f"{n} ports from 1 to 65535, comma-separated: {text!r}")
    return ports


class Ha:
    def __init__(self, args: argparse.Namespace):
        self.dir: Path = args.dir or local_path("ha")
        self.layout_file = self.dir / "layout.json"
        # a second start reuses the first one's ports and passwords: they are in the data
        saved = json.loads(self.layout_file.read_text()) if self.layout_file.exists() else {}
        self.pg_ports = saved.get("pg_ports") or parse_ports(args.pg_ports, 3)
        self.rest_ports = saved.get("rest_ports") or parse_ports(args.rest_ports, 3)
        self.etcd_ports = saved.get("etcd_ports") or parse_ports(args.etcd_ports, 2)
        self.passwords = saved.get("passwords") or {k: secrets.token_hex(16)
                                                    for k in ("superuser", "replication", "rewind")}

    # --- files --------------------------------------------------------------------------------

    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.pg_ports)
        return (f"postgresql://opsguard:{self.passwords['superuser']}@{hosts}/opsguard"
                "?target_session_attrs=read-write&connect_timeout=2")

    def config(self, node: str) -> Path:
        return self.dir / f"{node}.yml"

    def patronictl(self) -> str:
        return f"patronictl -c {self.config(NODES[0])}"

    def write_files(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        self.layout_file.write_text(json.dumps({"pg_ports": self.pg_ports, "rest_ports": self.rest_ports,
                                                "etcd_ports": self.etcd_ports, "passwords": self.passwords}))
        self.layout_file.chmod(0o600)
        post_bootstrap = self.dir / "post_bootstrap.sh"
        shutil.copyfile(HERE / "post_bootstrap.sh", post_bootstrap)
        post_bootstrap.chmod(0o755)
        template = Template((HERE / "patroni.yml").read_text())
        for i, node in enumerate(NODES):
            (self.dir / node).mkdir(exist_ok=True)
            self.config(node).write_text(template.substitute(
                name=node, rest_port=self.rest_ports[i], etcd_port=self.etcd_ports[0], pg_port=self.pg_ports[i],
                data_dir=self.dir / node / "data", socket_dir=self.dir / node, bin_dir=PG_BIN,
                pgpass=self.dir / node / "pgpass", post_bootstrap=post_bootstrap, replication_user="replicator",
                superuser_password=self.passwords["superuser"], replication_password=self.passwords["replication"],
                rewind_password=self.passwords["rewind"]))
        (self.dir / "etcd").mkdir(exist_ok=True)
        for path in [self.dir, *self.dir.iterdir()]:
            _hand_to_server_user(path) if path.is_dir() else _own(path)

    # --- processes ----------------------------------------------------------------------------

    def _spawn(self, cmd: list[str], log: Path) -> subprocess.Popen:
        env = {**os.environ, "PATH": f"{PG_BIN}:{os.environ.get('PATH', '')}"}
        user = None
        if RUN_AS:
            info = pwd.getpwnam(RUN_AS)
            user, env["HOME"] = info.pw_uid, info.pw_dir
        with log.open("ab") as out:
            return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, user=user, group=pwd.getpwnam(RUN_AS).pw_gid if RUN_AS else None,
                                    cwd=self.dir)

    def etcd(self) -> subprocess.Popen:
        client, peer = (f"http://127.0.0.1:{p}" for p in self.etcd_ports)
        return self._spawn(["etcd", "--name", "ha", "--data-dir", str(self.dir / "etcd"),
                            "--listen-client-urls", client, "--advertise-client-urls", client,
                            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                            "--initial-cluster", f"ha={peer}"], self.dir / "etcd.log")

    def patroni(self, node: str) -> subprocess.Popen:
        proc = self._spawn(["patroni", str(self.config(node))], self.dir / f"{node}.log")
        (self.dir / f"{node}.patroni.pid").write_text(str(proc.pid))
        return proc

    def supervise(self) -> int:
        """etcd and the three Patroni nodes; a Patroni that dies is started again, as systemd
        would (a leader whose Patroni is gone keeps its PostgreSQL writable: only a Patroni
        started again demotes it, or keeps it leader while its key lives). SIGTERM stops all."""
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
        signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
        etcd = self.etcd()
        nodes = {node: self.patroni(node) for node in NODES}
        started = dict.fromkeys(NODES, time.monotonic())
        while not stopping:
            for node, proc in nodes.items():
                # a node held down (its .hold file; tests/test_ha_failover.py) stays lost; one that
                # keeps exiting (a bad configuration) is started every RESTART_EVERY_S, not in a loop
                if (proc.poll() is not None and not stopping and not (self.dir / f"{node}.hold").exists()
                        and time.monotonic() - started[node] >= RESTART_EVERY_S):
                    print(f"ha: patroni {node} exited ({proc.returncode}); starting it again", flush=True)
                    nodes[node], started[node] = self.patroni(node), time.monotonic()
            if etcd.poll() is not None and not stopping:
                etcd = self.etcd()
            time.sleep(0.2)
        self._stop_nodes(list(nodes.values()))
        etcd.terminate()
        try:
            etcd.wait(1)
        except subprocess.TimeoutExpired:
            etcd.kill()
        return 0

    def _stop_nodes(self, procs: list[subprocess.Popen]) -> None:
        for proc in procs:
            proc.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        # a Patroni killed before it stopped its PostgreSQL leaves that server running
        for node in NODES:
            data = self.dir / node / "data"
            if (data / "postmaster.pid").exists():
                cmd = [str(PG_BIN / "pg_ctl"), "stop", "-m", "immediate", "-D", str(data)]
                subprocess.run(["runuser", "-u", RUN_AS, "--", *cmd] if RUN_AS else cmd,
                               capture_output=True, check=False)

    # --- start, stop, wait --------------------------------------------------------------------

    def start(self) -> int:
        for tool in ("patroni", "etcd"):
            if not shutil.which(tool):
                print(f"ha: {tool} is missing: scripts/bootstrap.sh ha installs Debian's packages", file=sys.stderr)
                return 2
        if self.supervisor_alive():
            return 0
        self.write_files()
        log = (self.dir / "supervisor.log").open("ab")
        proc = subprocess.Popen([sys.executable, __file__, "supervise", "--dir", str(self.dir)],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, "PYTHONPATH": _pythonpath()})
        (self.dir / "supervisor.pid").write_text(str(proc.pid))
        leader = self.wait_for_leader(LEADER_WAIT_S)
        if leader is None:
            print(f"ha: no leader within {LEADER_WAIT_S:.0f} s; see {self.dir}/node*.log", file=sys.stderr)
            self.stop()
            return 1
        self.wait_for_database(30.0)
        return 0

    def supervisor_alive(self) -> bool:
        pid_file = self.dir / "supervisor.pid"
        if not pid_file.exists():
            return False
        try:
            os.kill(int(pid_file.read_text()), 0)
        except (ProcessLookupError, ValueError):
            return False
        return True

    def stop(self) -> int:
        pid_file = self.dir / "supervisor.pid"
        if not self.supervisor_alive():
            return 0
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
        # the supervisor's own bound: the grace, an immediate stop of what is left, etcd's second
        deadline = time.monotonic() + STOP_GRACE_S + 3.0
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        pid_file.unlink(missing_ok=True)
        return 0

    def members(self) -> list[dict]:
        """Patroni's view of the cluster, from any node's REST API that answers."""
        for port in self.rest_ports:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/cluster", timeout=1) as resp:  # noqa: S310
                    return json.load(resp)["members"]
            except (OSError, ValueError, KeyError):
                continue
        return []

    def healthy(self) -> list[dict] | None:
        """The members when all three run with one leader and one synchronous standby (ready to
        lose the leader without losing a write), else None."""
        members = self.members()
        roles = sorted(m.get("role") for m in members if m.get("state") in ("running", "streaming"))
        return members if roles == ["leader", "replica", "sync_standby"] else None

    def postmaster_pid(self, node: str) -> int:
        return int((self.dir / node / "data" / "postmaster.pid").read_text().split()[0])

    def patroni_pid(self, node: str) -> int:
        return int((self.dir / f"{node}.patroni.pid").read_text())

    def leader(self) -> dict | None:
        return next((m for m in self.members() if m.get("role") == "leader" and m.get("state") == "running"), None)

    def wait_for_leader(self, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if leader := self.leader():
                return leader
            if not self.supervisor_alive():
                return None
            time.sleep(0.5)
        return None

    def wait_for_database(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.Error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def info(self) -> str:
        return (f"export PATRONICTL=\"{self.patronictl()}\"   # $PATRONICTL list | switchover | failover\n"
                f"ha:      etcd 127.0.0.1:{self.etcd_ports[0]}, Patroni REST {', '.join(map(str, self.rest_ports))}, "
                f"PostgreSQL {', '.join(map(str, self.pg_ports))}; data and logs in {self.dir} (docs/ha.md)")


def _own(path: Path) -> None:
    if RUN_AS:
        info = pwd.getpwnam(RUN_AS)
        os.chown(path, info.pw_uid, info.pw_gid)
    path.chmod(0o600 if path.suffix in (".yml", ".json") else path.stat().st_mode & 0o777)


def _pythonpath() -> str:
    return os.pathsep.join([str(REPO / "api"), str(REPO / "scripts"), os.environ.get("PYTHONPATH", "")])


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="ha.py", description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["start", "stop", "url", "info", "supervise"])
    p.add_argument("--dir", type=Path, help="data, configuration and logs (default .local/ha)")
    p.add_argument("--pg-ports", default="54331,54332,54333", help="the three PostgreSQL ports")
    p.add_argument("--rest-ports", default="8018,8019,8020", help="the three Patroni REST API ports")
    p.add_argument("--etcd-ports", default="2389,2390", help="etcd's client and peer ports")
    args = p.parse_args(argv)
    ha = Ha(args)
    if args.command == "start":
        status = ha.start()
        if status == 0:
            print(ha.url())
        return status
    if args.command == "stop":
        return ha.stop()
    if args.command == "supervise":
        return ha.supervise()
    print(ha.url() if args.command == "url" else ha.info())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
