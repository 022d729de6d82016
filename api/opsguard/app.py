"""The HTTP face of opsguard: verify, authorize in SQL, call one function, map the answer.

    gunicorn -c api/gunicorn.conf.py 'opsguard.app:create_app()'
"""

from __future__ import annotations

import logging

import psycopg
from flask import Flask
from psycopg_pool import ConnectionPool, PoolTimeout
from slack_sdk.signature import SignatureVerifier

from . import errors, limits, settings
from .auth import parse_keys
from .config import bad_configuration
from .db import make_pool
from .input_checks import refuse_bad_input
from .views import (
    chat,
    escalation,
    guard,
    health,
    incidents,
    intake_alertmanager,
    intake_events_v2,
    intake_heartbeats,
    me,
    metrics,
    oncall,
    page,
    request_metrics,
    twilio,
)

log = logging.getLogger(__name__)


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__)
    app.config["RATELIMIT_HEADERS_ENABLED"] = True
    app.config.update(test_config or {})
    # the environment's values (api/opsguard/settings.py), parsed and checked; a test config overrides them
    app.config.update(settings.load("api", "API", overrides=test_config))
    if "MAX_CONTENT_LENGTH" not in (test_config or {}):
        app.config["MAX_CONTENT_LENGTH"] = app.config["OPS_MAX_BODY_BYTES"]

    missing = [k for k in ("DATABASE_URL", "OPS_HMAC_SECRET") if not app.config.get(k)]
    if missing:
        raise RuntimeError(f"opsguard API: set {' and '.join(missing)}")
    app.config["HMAC_KEYS"] = parse_keys(app.config)

    if app.config.get("SLACK_SIGNING_SECRET"):
        app.extensions["slack_verifier"] = SignatureVerifier(app.config["SLACK_SIGNING_SECRET"])
    app.extensions["opsguard_pool"] = pool = make_pool(app)
    refuse_bad_configuration(pool)
    app.before_request(refuse_bad_input)
    limits.init_app(app)
    errors.register(app)
    for bp in (escalation.bp, incidents.bp, me.bp, health.bp, guard.bp, request_metrics.bp, chat.bp, metrics.bp):
        app.register_blueprint(bp)
    app.register_blueprint(intake_heartbeats.bp)
    app.register_blueprint(intake_alertmanager.bp)
    app.register_blueprint(intake_events_v2.bp)
    app.register_blueprint(oncall.bp)
    app.register_blueprint(page.bp)
    app.register_blueprint(twilio.bp)
    if app.config.get("OPS_BENCH_ENDPOINTS"):
        from .views import bench

        app.register_blueprint(bench.bp)
    app.json.sort_keys = False
    return app


def refuse_bad_configuration(pool: ConnectionPool) -> None:
    """Stop start-up on a bad setting (a webhook over plain http, a malformed app_base_url),
    naming it. A database that is away cannot be checked: the API starts and answers 503."""
    try:
        with pool.connection() as conn:
            problem = bad_configuration(conn, "API")
    except (PoolTimeout, psycopg.Error) as exc:
        log.warning("configuration not checked at start: %s", exc)
        return
    if problem:
        pool.close()
        raise RuntimeError(problem)
