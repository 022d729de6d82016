"""A local stand-in for Slack's incoming webhooks: records what it receives, and can be
told to fail (HTTP 500), rate-limit (429 with Retry-After), hang, or refuse connections.
Tests and `make bench` use it in-process; `make run` starts it as the demo webhook:

    python scripts/fake_slack.py --port 3001      # prints one line per message received
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict
    at: float
    answered: int | None = None  # the status sent back; None while hanging or if never answered
    raw: bytes = b""  # the body as received (a signature is over these bytes)

    @property
    def dedup_key(self) -> str | None:
        return self.headers.get("x-dedup-key")


class FakeSlack:
    """mode: "ok" (200 "ok"), "fail" (500), "ratelimit" (429, Retry-After), "hang" (answers
    nothing until the mode changes or the server stops). refuse() closes the port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, on_message=None):
        self.host, self.port = host, port
        self.mode = "ok"
        self.retry_after = "1"
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._server: ThreadingHTTPServer | None = None
        self._on_message = on_message
        self._sockets: set[socket.socket] = set()

    # --- control ----------------------------------------------------------------------

    def start(self) -> FakeSlack:
        self._server = ThreadingHTTPServer((self.host, self.port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def refuse(self) -> None:
        """Stop listening: connections are refused until start() again (same port)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:  # and drop kept-alive connections, as a dead host would
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._sockets.clear()
        self.set_mode(self.mode)  # wake hanging handlers

    stop = refuse

    def set_mode(self, mode: str) -> None:
        with self._changed:
            self.mode = mode
            self._changed.notify_all()

    def url(self, path: str = "/services/T000/B000/secret") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def messages(self, answered: int | None = 200) -> list[Received]:
        with self._lock:
            return [r for r in self.received if answered is None or r.answered == answered]

    def wait_for(self, count: int, timeout: float = 10.0, answered: int | None = 200) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.messages(answered)
            if len(got) >= count:
                return got
            time.sleep(0.02)
        return self.messages(answered)

    # --- the server -------------------------------------------------------------------

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Slack does
            disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

            def setup(self):
                super().setup()
                with fake._lock:
                    fake._sockets.add(self.connection)

            def finish(self):
                with fake._lock:
                    fake._sockets.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def do_POST(self):  # noqa: N802 (http.server's naming)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"_raw": raw.decode("utf-8", "replace")}
                rec = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time(), raw=raw)
                with fake._changed:
                    fake.received.append(rec)
                    while fake.mode == "hang" and fake._server is not None:
                        fake._changed.wait(0.1)
                    mode = fake.mode
                if fake._server is None:
                    self.close_connection = True
                    return
                status, text, extra = {
                    "ok": (200, b"ok", {}),
                    "fail": (500, b"internal_error", {}),
                    "ratelimit": (429, b"rate_limited", {"Retry-After": fake.retry_after}),
                }[mode]
                rec.answered = status
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(text)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(text)
                if fake._on_message:
                    fake._on_message(rec)

            def log_message(self, *args):  # quiet: tests and the bench read .received
                pass

        return Handler


def log_line(rec: Received) -> dict:
    """What `make run`'s log shows of a message: which webhook it reached, its text, and whom it
    paged: the Slack users it mentions (<@U...>) and the names of those without a Slack user, as
    the message's context line says them ("· paged dave")."""
    blocks = rec.body.get("blocks") or []
    context = [e.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "context"
               for e in b.get("elements") or [] if isinstance(e, dict)]
    return {
        "at": time.strftime("%H:%M:%S", time.localtime(rec.at)),
        "to": rec.path,
        "dedup_key": rec.dedup_key,
        "text": rec.body.get("text"),
        "mentions": sorted(set(re.findall(r"<@([A-Z0-9]+)>", json.dumps(rec.body)))),
        "context": context,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3001)
    p.add_argument("--quiet", action="store_true", help="print nothing per message")
    args = p.parse_args()

    def show(rec: Received) -> None:
        if not args.quiet:
            print(json.dumps(log_line(rec)), flush=True)

    fake = FakeSlack(args.host, args.port, on_message=show).start()
    print(f"fake Slack webhook listening on {fake.url('/')}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
