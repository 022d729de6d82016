from __future__ import annotations

from flask import Blueprint, g, jsonify

from .. import limits
from ..auth import signed
from ..db import call
from ..limits import limiter
from . import json_body

bp = Blueprint("escalation", __name__, url_prefix="/ops/escalation")


@bp.post("/tick")
@signed
@limiter.limit(limits.TICK, key_func=limits.by_principal)
def tick():
    json_body()  # malformed JSON is refused even where the body is unused
    return jsonify(call("SELECT ops.api_tick(%s, %s, %s)", g.caller.principal, g.caller.actor, g.caller.replay_key))


@bp.post("/recalc")
@signed
@limiter.limit(limits.ADMIN, key_func=limits.by_principal)
def recalc():
    json_body()
    return jsonify(call("SELECT ops.api_recalc(%s, %s, %s)", g.caller.principal, g.caller.actor, g.caller.replay_key))
