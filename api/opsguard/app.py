"""The HTTP face of opsguard: verify, authorize in SQL, call one function, map the answer.

    gunicorn -c api/gunicorn.conf.py 'opsguard.app:create_app()'
"""

from __future__ import annotations

import logging
import os

import psycopg
from flask import Flask
from psycopg_pool import ConnectionPool, PoolTimeout
from slack_sdk.signature import SignatureVerifier

from . import errors, limits
from .auth import check_settings, parse_keys
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
    request_metrics,
)

log = logging.getLogger(__name__)

ENV_KEYS = ("DATABASE_URL", "OPS_HMAC_SECRET", "OPS_HMAC_SECRET_PREVIOUS", "OPS_HMAC_KEYS",
            "OPS_HMAC_REQUIRE_TIMESTAMP", "OPS_HMAC_BODY_ONLY", "OPS_DB_ROLE", "RATELIMIT_STORAGE_URI",
            "RATELIMIT_ENABLED", "OPS_BENCH_ENDPOINTS", "SLACK_SIGNING_SECRET",
            # the pool (api/opsguard/db.py): before these were listed, setting them in the environment did nothing
            "OPS_DB_POOL_MAX", "OPS_DB_TIMEOUT_S", "OPS_DB_RECONNECT_S")


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(
        MAX_CONTENT_LENGTH=int(os.environ.get("OPS_MAX_BODY_BYTES", 1024 * 1024)),
        RATELIMIT_STORAGE_URI="memory://",
        RATELIMIT_HEADERS_ENABLED=True,
    )
    app.config.update({k: os.environ[k] for k in ENV_KEYS if k in os.environ})
    for flag in ("RATELIMIT_ENABLED", "OPS_BENCH_ENDPOINTS"):
        if isinstance(app.config.get(flag), str):
            app.config[flag] = app.config[flag].lower() in ("1", "true", "yes", "on")
    if test_config:
        app.config.update(test_config)

    missing = [k for k in ("DATABASE_URL", "OPS_HMAC_SECRET") if not app.config.get(k)]
    if missing:
        raise RuntimeError(f"opsguard API: set {' and '.join(missing)}")
    check_settings(app.config)
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
