from __future__ import annotations

from flask import Blueprint, g, jsonify

from .. import limits
from ..auth import signed
from ..db import call
from ..limits import limiter
from . import json_body

bp = Blueprint("me", __name__)


@bp.get("/me/permissions")
@signed
@limiter.limit(limits.READ, key_func=limits.by_principal)
def permissions():
    return jsonify(call("SELECT ops.api_me(%s, %s)", g.caller.principal, g.caller.actor))


# /ops/me: the caller's own contact methods and notification rules (docs/notifications.md); the
# signer, or the actor it names in X-Ops-Actor, is the principal each call is about
@bp.get("/ops/me/contact-methods")
@signed
@limiter.limit(limits.READ, key_func=limits.by_principal)
def contact_methods():
    return jsonify(call("SELECT ops.api_my_contact_methods(%s, %s)", g.caller.principal, g.caller.actor))


@bp.post("/ops/me/contact-methods")
@signed
@limiter.limit(limits.WRITE, key_func=limits.by_principal)
def add_contact_method():
    c = g.caller
    return jsonify(call("SELECT ops.api_add_contact_method(%s, %s, %s, %s)",
                        c.principal, c.actor, c.replay_key, json_body())), 201


@bp.post("/ops/me/contact-methods/<method_id>/verify")
@signed
@limiter.limit(limits.WRITE, key_func=limits.by_principal)
def verify_contact_method(method_id: str):
    c = g.caller
    result = call("SELECT ops.api_verify_contact_method(%s, %s, %s, %s, %s)",
                  c.principal, c.actor, c.replay_key, method_id, json_body())
    # a wrong code is an answer, not a database error, so that its try stays counted
    return jsonify(result), 200 if result["ok"] else 422


@bp.post("/ops/me/contact-methods/<method_id>/resend")
@signed
@limiter.limit(limits.WRITE, key_func=limits.by_principal)
def resend_verification(method_id: str):
    c = g.caller
    return jsonify(call("SELECT ops.api_resend_verification(%s, %s, %s, %s)",
                        c.principal, c.actor, c.replay_key, method_id)), 202


@bp.delete("/ops/me/contact-methods/<method_id>")
@signed
@limiter.limit(limits.WRITE, key_func=limits.by_principal)
def remove_contact_method(method_id: str):
    c = g.caller
    return jsonify(call("SELECT ops.api_remove_contact_method(%s, %s, %s, %s)",
                        c.principal, c.actor, c.replay_key, method_id))


@bp.get("/ops/me/notification-rules")
@signed
@limiter.limit(limits.READ, key_func=limits.by_principal)
def notification_rules():
    return jsonify(call("SELECT ops.api_my_notification_rules(%s, %s)", g.caller.principal, g.caller.actor))


@bp.post("/ops/me/notification-rules")
@signed
@limiter.limit(limits.WRITE, key_func=limits.by_principal)
def add_notification_rule():
    c = g.caller
    return jsonify(call("SELECT ops.api_add_notification_rule(%s, %s, %s, %s)",
                        c.principal, c.actor, c.replay_key, json_body())), 201


@bp.delete("/ops/me/notification-rules/<rule_id>")
@signed
@limiter.limit(limits.WRITE, key_func=limits.by_principal)
def remove_notification_rule(rule_id: str):
    c = g.caller
    return jsonify(call("SELECT ops.api_remove_notification_rule(%s, %s, %s, %s)",
                        c.principal, c.actor, c.replay_key, rule_id))
