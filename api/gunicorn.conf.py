# gunicorn settings for the opsguard API (make serve, make run).
# One worker process with threads: flask-limiter's in-memory counters are then shared by
# every request, so "10/min" holds for the whole server. To run several processes or
# hosts, set RATELIMIT_STORAGE_URI=redis://... and raise workers.
import os

bind = os.environ.get("OPS_BIND", f"127.0.0.1:{os.environ.get('PORT', '3000')}")
workers = 1
# gthread, answering the requests gunicorn refuses itself (request line, header limits) in JSON
worker_class = "opsguard.gunicorn_worker.JsonErrorWorker"
threads = int(os.environ.get("OPS_THREADS", "8"))
timeout = 30
graceful_timeout = 10
accesslog = os.environ.get("OPS_ACCESS_LOG", "-") or None  # empty: no access log
# the access log writes request lines; a calendar feed token in one is replaced first
logger_class = "opsguard.access_log.RedactingLogger"
pythonpath = os.path.dirname(os.path.abspath(__file__))
