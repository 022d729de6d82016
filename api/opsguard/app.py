"""The HTTP face of opsguard: verify, authorize in SQL, call one function, map the answer.

    gunicorn -c api/gunicorn.conf.py 'opsguard.app:create_app()'
"""

from __future__ import annotations

import os

from flask import Flask

from . import errors
from .auth import parse_keys
from .db import make_pool
from .limits import limiter, too_many
from .views import escalation, guard, health, incidents, me, request_metrics

ENV_KEYS = ("DATABASE_URL", "OPS_HMAC_SECRET", "OPS_HMAC_SECRET_PREVIOUS", "OPS_HMAC_KEYS",
            "OPS_HMAC_REQUIRE_TIMESTAMP", "OPS_DB_ROLE", "RATELIMIT_STORAGE_URI", "RATELIMIT_ENABLED",
            "OPS_BENCH_ENDPOINTS")


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(
        MAX_CONTENT_LENGTH=int(os.environ.get("OPS_MAX_BODY_BYTES", 1024 * 1024)),
        RATELIMIT_STORAGE_URI="memory://",
        RATELIMIT_HEADERS_ENABLED=True,
    )
    app.config.update({k: os.environ[k] for k in ENV_KEYS if k in os.environ})
    for flag in ("OPS_HMAC_REQUIRE_TIMESTAMP", "RATELIMIT_ENABLED", "OPS_BENCH_ENDPOINTS"):
        if isinstance(app.config.get(flag), str):
            app.config[flag] = app.config[flag].lower() in ("1", "true", "yes", "on")
    if test_config:
        app.config.update(test_config)

    missing = [k for k in ("DATABASE_URL", "OPS_HMAC_SECRET") if not app.config.get(k)]
    if missing:
        raise RuntimeError(f"opsguard API: set {' and '.join(missing)}")
    app.config["HMAC_KEYS"] = parse_keys(app.config)

    app.extensions["opsguard_pool"] = make_pool(app)
    limiter.init_app(app)
    errors.register(app)
    app.register_error_handler(429, too_many)
    for bp in (escalation.bp, incidents.bp, me.bp, health.bp, guard.bp, request_metrics.bp):
        app.register_blueprint(bp)
    if app.config.get("OPS_BENCH_ENDPOINTS"):
        from .views import bench

        app.register_blueprint(bench.bp)
    app.json.sort_keys = False
    return app
