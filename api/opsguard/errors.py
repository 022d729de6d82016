"""SQLSTATE -> HTTP, in one place (PostgREST's errors table is the model), and JSON for
every error Flask itself raises. Every error body is {"ok": false, "error": <code>, ...}."""

from __future__ import annotations

import logging

import psycopg
from flask import Flask, g, jsonify
from psycopg_pool import PoolTimeout
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

# exact SQLSTATEs first, then their two-character class
SQLSTATE_HTTP: dict[str, tuple[int, str]] = {
    "22P02": (400, "invalid_input"),  # invalid_text_representation: a bad uuid
    "23505": (409, "conflict"),  # unique_violation
    "23514": (400, "invalid_input"),  # check_violation
    "28000": (401, "unauthorized"),  # invalid_authorization_specification: a replayed signature
    "42501": (403, "forbidden"),  # insufficient_privilege: RBAC said no
    "55000": (409, "conflict"),  # object_not_in_prerequisite_state: e.g. ack of a resolved incident
    "57014": (503, "database_unavailable"),  # query_canceled: statement timeout
    # read_only_sql_transaction: a connection that reached a standby (a leader demoted under it, a
    # proxy that sent it to a replica); the leader is elsewhere, and the retry finds it
    "25006": (503, "database_unavailable"),
    "P0002": (404, "not_found"),  # no_data_found
    "OG410": (410, "gone"),  # opsguard's own: a page token already used or expired
    "40001": (503, "database_unavailable"),  # serialization_failure: retry
    "40P01": (503, "database_unavailable"),  # deadlock_detected: retry
}
SQLSTATE_CLASS_HTTP: dict[str, tuple[int, str]] = {
    "22": (400, "invalid_input"),  # data exceptions: NULLs, bad values, out of range
    "08": (503, "database_unavailable"),  # connection exceptions
    "53": (503, "database_unavailable"),  # insufficient resources
    "57": (503, "database_unavailable"),  # operator intervention (shutdown)
    "40": (503, "database_unavailable"),  # transaction rollback: the same request may succeed again
    # program limits: input too complex for the server (JSON nested beyond max_stack_depth)
    "54": (400, "invalid_input"),
}

# seconds a client is told to wait on a 503 of the database: a Patroni switchover completes in a
# few seconds and a failover within its ttl (docs/ha.md), so coming back in one is neither too
# eager nor too slow; the answer is set by limits.py, after flask-limiter's headers
DATABASE_RETRY_AFTER_S = "1"


class ApiError(Exception):
    """An error the API answers directly (bad signature, malformed JSON)."""

    def __init__(self, status: int, code: str, message: str, hint: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.hint = status, code, message, hint


def error_response(status: int, code: str, message: str, **extra):
    body = {"ok": False, "error": code, "message": message, **{k: v for k, v in extra.items() if v}}
    return jsonify(body), status


def database_unavailable() -> tuple[int, str]:
    """The answer to a database that cannot serve the request now; it carries Retry-After."""
    g.retry_after = DATABASE_RETRY_AFTER_S
    return 503, "database_unavailable"


def status_of(exc: psycopg.Error) -> tuple[int, str]:
    """The HTTP status and error code of a database error, from the tables above: every view
    that answers in its own shape (PagerDuty's) starts from these, so a SQLSTATE means one thing."""
    status, code = _status_of(exc)
    return database_unavailable() if status == 503 else (status, code)


def _status_of(exc: psycopg.Error) -> tuple[int, str]:
    state = getattr(exc, "sqlstate", None)
    if state is None and isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        # no SQLSTATE and a connection-level error: the connection itself failed
        return 503, "database_unavailable"
    if state is None:
        # raised by psycopg before anything was sent (a NUL byte in a text parameter): the
        # request is at fault, and calling it an outage would page someone for nothing
        return 400, "invalid_input"
    return SQLSTATE_HTTP.get(state) or SQLSTATE_CLASS_HTTP.get(state[:2]) or (500, "internal")


def from_database(exc: psycopg.Error):
    status, code = status_of(exc)
    state = getattr(exc, "sqlstate", None)
    if state is None:
        return error_response(status, code, "the database is not reachable" if status == 503 else str(exc))
    diag = exc.diag
    if status == 500:
        log.exception("unmapped SQLSTATE %s", state)
        return error_response(500, code, "internal error", sqlstate=state)
    return error_response(status, code, diag.message_primary or str(exc), sqlstate=state,
                          detail=diag.message_detail, hint=diag.message_hint)


def register(app: Flask) -> None:
    app.register_error_handler(ApiError, lambda e: error_response(e.status, e.code, e.message, hint=e.hint))
    app.register_error_handler(psycopg.Error, from_database)
    app.register_error_handler(
        PoolTimeout, lambda e: error_response(*database_unavailable(), "the database is not reachable"))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = {
            400: "invalid_input", 404: "not_found", 405: "method_not_allowed",
            413: "payload_too_large", 414: "uri_too_long", 429: "rate_limited", 431: "headers_too_large",
        }.get(exc.code or 500, "http_error")
        return error_response(exc.code or 500, code, exc.description or exc.name)
