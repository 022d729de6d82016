"""A throwaway PostgreSQL 15 cluster with pg_cron preloaded, for `make run` and the tests.

PostgreSQL refuses to run as root, so when we are root the server processes run as
the `postgres` system user, in a data directory that user owns. The directory sits
under the repository when `postgres` can reach it there, and under /var/tmp when it
cannot (a fresh clone in a root-only temp folder, as CI makes one).

    python scripts/localpg.py start   # init if needed, start, print DATABASE_URL
    python scripts/localpg.py stop
    python scripts/localpg.py url
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from opsguard import settings

PG_BIN = Path(settings.value("OPSGUARD_PG_BIN", "localpg"))
REPO = Path(__file__).resolve().parent.parent
SUPERUSER = "opsguard"
IS_ROOT = os.geteuid() == 0
RUN_AS = "postgres" if IS_ROOT else None


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", RUN_AS, "--", *cmd] if RUN_AS else cmd


def _server_user_can_reach(path: Path) -> bool:
    if not RUN_AS:
        return True
    probe = subprocess.run(
        ["runuser", "-u", RUN_AS, "--", "test", "-x", str(path)], capture_output=True
    )
    return probe.returncode == 0


def _hand_to_server_user(path: Path) -> None:
    if RUN_AS:
        info = pwd.getpwnam(RUN_AS)
        os.chown(path, info.pw_uid, info.pw_gid)
    path.chmod(0o700)


def default_datadir() -> Path:
    """The embedded cluster's data directory for this checkout."""
    if env := settings.value("OPSGUARD_PGDATA", "localpg"):
        return Path(env)
    return local_path("pgdata")


def local_path(name: str) -> Path:
    """.local/<name> in this checkout, or a place outside it when the server user cannot reach it."""
    local = REPO / ".local"
    local.mkdir(exist_ok=True)
    if not RUN_AS:
        return local / name
    local.chmod(0o755)
    if _server_user_can_reach(local):
        return local / name
    tag = hashlib.sha256(str(REPO).encode()).hexdigest()[:12]
    # a fixed, predictable place the postgres user can reach; the data dir itself is 0700
    return Path("/var/tmp") / f"opsguard-{tag}" / name  # noqa: S108


def make_temp_datadir(prefix: str = "opsguard-test-") -> Path:
    """A fresh directory the server user owns (pytest's tmp dirs are root-only)."""
    # mkdtemp under /var/tmp: unique and private, and reachable by the postgres user
    parent = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp" if RUN_AS else None))  # noqa: S108
    parent.chmod(0o755)
    return parent / "pgdata"


@dataclass
class Cluster:
    datadir: Path
    port: int
    cron_database: str = "opsguard"
    extra_options: dict[str, str] = field(default_factory=dict)

    @property
    def socket_dir(self) -> Path:
        return self.datadir

    def url(self, dbname: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def _run(self, cmd: list[str], **kw) -> subprocess.CompletedProcess:
        return subprocess.run(_as_server_user(cmd), check=True, **kw)

    def initialized(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def init(self) -> None:
        if self.initialized():
            return
        self.datadir.parent.mkdir(parents=True, exist_ok=True)
        self.datadir.mkdir(exist_ok=True)
        _hand_to_server_user(self.datadir)
        self._run(
            [
                str(PG_BIN / "initdb"),
                "-D", str(self.datadir),
                "-U", SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            stdout=subprocess.DEVNULL,
        )

    def options(self) -> dict[str, str]:
        opts = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "timezone": "UTC",
            "log_timezone": "UTC",
            "shared_preload_libraries": "pg_cron",
            "cron.database_name": self.cron_database,
            # background workers: no libpq loopback connection, which password auth would refuse
            "cron.use_background_workers": "on",
            "cron.timezone": "UTC",
            "max_worker_processes": "32",
            "max_connections": "200",
        }
        opts.update(self.extra_options)
        return opts

    def running(self) -> bool:
        res = subprocess.run(
            _as_server_user([str(PG_BIN / "pg_ctl"), "status", "-D", str(self.datadir)]),
            capture_output=True,
        )
        return res.returncode == 0

    def start(self) -> None:
        self.init()
        if self.running():
            return
        opts = " ".join(f"-c {k}={v}" for k, v in self.options().items())
        log = self.datadir / "server.log"
        self._run(
            [str(PG_BIN / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.datadir),
             "-l", str(log), "-o", opts],
            stdout=subprocess.DEVNULL,
        )
        self.ensure_database(self.cron_database)

    def stop(self) -> None:
        if self.initialized() and self.running():
            self._run(
                [str(PG_BIN / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.datadir)],
                stdout=subprocess.DEVNULL,
            )

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.datadir.parent, ignore_errors=True)

    def psql(self, dbname: str, sql: str) -> str:
        res = subprocess.run(
            ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", self.url(dbname), "-c", sql],
            check=True, capture_output=True, text=True,
        )
        return res.stdout.strip()

    def ensure_database(self, dbname: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def embedded() -> Cluster:
    return Cluster(
        datadir=default_datadir(),
        port=settings.value("OPSGUARD_PGPORT", "localpg"),
        cron_database=settings.value("OPSGUARD_DB", "localpg"),
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "url", "status", "datadir"])
    args = parser.parse_args(argv)
    try:
        cluster = embedded()
    except settings.SettingError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.action == "start":
        cluster.start()
        print(cluster.url(cluster.cron_database))
    elif args.action == "stop":
        cluster.stop()
    elif args.action == "url":
        print(cluster.url(cluster.cron_database))
    elif args.action == "datadir":
        print(cluster.datadir)
    else:
        print("running" if cluster.running() else "stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
