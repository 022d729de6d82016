"""The collector: asks each Prometheus source (ops.metrics_sources) for the minutes not yet
collected and reports them to the database, which adds each route minute to the rollups once.

What to ask, which minutes, and how a minute is counted are decided in SQL (ops.metrics_work,
ops.record_metrics_minutes, ops.metrics_source_failed); this process only speaks HTTP to
Prometheus (`/api/v1/query_range`, step 60 s) and turns its matrices into rows. An answer that is
not Prometheus's JSON, too large or too slow is reported as the source's problem
(ops.config_problems) and nothing is written; the guard never waits on this process.

    python -m opsguard.collector [--once] [--dsn URL]     (default: $DATABASE_URL)
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.rows import dict_row, tuple_row

from . import settings
from .config import bad_configuration

MINUTE = timedelta(minutes=1)
# a run that keeps finding work (a long back-fill) stops after this many rounds and goes on next minute
MAX_ROUNDS = 12


class PrometheusError(RuntimeError):
    """A query that did not give a matrix: the message is the source's problem, one line."""

    queries = 1  # the queries sent for the work item


@dataclass
class Options:
    dsn: str
    db_role: str = settings.default("OPS_COLLECT_DB_ROLE")
    timeout_s: float = settings.default("OPS_COLLECT_TIMEOUT_S")
    max_bytes: int = settings.default("OPS_COLLECT_MAX_BYTES")
    interval_s: float = settings.default("OPS_COLLECT_INTERVAL_S")
    max_minutes: int = settings.default("OPS_COLLECT_MAX_MINUTES")


def query_range(url: str, query: str, start: datetime, end: datetime, timeout_s: float, max_bytes: int) -> list:
    """The matrix Prometheus answers for query at start..end, step 60 s; PrometheusError otherwise."""
    form = urllib.parse.urlencode({"query": query, "start": f"{start.timestamp():.0f}",
                                   "end": f"{end.timestamp():.0f}", "step": "60"}).encode()
    # http(s) only: ops.set_metrics_source validated the URL
    req = urllib.request.Request(url.rstrip("/") + "/api/v1/query_range", data=form, method="POST",  # noqa: S310
                                 headers={"Content-Type": "application/x-www-form-urlencoded",
                                          "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310
            body = resp.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        # Prometheus explains a 400/422/503 in its JSON error; anything else is shown by its status alone
        raise PrometheusError(f"HTTP {exc.code} from {exc.url}: {_error_text(exc.read(4096))}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PrometheusError(f"unreachable: {reason}") from None
    if len(body) > max_bytes:
        raise PrometheusError(f"the answer is larger than {max_bytes} bytes (OPS_COLLECT_MAX_BYTES)")
    return _matrix(body)


def _error_text(raw: bytes) -> str:
    try:
        doc = json.loads(raw)
        return f"{doc.get('errorType', '')}: {doc.get('error', '')}"[:300]
    except (ValueError, AttributeError):
        return "not Prometheus's JSON" + (" (HTML)" if raw.lstrip()[:1] == b"<" else "")


def _matrix(body: bytes) -> list:
    try:
        doc = json.loads(body)
    except ValueError:
        kind = "HTML" if body.lstrip()[:1] == b"<" else "not JSON"
        raise PrometheusError(f"the answer is not Prometheus's JSON ({kind})") from None
    if not isinstance(doc, dict) or doc.get("status") != "success":
        raise PrometheusError(f"Prometheus answered {str(doc.get('error') if isinstance(doc, dict) else doc)[:300]}")
    data = doc.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
        raise PrometheusError("the answer is not a matrix: is this a range query of counters?")
    return data["result"]


def minutes_of(matrix: list, label: str, first: datetime, last: datetime) -> dict[tuple[str, datetime], float]:
    """{(route, minute): value}: the point at T counts the minute before it (increase over [1m])."""
    out: dict[tuple[str, datetime], float] = {}
    for series in matrix:
        route = series.get("metric", {}).get(label) if isinstance(series, dict) else None
        if not isinstance(route, str):
            raise PrometheusError(f"a series has no {label} label: group the query by ({label})")
        for point in series.get("values") or ():
            try:
                at, raw = point
                value = float(raw)
                minute = datetime.fromtimestamp(float(at), UTC) - MINUTE
            except (TypeError, ValueError, OverflowError):
                raise PrometheusError("a point is not [time, \"value\"]") from None
            if not math.isfinite(value) or not first <= minute <= last:
                continue  # NaN (no rate yet) counts nothing; a point outside the asked range is not ours
            out[(route, minute)] = out.get((route, minute), 0.0) + max(value, 0.0)
    return out


def collect_source(work: dict, o: Options) -> tuple[list[dict], int]:
    """The rows of one work item, and the queries it took; PrometheusError on the first failure.
    Its queries go out at once: the minute costs the slowest of them, not their sum."""
    first, last, label = work["first_minute"], work["last_minute"], work["route_label"]
    names = [name for name in ("requests", "errors", "slow") if work[name]]

    def ask(name: str) -> dict[tuple[str, datetime], float]:
        try:
            matrix = query_range(work["url"], work[name], first + MINUTE, last + MINUTE, o.timeout_s, o.max_bytes)
            return minutes_of(matrix, label, first, last)
        except PrometheusError as exc:
            raise PrometheusError(f"{name}: {exc}") from None

    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        futures = [pool.submit(ask, name) for name in names]
    counts: dict[tuple[str, datetime], dict] = {}
    for name, future in zip(names, futures, strict=True):
        failed = future.exception()
        if failed is not None:
            failed.queries = len(names)
            raise failed
        for (route, minute), value in future.result().items():
            counts.setdefault((route, minute), {"route": route, "minute": minute.isoformat(),
                                                "requests": 0, "errors": 0, "slow": 0})[name] = value
    return list(counts.values()), len(names)


def collect_once(conn: psycopg.Connection, o: Options, now: datetime | None = None) -> list[dict]:
    """One run: every source's minutes not yet collected (a long back-fill in rounds); the reports."""
    reports = []
    for _ in range(MAX_ROUNDS):
        work = conn.execute("SELECT * FROM ops.metrics_work(coalesce(%s, now()), %s)", (now, o.max_minutes)).fetchall()
        if not work:
            break
        for item in work:
            reports.append(_collect_and_report(conn, item, o, now))
        if any(not r.get("ok") for r in reports[-len(work):]):
            break  # a failing source is asked again next run, not in a tight loop
    return reports


def _collect_and_report(conn: psycopg.Connection, item: dict, o: Options, now: datetime | None) -> dict:
    try:
        rows, queries = collect_source(item, o)
        return conn.execute("SELECT ops.record_metrics_minutes(%s, %s, %s, %s, coalesce(%s, now())) AS r",
                            (item["route_pattern"], item["last_minute"], json.dumps(rows), queries, now)
                            ).fetchone()["r"]
    except PrometheusError as exc:
        problem, queries = str(exc), exc.queries
    except psycopg.DataError as exc:  # SQLSTATE class 22: 22023 from the checks, 22P05 for a NUL
        # rows the database refuses (a route it cannot store, a count out of range): the source's problem
        problem = f"the database refused the minutes: {exc.diag.message_primary}"
    # text may carry no NUL, and what Prometheus (or something posing as it) said is shown as one line
    problem = "".join(c if c.isprintable() else " " for c in problem)
    return conn.execute("SELECT ops.metrics_source_failed(%s, %s, %s, coalesce(%s, now())) AS r",
                        (item["route_pattern"], problem, queries, now)).fetchone()["r"] | {"ok": False}


def connect(o: Options, row_factory=dict_row) -> psycopg.Connection:
    conn = psycopg.connect(o.dsn, autocommit=True, connect_timeout=5, row_factory=row_factory)
    if o.db_role:  # least privilege even when the DSN names a broader user
        conn.execute("SELECT set_config('role', %s, false)", (o.db_role,))
    return conn


def run(o: Options, stop: threading.Event, once: bool = False) -> int:
    conn = None
    backoff = 1.0
    while not stop.is_set():
        started = time.monotonic()
        try:
            conn = conn or connect(o)
            for report in collect_once(conn, o):
                print(json.dumps(report, sort_keys=True, default=str), flush=True)
            backoff = 1.0
            wait = max(o.interval_s - (time.monotonic() - started), 0.0)
        except psycopg.Error as exc:
            # the database is away: keep trying with a fresh connection; minutes missed are back-filled
            print(f"collector: database unavailable ({exc.__class__.__name__}); retrying in {backoff:.0f}s",
                  file=sys.stderr, flush=True)
            if conn is not None:
                conn.close()
            conn = None
            if once:
                return 1
            wait, backoff = backoff, min(backoff * 2, 30.0)
        if once:
            break
        stop.wait(wait)
    if conn is not None:
        conn.close()
    return 0


def options_from(argv: list[str] | None) -> tuple[Options, bool]:
    env = settings.load("collector", "collector")
    p = argparse.ArgumentParser(description="Collect request metrics from Prometheus sources every minute.")
    p.add_argument("--dsn", default=settings.value("DATABASE_URL", "collector"))
    p.add_argument("--once", action="store_true", help="collect once and exit")
    p.add_argument("--db-role", default=env["OPS_COLLECT_DB_ROLE"],
                   help="role to SET after connecting ('' keeps the login role)")
    args = p.parse_args(argv)
    if not args.dsn:
        p.error("set DATABASE_URL or pass --dsn")
    return Options(dsn=args.dsn, db_role=args.db_role, timeout_s=env["OPS_COLLECT_TIMEOUT_S"],
                   max_bytes=int(env["OPS_COLLECT_MAX_BYTES"]), interval_s=env["OPS_COLLECT_INTERVAL_S"],
                   max_minutes=int(env["OPS_COLLECT_MAX_MINUTES"])), args.once


def main(argv: list[str] | None = None) -> int:
    try:
        o, once = options_from(argv)
    except settings.SettingError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        with connect(o, row_factory=tuple_row) as conn:
            problem = bad_configuration(conn, "collector")
    except psycopg.OperationalError:
        problem = None  # the database is away: the loop waits for it
    if problem:
        print(problem, file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return run(o, stop, once=once)


if __name__ == "__main__":
    sys.exit(main())
