from __future__ import annotations

from flask import Blueprint, jsonify

from ..db import call
from ..migrate import migration_ids

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """200 when the database answers and every migration is applied; 503 with reasons otherwise."""
    health = call("SELECT ops.api_health()")
    pending = sorted(set(migration_ids()) - set(health["migrations"] or []))
    reasons = [f"migrations not applied: {', '.join(pending)}"] if pending else []
    return jsonify({"ok": not reasons, "reasons": reasons, **health, "pendingMigrations": pending}), \
        200 if not reasons else 503
