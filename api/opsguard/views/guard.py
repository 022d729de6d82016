"""The release guard: the gate CI asks before every deploy. Open (no signature): it only
reads, and CI must be able to ask without a secret. A signed call is verified (a bad signature
is a 401) and its evaluation kept in full; an unsigned one goes to the capped anonymous history.
Overrides are signed and need guard.override."""

from __future__ import annotations

import psycopg
from flask import Blueprint, g, jsonify, request
from psycopg_pool import PoolTimeout

from .. import limits
from ..auth import signed, signed_if_signature
from ..db import call
from ..errors import status_of
from ..limits import limiter
from . import json_body

bp = Blueprint("guard", __name__, url_prefix="/ops/release-guard")

# CI context stored with each evaluation, from headers CI tools can set
CONTEXT_HEADERS = {"commit": "X-Commit-Sha", "pipeline": "X-CI-Pipeline", "job": "X-CI-Job", "ref": "X-Git-Ref"}


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes", "on")


@bp.route("", methods=["GET", "POST"])
@limiter.limit(limits.READ)
@signed_if_signature
def release_guard():
    """409 when blocked, 200 when clear; ?always200=1 (Argo Rollouts' web provider) answers
    200 with the verdict in "ok". POST is accepted for Flagger's webhooks (its JSON body, at most
    8 KiB: input_checks.BODY_LIMITS, is stored with the evaluation, capped by ops.release_guard).
    The database away: 503 ok:false (200 ok:false with always200)."""
    always200 = _truthy(request.args.get("always200"))
    context = {k: request.headers[h] for k, h in CONTEXT_HEADERS.items() if request.headers.get(h)}
    if request.method == "POST" and isinstance(body := json_body(), dict):
        context["webhook"] = body
    caller = request.headers.get("X-Caller") or request.headers.get("User-Agent") or request.remote_addr
    try:
        result = call("SELECT ops.api_release_guard(%s, %s, %s, %s)",
                      request.args.get("route_prefix"), caller, context, g.caller is not None)
    except (psycopg.Error, PoolTimeout) as exc:
        # a standby's read-only answer is an outage too (errors.status_of), not only a lost connection
        if not always200 or (isinstance(exc, psycopg.Error) and status_of(exc)[0] != 503):
            raise
        # fail closed for tools that only read 2xx answers
        return jsonify({"ok": False, "error": "database_unavailable", "message": "the database is not reachable"}), 200
    return jsonify(result), 200 if result["ok"] or always200 else 409


@bp.post("/overrides")
@signed
@limiter.limit(limits.ADMIN, key_func=limits.by_principal)
def override():
    c = g.caller
    return jsonify(call("SELECT ops.api_override_guard_item(%s, %s, %s, %s)",
                        c.principal, c.actor, c.replay_key, json_body())), 201
