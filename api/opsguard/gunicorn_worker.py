"""gunicorn answers some requests itself, before Flask sees them: a request line longer than
limit_request_line (414), a header over limit_request_field_size (431), a header it cannot
parse (400). It writes those answers in HTML through gunicorn.util.write_error; this worker
class swaps that for the API's JSON error shape, so every answer is JSON.

    worker_class = "opsguard.gunicorn_worker.JsonErrorWorker"   (api/gunicorn.conf.py)
"""

from __future__ import annotations

import json

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

CODES = {400: "invalid_request", 403: "forbidden", 414: "uri_too_long", 417: "expectation_failed",
         431: "headers_too_large", 501: "not_implemented"}


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    body = json.dumps({"ok": False, "error": CODES.get(status_int, "http_error"),
                       "message": mesg or reason}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
    util.write_nonblock(sock, head + body)


class JsonErrorWorker(ThreadWorker):
    """gunicorn's threaded worker, answering its own errors in JSON."""

    def init_process(self):
        # gunicorn's handle_error looks write_error up on the module at each call
        util.write_error = write_json_error
        super().init_process()
