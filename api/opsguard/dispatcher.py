"""The notification dispatcher: delivers the outbox, at least once: channel posts to Slack webhooks,
and pages to people's contact methods (e-mail, SMS, voice, Slack DM, webhook; api/opsguard/senders/).

    python -m opsguard.dispatcher --dsn "$DATABASE_URL"        (make dispatch)

Every decision lives in SQL (ops.claim_notifications and friends in db/schema.sql): which messages are
due, where each goes now, when a failure is retried, when it is dead. This process
claims a batch (ops.claim_notifications), posts each message with its X-Dedup-Key, and
reports the batch (ops.finish_notifications). It wakes on NOTIFY ops_outbox and polls
as a fallback. Right before sending pages it asks ops.notification_still_wanted: a page whose
incident was acknowledged after the claim is reported cancelled, never sent.

Several may run at once. Claims are FOR UPDATE SKIP LOCKED and carry a lease, and a
message is only started while its lease outlasts the HTTP timeout, so two healthy
dispatchers never send one message twice. A dispatcher killed mid-delivery loses
nothing: its lease runs out and the message is sent again with the same dedup key.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
import urllib3
from psycopg.types.json import Jsonb

from . import access_log, settings
from .config import bad_configuration
from .senders import failed, sent
from .senders.email import EmailSender
from .senders.slack_dm import SlackDMSender
from .senders.twilio_sms_voice import TwilioSender
from .senders.webhook import signed_request

log = logging.getLogger("opsguard.dispatcher")

# a message is started only if it can finish this long before its lease runs out
LEASE_MARGIN_S = 1.0
IDLE_SLICE_S = 0.5  # how soon a stop request ends an idle wait
PAGES = ("email", "sms", "voice", "slack_dm", "webhook")  # channels to a person's contact method
# the senders' credentials and endpoints (settings.py), read once at start
SENDER_VARS = ("OPS_SMTP_USER", "OPS_SMTP_PASSWORD", "OPS_SMTP_CA_FILE", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN",
               "TWILIO_FROM", "OPS_TWILIO_API_BASE", "SLACK_BOT_TOKEN", "OPS_SLACK_API_BASE")


@dataclass(frozen=True)
class Claimed:
    """One row of ops.claim_notifications."""
    id: int
    claim_id: int
    dedup_key: str
    channel: str
    webhook_url: str | None
    message: dict
    lease_s: int


@dataclass
class Options:
    dsn: str
    batch: int = settings.default("OPS_DISPATCH_BATCH")
    threads: int = settings.default("OPS_DISPATCH_THREADS")
    timeout_s: float = settings.default("OPS_DISPATCH_TIMEOUT_S")
    poll_s: float = settings.default("OPS_DISPATCH_POLL_S")
    db_role: str = settings.default("OPS_DISPATCH_DB_ROLE")
    worker: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    senders: dict = field(default_factory=dict)  # SENDER_VARS -> value
    # the time claims and reports are made at (p_now); None: the database's now(). Tests play a
    # page minute by minute through the real dispatcher with it (tests/test_pager_e2e.py)
    clock: Callable[[], datetime] | None = None


class ConfigError(SystemExit):
    """A bad configuration: the dispatcher does not start."""


def _describe(exc: Exception) -> str:
    """A failure in words that never include the URL: a webhook's path is its secret."""
    if isinstance(exc, urllib3.exceptions.NewConnectionError):  # before TimeoutError: it is a subclass
        return "connection refused" if "refused" in str(exc).lower() else "could not connect"
    if isinstance(exc, urllib3.exceptions.TimeoutError):
        return "timed out"
    if isinstance(exc, urllib3.exceptions.SSLError):
        return "TLS error"
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        return "connection dropped"
    return type(exc).__name__


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:  # an HTTP date: rare for webhooks; the backoff still applies
        return None


class Dispatcher:
    def __init__(self, options: Options):
        self.o = options
        self.http = urllib3.PoolManager(
            num_pools=32, maxsize=options.threads, block=False, retries=False,
            timeout=urllib3.Timeout(total=options.timeout_s),
            headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "opsguard-dispatcher"})
        self.pool = ThreadPoolExecutor(max_workers=options.threads, thread_name_prefix="send")
        self.conn: psycopg.Connection | None = None
        env = options.senders
        self.email = EmailSender(env.get("OPS_SMTP_USER"), env.get("OPS_SMTP_PASSWORD"), options.timeout_s,
                                 env.get("OPS_SMTP_CA_FILE"))
        self.twilio = TwilioSender(env.get("TWILIO_ACCOUNT_SID"), env.get("TWILIO_AUTH_TOKEN"), env.get("TWILIO_FROM"),
                                   env.get("OPS_TWILIO_API_BASE"), options.timeout_s)
        self.slack_dm = SlackDMSender(env.get("SLACK_BOT_TOKEN"), env.get("OPS_SLACK_API_BASE"), options.timeout_s)

    # --- the database -----------------------------------------------------------------

    def connect(self) -> psycopg.Connection:
        conn = psycopg.connect(self.o.dsn, autocommit=True, connect_timeout=5)
        if self.o.db_role:  # least privilege even when the DSN names a broader user
            conn.execute("SELECT set_config('role', %s, false)", (self.o.db_role,))
        conn.execute("LISTEN ops_outbox")
        self.conn = conn
        return conn

    def check_config(self) -> None:
        """Refuse to start on a bad configuration, naming the setting."""
        problem = bad_configuration(self.conn, "dispatcher", self.o.timeout_s)
        if problem:
            raise ConfigError(problem)

    # --- one batch --------------------------------------------------------------------

    def run_once(self) -> int:
        """Claim, send and report one batch; returns how many messages it claimed."""
        started = time.monotonic()
        rows = self.claim()
        if rows:
            self.finish(self.deliver(rows, started))
        return len(rows)

    def claim(self) -> list[Claimed]:
        return [Claimed(*row) for row in self.conn.execute(
            "SELECT id, claim_id, dedup_key, channel, webhook_url, message, lease_s"
            " FROM ops.claim_notifications(%s, %s, coalesce(%s, now()))", (self.o.worker, self.o.batch, self._now())
        ).fetchall()]

    def _now(self) -> datetime | None:
        return self.o.clock() if self.o.clock else None

    def deliver(self, rows: list[Claimed], started: float) -> list[dict]:
        """Sends a claimed batch (claimed after `started`); returns one result per row."""
        # the lease started after `started`, so this deadline is on the safe side
        last_start = started + rows[0].lease_s - self.o.timeout_s - LEASE_MARGIN_S
        pages = [r.id for r in rows if r.channel in PAGES]
        wanted = {r[0] for r in self.conn.execute("SELECT ops.notification_still_wanted(%s)", (pages,))} if pages else set()
        results: dict[int, dict] = {r.id: {"outcome": "cancelled"} for r in rows
                                    if r.channel in PAGES and r.id not in wanted}
        todo = [r for r in rows if r.id not in results]
        emails = [r for r in todo if r.channel == "email"]
        batch = self.pool.submit(self._send_emails, emails, last_start) if emails else None
        for row, result in zip(others := [r for r in todo if r.channel != "email"],
                               self.pool.map(lambda r: self._send(r, last_start), others), strict=True):
            results[row.id] = result
        if batch is not None:
            results.update(batch.result())
        return [{"id": r.id, "claim": r.claim_id, **results[r.id]} for r in rows]

    def finish(self, results: list[dict]) -> dict:
        summary = self.conn.execute("SELECT ops.finish_notifications(%s, %s, coalesce(%s, now()))",
                                    (self.o.worker, Jsonb(results), self._now())).fetchone()[0]
        log.info("batch of %d: %s", len(results), summary)
        return summary

    def _send_emails(self, rows: list[Claimed], last_start: float) -> dict[int, dict]:
        """Every e-mail of the batch over one SMTP connection (per server)."""
        done = self.email.send_all([(r.webhook_url, r.dedup_key, r.message) for r in rows],
                                   lambda: time.monotonic() <= last_start)
        return {r.id: result or {"outcome": "skipped"} for r, result in zip(rows, done, strict=True)}

    def _send(self, row: Claimed, last_start: float) -> dict:
        if time.monotonic() > last_start:
            return {"outcome": "skipped"}
        try:
            return self._send_by_channel(row)
        except Exception as exc:  # one message a sender cannot handle must not stop every other page
            # the type only: an exception's text can quote an address
            log.error("message %d (%s) could not be sent: %s", row.id, row.channel, type(exc).__name__)
            return failed(time.perf_counter(), f"could not send: {type(exc).__name__}")

    def _send_by_channel(self, row: Claimed) -> dict:
        if row.channel in ("sms", "voice"):
            return self.twilio.send(row.channel, row.message)
        if row.channel == "slack_dm":
            return self.slack_dm.send(row.message)
        if row.channel == "webhook":
            body, headers = signed_request(row.webhook_url, row.message)
            return self._post(row.webhook_url, body, {"X-Dedup-Key": row.dedup_key, **headers})
        # slack (a channel post) and slack_reply (a response_url): the rendered JSON as it is
        return self._post(row.webhook_url, json.dumps(row.message).encode(), {"X-Dedup-Key": row.dedup_key})

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> dict:
        t0 = time.perf_counter()
        try:
            resp = self.http.request("POST", url, body=body, headers=headers, redirect=False)
        except urllib3.exceptions.HTTPError as exc:
            return failed(t0, _describe(exc))
        if 200 <= resp.status < 300:
            return sent(t0, status=resp.status)
        return failed(t0, f"HTTP {resp.status}: {resp.data[:200].decode('utf-8', 'replace')}", status=resp.status,
                      retry_after_s=_retry_after(resp.headers.get("Retry-After")))

    # --- the loop ---------------------------------------------------------------------

    def _idle(self, stop: threading.Event) -> None:
        """Sleep until NOTIFY ops_outbox, the next retry or lease expiry, the poll interval, or stop."""
        due_in = self.conn.execute("SELECT ops.notification_wait_s()").fetchone()[0]
        timeout = self.o.poll_s if due_in is None else min(self.o.poll_s, max(due_in, 0.01))
        deadline = time.monotonic() + timeout
        # in slices: a SIGTERM sets stop but does not interrupt the wait (make run stops within 5 s)
        while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            for _ in self.conn.notifies(timeout=min(left, IDLE_SLICE_S), stop_after=1):
                return

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                if self.conn is None or self.conn.closed:
                    self.connect()
                if self.run_once() == 0:
                    self._idle(stop)
            except psycopg.Error as exc:
                # the database went away, or this connection reached a standby (a leader demoted
                # under it: "cannot execute LISTEN during recovery", 25006): a new connection finds
                # the writable host of a multi-host DSN; claimed messages come back when their
                # lease runs out
                log.warning("database unavailable (%s %s); reconnecting in 1 s",
                            type(exc).__name__, getattr(exc, "sqlstate", None) or "")
                if self.conn is not None:
                    self.conn.close()
                stop.wait(1.0)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.http.clear()
        if self.conn is not None:
            self.conn.close()


def options_from(argv: list[str] | None) -> Options:
    """Each option from its flag, else its variable (settings.py), else the default. A bad
    variable raises SettingError; a bad flag exits through argparse."""
    env = settings.load("dispatcher", "dispatcher")
    p = argparse.ArgumentParser(prog="opsguard.dispatcher", description=__doc__.split("\n\n")[0])
    p.add_argument("--dsn", default=env["DATABASE_URL"], help="libpq URL (default: $DATABASE_URL)")
    p.add_argument("--batch", type=int, default=env["OPS_DISPATCH_BATCH"], help="messages claimed at once (1-1000)")
    p.add_argument("--threads", type=int, default=env["OPS_DISPATCH_THREADS"], help="concurrent HTTP requests")
    p.add_argument("--timeout", type=float, default=env["OPS_DISPATCH_TIMEOUT_S"],
                   help="seconds a webhook may take, connect to last byte")
    p.add_argument("--poll", type=float, default=env["OPS_DISPATCH_POLL_S"],
                   help="seconds between polls when no NOTIFY arrives")
    p.add_argument("--db-role", default=env["OPS_DISPATCH_DB_ROLE"],
                   help="role to SET after connecting ('' keeps the login role)")
    p.add_argument("--worker", help="name in the outbox and attempt log (default host:pid)")
    args = p.parse_args(argv)
    if not args.dsn:
        p.error("set DATABASE_URL or pass --dsn")
    if not 1 <= args.batch <= 1000 or args.threads < 1 or args.timeout <= 0 or args.poll <= 0:
        p.error("--batch is 1-1000; --threads, --timeout and --poll must be positive")
    options = Options(dsn=args.dsn, batch=args.batch, threads=args.threads, timeout_s=args.timeout,
                      poll_s=args.poll, db_role=args.db_role, senders={k: env[k] for k in SENDER_VARS})
    if args.worker:
        options.worker = args.worker
    return options


def main(argv: list[str] | None = None) -> int:
    try:
        options = options_from(argv)
    except settings.SettingError as exc:
        print(exc, file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s dispatcher %(levelname)s %(message)s")
    access_log.install()  # the same redaction as the API's logs: tokens in a client library's log lines
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    dispatcher = Dispatcher(options)
    try:
        dispatcher.connect()
        dispatcher.check_config()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except psycopg.Error as exc:
        print(f"opsguard dispatcher: cannot start: {exc}", file=sys.stderr)
        return 1
    log.info("%s delivering (batch %d, %d threads, timeout %.1f s)", options.worker, options.batch,
             options.threads, options.timeout_s)
    try:
        dispatcher.run(stop)
    finally:
        dispatcher.close()
    log.info("%s stopped", options.worker)
    return 0


if __name__ == "__main__":
    sys.exit(main())
