"""Apply opsguard's migrations to $DATABASE_URL (yoyo-migrations); safe to run twice.

After applying, (re)install the pg_cron jobs: a migration that ran before pg_cron was
usable is recorded as applied, so the jobs are installed again on every migrate.

    python -m opsguard.migrate [DATABASE_URL]
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlencode

import psycopg
from psycopg.conninfo import conninfo_to_dict
from yoyo import get_backend, read_migrations

from . import settings

MIGRATIONS = Path(__file__).resolve().parents[2] / "db" / "migrations"


def yoyo_url(url: str) -> str:
    """yoyo wants postgresql+psycopg:// to use psycopg 3; DATABASE_URL is plain libpq. yoyo's
    own parser reads one host:port only (a multi-host URL, the way to follow a Patroni leader,
    fails with "Port could not be cast to integer value"), but it hands every query parameter to
    psycopg.connect: so libpq's own parse of the URL travels there as parameters, hosts and all."""
    if not url.startswith(("postgresql://", "postgres://")):
        return url
    params = {k: v for k, v in conninfo_to_dict(url).items() if v is not None}
    dbname = params.pop("dbname", "")
    return f"postgresql+psycopg:///{dbname}?{urlencode(params)}" if params else f"postgresql+psycopg:///{dbname}"


def migration_ids() -> list[str]:
    """The ids of every migration in db/migrations, as yoyo records them once applied."""
    return sorted(p.name[: -len(".sql")] for p in MIGRATIONS.glob("*.sql") if not p.name.endswith(".rollback.sql"))


def apply(url: str) -> list[str]:
    """Apply pending migrations; return their ids and the pg_cron installer's answer."""
    backend = get_backend(yoyo_url(url))
    migrations = read_migrations(str(MIGRATIONS))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    with psycopg.connect(url, autocommit=True) as conn:
        cron = conn.execute("SELECT ops.install_cron_jobs()").fetchone()[0]
    return [m.id for m in pending] + [f"pg_cron: {cron}"]


def main(argv: list[str]) -> int:
    url = argv[0] if argv else settings.value("DATABASE_URL", "migrate")
    if not url:
        print("DATABASE_URL is not set", file=sys.stderr)
        return 2
    for line in apply(url):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
