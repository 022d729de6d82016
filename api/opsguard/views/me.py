from __future__ import annotations

from flask import Blueprint, g, jsonify

from .. import limits
from ..auth import signed
from ..db import call
from ..limits import limiter

bp = Blueprint("me", __name__)


@bp.get("/me/permissions")
@signed
@limiter.limit(limits.READ, key_func=limits.by_principal)
def permissions():
    return jsonify(call("SELECT ops.api_me(%s, %s)", g.caller.principal, g.caller.actor))
