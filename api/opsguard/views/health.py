from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from ..auth import body_only_accepted
from ..db import call
from ..migrate import migration_ids

bp = Blueprint("health", __name__)

BODY_ONLY_WARNING = ("body-only signatures (no timestamp, no path) are accepted on POST /ops/escalation/tick and "
                     "/ops/incidents/<id>/ack; once every client signs v1, set OPS_HMAC_BODY_ONLY=off")


@bp.get("/healthz")
def healthz():
    """200 when the database answers, every migration is applied, the tick is on time, the
    pg_cron job ran fine and the configuration is sound; 503 with the reasons otherwise.
    Warnings name what is weaker than it should be but does not make the API unhealthy."""
    health = call("SELECT ops.api_health()")
    pending = sorted(set(migration_ids()) - set(health["migrations"] or []))
    reasons = ([f"migrations not applied: {', '.join(pending)}"] if pending else []) + health.pop("reasons", [])
    warnings = ([BODY_ONLY_WARNING] if body_only_accepted(current_app.config) else []) + health.pop("warnings", [])
    return jsonify({"ok": not reasons, "reasons": reasons, "warnings": warnings, **health,
                    "pendingMigrations": pending}), 200 if not reasons else 503
