"""The ticker fallback: calls ops.escalation_tick() every tick_ms where pg_cron is missing.

It holds no logic of its own. Running it beside pg_cron is harmless: one tick runs at a
time per database (the other reports "busy") and escalations are idempotent.

    python -m opsguard.ticker [--once] [--dsn URL]     (default: $DATABASE_URL)
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

import psycopg

from . import settings
from .config import bad_configuration

TICK_SQL = "SELECT ops.escalation_tick(p_source => 'ticker'), ops.setting('tick_ms')::int"


def tick_once(dsn: str) -> tuple[dict, int]:
    """One tick in its own transaction: (summary, tick_ms until the next)."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        summary, tick_ms = conn.execute(TICK_SQL).fetchone()
    return summary, tick_ms


def run(dsn: str, once: bool = False, stop: threading.Event | None = None) -> int:
    stop = stop or threading.Event()
    backoff = 1.0
    while not stop.is_set():
        try:
            summary, tick_ms = tick_once(dsn)
            print(json.dumps(summary, sort_keys=True), flush=True)
            backoff = 1.0
            wait = tick_ms / 1000.0
        except psycopg.Error as exc:
            # the database is away, or the host reached is a standby (25006 on a demoted leader):
            # keep trying, never exit, so ticks resume when it returns or a new leader is promoted
            print(f"ticker: database unavailable ({exc.__class__.__name__}); retrying in {backoff:.0f}s",
                  file=sys.stderr, flush=True)
            if once:
                return 1
            # at most 5 s: a failover is over within seconds, and a tick must follow it
            wait, backoff = backoff, min(backoff * 2, 5.0)
        if once:
            return 0
        stop.wait(wait)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Call ops.escalation_tick() every tick_ms.")
    parser.add_argument("--dsn", default=settings.value("DATABASE_URL", "ticker"))
    parser.add_argument("--once", action="store_true", help="tick once and exit")
    args = parser.parse_args(argv)
    if not args.dsn:
        parser.error("set DATABASE_URL or pass --dsn")
    try:
        with psycopg.connect(args.dsn, autocommit=True, connect_timeout=5) as conn:
            problem = bad_configuration(conn, "ticker")
    except psycopg.OperationalError:
        problem = None  # the database is away: the loop below waits for it
    if problem:
        print(problem, file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return run(args.dsn, once=args.once, stop=stop)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
