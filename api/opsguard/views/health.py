from __future__ import annotations

from flask import Blueprint, jsonify

from ..db import call
from ..migrate import migration_ids

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """200 when the database answers, every migration is applied, the tick is on time, the
    pg_cron job ran fine and the configuration is sound; 503 with the reasons otherwise."""
    health = call("SELECT ops.api_health()")
    pending = sorted(set(migration_ids()) - set(health["migrations"] or []))
    reasons = ([f"migrations not applied: {', '.join(pending)}"] if pending else []) + health.pop("reasons", [])
    return jsonify({"ok": not reasons, "reasons": reasons, **health, "pendingMigrations": pending}), \
        200 if not reasons else 503
