"""GET /healthz: open, because load balancers and uptime checks cannot sign. Anyone learns whether
the API is healthy and why in general terms (the database answers, migrations are current, the
tick's age, problems counted by kind); a v1-signed caller holding escalation.recalc also gets the
reasons and warnings by name (principals, schedules, routes, settings), which tell an outsider
whom to target. ops.api_health decides which answer a caller gets."""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify

from ..auth import body_only_accepted, signed_if_signature
from ..db import call
from ..migrate import migration_ids

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@signed_if_signature
def healthz():
    """200 when the database answers, every migration is applied, the tick is on time, the
    pg_cron job ran fine and the configuration is sound; 503 otherwise."""
    caller = g.caller
    health = call("SELECT ops.api_health(%s, %s, %s, %s)", caller and caller.principal, caller and caller.actor,
                  migration_ids(), body_only_accepted(current_app.config))
    return jsonify(health), 200 if health["ok"] else 503
