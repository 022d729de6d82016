from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from .. import limits
from ..auth import signed
from ..db import call
from ..limits import limiter
from . import json_body

bp = Blueprint("incidents", __name__, url_prefix="/ops/incidents")

# the two verbs share one SQL function; the URL names the status to move to
STATUS_FOR = {"ack": "acknowledged", "resolve": "resolved"}


def _per_action() -> str:
    """ack and resolve keep a limit each, as separate endpoints would."""
    return f"{limits.by_principal()}:{request.view_args['action']}"


@bp.post("/<incident_id>/<any(ack, resolve):action>")
@signed
@limiter.limit(limits.WRITE, key_func=_per_action)
def set_status(incident_id: str, action: str):
    c = g.caller
    return jsonify(call("SELECT ops.api_set_incident_status(%s, %s, %s, %s, %s, %s)",
                        c.principal, c.actor, c.replay_key, incident_id, STATUS_FOR[action], json_body()))


@bp.post("")
@signed
@limiter.limit(limits.WRITE, key_func=limits.by_principal)
def trigger():
    c = g.caller
    result = call("SELECT ops.api_trigger_incident(%s, %s, %s, %s)", c.principal, c.actor, c.replay_key, json_body())
    return jsonify(result), 201 if result["created"] else 200


@bp.get("")
@signed
@limiter.limit(limits.READ, key_func=limits.by_principal)
def list_incidents():
    filters = {k: request.args[k] for k in ("status", "severity", "route", "limit") if k in request.args}
    return jsonify(call("SELECT ops.api_list_incidents(%s, %s, %s)", g.caller.principal, g.caller.actor, filters))
