from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from .. import limits
from ..auth import signed
from ..db import call
from ..limits import limiter
from . import json_body

bp = Blueprint("incidents", __name__, url_prefix="/ops/incidents")

SET_STATUS = "SELECT ops.api_set_incident_status(%s, %s, %s, %s, %s, %s)"


@bp.post("/<incident_id>/ack")
@limiter.limit(limits.WRITE)
@signed
def ack(incident_id: str):
    c = g.caller
    return jsonify(call(SET_STATUS, c.principal, c.actor, c.replay_key, incident_id, "acknowledged", json_body()))


@bp.post("/<incident_id>/resolve")
@limiter.limit(limits.WRITE)
@signed
def resolve(incident_id: str):
    c = g.caller
    return jsonify(call(SET_STATUS, c.principal, c.actor, c.replay_key, incident_id, "resolved", json_body()))


@bp.post("")
@limiter.limit(limits.WRITE)
@signed
def trigger():
    c = g.caller
    result = call("SELECT ops.api_trigger_incident(%s, %s, %s, %s)", c.principal, c.actor, c.replay_key, json_body())
    return jsonify(result), 201 if result["created"] else 200


@bp.get("")
@limiter.limit(limits.READ)
@signed
def list_incidents():
    filters = {k: request.args[k] for k in ("status", "severity", "route", "limit") if k in request.args}
    return jsonify(call("SELECT ops.api_list_incidents(%s, %s, %s)", g.caller.principal, g.caller.actor, filters))
