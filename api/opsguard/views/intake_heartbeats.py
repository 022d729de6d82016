"""Heartbeat pings (docs/intake.md#heartbeats): POST /ops/heartbeats/<name> with `Authorization: Bearer <key>`
(a key of kind heartbeat). Any JSON body up to 64 KiB, or none, is a ping: Alertmanager's
Watchdog route posts its usual webhook payload here, a cron job's curl posts nothing. The
body is only checked, never stored. The key, the name and the route binding are checked in
ops.api_heartbeat_ping: a bad key is 401 (28000), an unknown heartbeat 404 (P0002)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from .. import limits
from ..auth import bearer_token
from ..db import call
from ..limits import limiter
from . import json_value

bp = Blueprint("intake_heartbeats", __name__, url_prefix="/ops/heartbeats")


@bp.post("/<name>")
@limiter.limit(limits.INGEST)
def ping(name: str):
    token = bearer_token()
    json_value()  # any JSON value or none: checked (400s), never stored
    return jsonify(call("SELECT ops.api_heartbeat_ping(%s, %s)", token, name))
