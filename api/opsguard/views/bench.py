"""Only with OPS_BENCH_ENDPOINTS=1 (make bench): the baseline the ack endpoint is measured
against, a signed request through the same pool that only runs SELECT 1."""

from __future__ import annotations

from flask import Blueprint, jsonify

from ..auth import signed
from ..db import call

bp = Blueprint("bench", __name__, url_prefix="/bench")


@bp.post("/select1")
@signed
def select1():
    return jsonify({"ok": call("SELECT 1") == 1})
