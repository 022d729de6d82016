"""Heartbeat pings (SPEC 10): POST /ops/heartbeats/<name> with `Authorization: Bearer <key>`
(a key of kind heartbeat). Any JSON body up to 64 KiB, or none, is a ping: Alertmanager's
Watchdog route posts its usual webhook payload here, a cron job's curl posts nothing. The
body is only checked, never stored. The key, the name and the route binding are checked in
ops.api_heartbeat_ping: a bad key is 401 (28000), an unknown heartbeat 404 (P0002)."""

from __future__ import annotations

import json

from flask import Blueprint, jsonify, request

from .. import limits
from ..db import call
from ..errors import ApiError
from ..limits import limiter
from . import MAX_JSON_DEPTH, _depth

bp = Blueprint("intake_heartbeats", __name__, url_prefix="/ops/heartbeats")


def bearer_token() -> str | None:
    """The token of `Authorization: Bearer <token>`; anything else is no token (SQL says 401)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _check_json_body() -> None:
    """Empty, or any JSON value (object, list, scalar) nested at most MAX_JSON_DEPTH deep."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return
    try:
        value = json.loads(raw)
    except RecursionError as exc:
        raise ApiError(400, "invalid_json", f"the body is nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except ValueError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc
    if _depth(value) > MAX_JSON_DEPTH:
        raise ApiError(400, "invalid_json", f"the body is nested deeper than {MAX_JSON_DEPTH} levels")


@bp.post("/<name>")
@limiter.limit(limits.INGEST)
def ping(name: str):
    token = bearer_token()
    _check_json_body()
    return jsonify(call("SELECT ops.api_heartbeat_ping(%s, %s)", token, name))
