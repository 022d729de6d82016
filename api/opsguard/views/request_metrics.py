from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from .. import limits
from ..auth import signed
from ..db import call
from ..limits import limiter

bp = Blueprint("request_metrics", __name__)


@bp.post("/ops/metrics/requests")
@signed
@limiter.limit(limits.INGEST, key_func=limits.by_principal)
def record_requests():
    """A batch of request samples. The raw body goes to SQL as jsonb untouched (no parse and
    re-serialize in Python): malformed JSON is a 22P02 there, a bad sample a 22023 naming it."""
    c = g.caller
    body = request.get_data(cache=True).decode("utf-8", errors="replace")
    return jsonify(call("SELECT ops.api_record_requests(%s, %s, %s, %s::jsonb)", c.principal, c.actor, c.replay_key, body))
