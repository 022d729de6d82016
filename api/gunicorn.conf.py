# gunicorn settings for the opsguard API (make serve, make run).
# One worker process with threads: flask-limiter's in-memory counters are then shared by
# every request, so "10/min" holds for the whole server. To run several processes or
# hosts, set RATELIMIT_STORAGE_URI=redis://... and raise workers.
import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from opsguard import settings as _settings  # noqa: E402 - found through the line above when not installed

# the server's variables and its worker's, checked before anything starts (docs/configuration.md)
try:
    _env = _settings.load("gunicorn", "API")
except _settings.SettingError as _exc:
    sys.exit(str(_exc))

bind = _env["OPS_BIND"] or f"127.0.0.1:{_env['PORT']}"
workers = 1
# gthread with a read-ahead stage: the worker's event loop reads each request whole (head within
# OPS_HEADER_TIMEOUT_S, 10 s; body within OPS_BODY_TIMEOUT_S, 30 s; else 408) before a thread
# takes it, so idle and slow clients hold no thread; gunicorn's own refusals are answered in JSON
# (api/opsguard/gunicorn_worker.py, docs/runbook.md "Deployment")
worker_class = "opsguard.gunicorn_worker.JsonErrorWorker"
threads = _env["OPS_THREADS"]

# every open connection is a file descriptor: take what the hard limit allows (a shell's soft
# limit is often 1024), and hold at most OPS_MAX_CONNECTIONS (1000) at once, leaving room for
# the pool, logs and the listener; connections beyond wait in the listen backlog
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
_want = _env["OPS_MAX_CONNECTIONS"]
if _soft != resource.RLIM_INFINITY and _soft < _want + 100:
    _soft = _want + 100 if _hard == resource.RLIM_INFINITY else min(_hard, _want + 100)
    resource.setrlimit(resource.RLIMIT_NOFILE, (_soft, _hard))
worker_connections = min(_want, _soft - 100) if _soft != resource.RLIM_INFINITY else _want

timeout = 30
graceful_timeout = 10
accesslog = _env["OPS_ACCESS_LOG"] or None  # empty: no access log
# every log line the server writes (error log, access log, the app's logging) goes through
# one redaction first: feed tokens, integration keys, Authorization values
logger_class = "opsguard.access_log.RedactingLogger"
pythonpath = os.path.dirname(os.path.abspath(__file__))
