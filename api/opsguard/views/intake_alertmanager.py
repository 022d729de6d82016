"""POST /ops/integrations/alertmanager: Alertmanager's webhook (version 4) and Grafana
alerting's (the same shape). The sender authenticates with an integration key of kind
alertmanager sent as `Authorization: Bearer <token>` (Alertmanager's
http_config.authorization, Grafana's Authorization header); ops.api_alertmanager checks it
and does the rest, so a bad key is a 401 and a bad payload a 400 naming the field."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from .. import limits
from ..auth import bearer_token
from ..db import call
from ..limits import limiter
from . import json_body

bp = Blueprint("intake_alertmanager", __name__)


@bp.post("/ops/integrations/alertmanager")
@limiter.limit(limits.INGEST)  # by client address: senders hold keys, not principals
def alertmanager():
    # the checks every endpoint makes (well-formed JSON, an object), with their 400s; the depth
    # limit is ops.api_alertmanager's (one jsonpath there, a tenth of the walk in Python)
    json_body(check_depth=False)
    # the raw text, parsed once by Postgres: dumping the parsed dict again costs as much as the parse
    return jsonify(call("SELECT ops.api_alertmanager(%s, %s::jsonb)", bearer_token(), request.get_data(as_text=True)))
