"""The connection pool, and the one way views talk to the database: call one function."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app
from psycopg import Connection
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool


def _setting(app: Flask, key: str, default: float, kind: type, low: float, high: float) -> float:
    """A pool setting from the environment (or a test config), refused at start when it is not a
    number in range, rather than read as something else or failing on the first request."""
    raw = app.config.get(key, default)
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        value = None
    if value is None or not low <= value <= high:
        raise RuntimeError(f"opsguard API: {key} must be a {'whole ' if kind is int else ''}number "
                           f"from {low:g} to {high:g}, not {raw!r}")
    return value


def make_pool(app: Flask) -> ConnectionPool:
    role = app.config.get("OPS_DB_ROLE", "opsguard_api")

    def configure(conn: Connection) -> None:
        # least privilege even when DATABASE_URL names a broader user: the API role may
        # only execute the ops.api_* functions
        if role:
            conn.execute("SELECT set_config('role', %s, false)", (role,))
        conn.execute("SET statement_timeout = '5s'")

    pool = ConnectionPool(
        app.config["DATABASE_URL"],
        min_size=1,
        # as many connections as gunicorn has threads (api/gunicorn.conf.py, OPS_THREADS)
        max_size=_setting(app, "OPS_DB_POOL_MAX", 8, int, 1, 100),
        timeout=_setting(app, "OPS_DB_TIMEOUT_S", 2.0, float, 0.1, 60),
        kwargs={"autocommit": True, "connect_timeout": 2},
        configure=configure,
        check=ConnectionPool.check_connection,  # a connection that died with the server is replaced
        # psycopg_pool replaces each lost connection with a task that retries with exponential
        # backoff (1, 2, 4, 8, 16 s ...) until reconnect_timeout (default 5 min), and counts
        # that task as a connection meanwhile: after a 15 s outage the pool sat "full" of tasks
        # asleep for up to 16 more seconds, with no room to grow, so requests kept failing
        # long after the database was back, a few at a time as each task woke. Giving a task
        # up after 2 s frees its slot; a waiting request then starts a fresh attempt at once
        # (the pool grows on demand), so reconnection follows the requests, not a timer.
        reconnect_timeout=_setting(app, "OPS_DB_RECONNECT_S", 2.0, float, 0.1, 600),
        open=False,
    )
    pool.open(wait=False)  # the API starts (and answers 503) while the database is away
    return pool


def call(sql: str, *params: Any) -> Any:
    """Run one SELECT of one API function and return its single value."""
    params = tuple(Jsonb(p) if isinstance(p, dict | list) else p for p in params)
    with current_app.extensions["opsguard_pool"].connection() as conn:
        return conn.execute(sql, params).fetchone()[0]
