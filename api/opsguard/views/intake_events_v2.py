"""POST /v2/enqueue and POST /v2/change/enqueue: PagerDuty's Events API v2 (alert and change
events), so a sender that speaks it (Alertmanager's pagerduty_configs, Grafana's PagerDuty contact
point, PagerDuty's client libraries, a deploy pipeline's change event) only changes its URL. The
routing_key in the body is an integration key of kind events_v2; everything else is
ops.api_events_v2 / ops.api_change_event. Every answer, errors included (malformed JSON, a body
over the limit, a rate limit), has PagerDuty's shape, because a sender parses only that:

    202 {"status": "success", "message": "Event processed", "dedup_key": "..."}
    202 {"status": "success", "message": "Change event processed"}
    400 {"status": "invalid event", "message": "Event object is invalid", "errors": ["..."]}
    429 {"status": "throttle event", "message": "..."}
"""

from __future__ import annotations

import json
import logging

import psycopg
from flask import Blueprint, jsonify
from psycopg_pool import PoolTimeout
from werkzeug.exceptions import HTTPException

from .. import limits
from ..db import call
from ..errors import ApiError, database_unavailable, status_of
from ..limits import limiter
from . import json_body

log = logging.getLogger(__name__)

bp = Blueprint("events_v2", __name__)

INVALID = "Event object is invalid"


@bp.post("/v2/enqueue")
# limits.INGEST by client address (the key is in the body and not yet known to be one): an
# Alertmanager sends one event per alert group and repeat_interval, far below it; PagerDuty's own
# limit is per key and of the same order
@limiter.limit(limits.INGEST)
def enqueue():
    return jsonify(call("SELECT ops.api_events_v2(%s::jsonb)", json_body())), 202


@bp.post("/v2/change/enqueue")
# the same budget as alert events, by client address: a deploy pipeline sends a few a minute
@limiter.limit(limits.INGEST)
def change_enqueue():
    return jsonify(call("SELECT ops.api_change_event(%s::jsonb)", json_body())), 202


def _answer(status: int, errors: list[str]):
    if status == 429:
        return jsonify({"status": "throttle event",
                        "message": "Requests for this service are arriving too quickly. Please retry later."}), 429
    if status >= 500:
        # the PagerDuty clients retry a 5xx (the library 2 to 6 times, Alertmanager on its own schedule)
        return jsonify({"status": "error", "message": errors[0] if errors else "internal error"}), status
    return jsonify({"status": "invalid event", "message": INVALID, "errors": errors}), status


@bp.errorhandler(psycopg.Error)
def _database(exc: psycopg.Error):
    # the app's one SQLSTATE table, answered in the shapes PagerDuty's senders parse
    status, _code = status_of(exc)
    if status == 401:
        return _answer(400, ["Invalid routing key"])  # what PagerDuty answers for a key it does not know
    if status == 400:
        return _answer(400, _event_errors(exc))
    if status == 503:
        return _answer(503, ["the database is not reachable"])
    # a 403, 404 or 409 of the table is nothing these two functions raise: a sender knows only
    # 202, 400, 429 and 5xx, so it is reported as the bug it would be
    log.exception("unmapped SQLSTATE %s", exc.sqlstate)
    return _answer(500, ["internal error"])


def _event_errors(exc: psycopg.Error) -> list[str]:
    """Every problem of the event: the JSON array the SQL puts in DETAIL, else the message."""
    detail = exc.diag.message_detail
    try:
        found = json.loads(detail) if detail else None
    except ValueError:
        found = None
    if isinstance(found, list) and all(isinstance(e, str) for e in found):
        return found
    return [exc.diag.message_primary or str(exc)]


@bp.errorhandler(PoolTimeout)
def _pool_timeout(exc: PoolTimeout):
    return _answer(database_unavailable()[0], ["the database is not reachable"])


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    # malformed or too deeply nested JSON, a NUL byte, a bad header (api/opsguard/input_checks.py)
    return _answer(exc.status if exc.status != 401 else 400, [exc.message])


def _http_error(exc: HTTPException):
    # 413 (over the body limit), 429 (the rate limit), 400 from werkzeug
    return _answer(exc.code or 500, [exc.description or exc.name])


# Flask looks for a handler by status code first, in the app too, before any by class: the app
# has one for 429 (limits.too_many), so this blueprint names its codes
bp.register_error_handler(HTTPException, _http_error)
for _code in (400, 413, 429):
    bp.register_error_handler(_code, _http_error)
