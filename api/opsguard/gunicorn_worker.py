"""The API's gunicorn worker: gunicorn's threaded worker with a read-ahead stage in front of
its threads, and its own refusals answered in JSON.

    worker_class = "opsguard.gunicorn_worker.JsonErrorWorker"   (api/gunicorn.conf.py)

Slow clients. gunicorn hands a connection to one of its few threads as soon as it opens (or a
kept-alive one as soon as a byte arrives), and the thread then blocks reading the request: a
handful of clients that send half a request and wait stop the whole API. Here the worker's own
event loop reads every request first, without a thread, and gives a thread only a request that
is complete; the thread's parser reads those buffered bytes and never the socket. A client gets
OPS_HEADER_TIMEOUT_S (10 s) from the moment its request is awaited to send the head, then
OPS_BODY_TIMEOUT_S (30 s) for the body; one that dawdles is answered 408 (or, having sent
nothing, just closed), with no request started. An idle or trickling connection costs a socket
and its few buffered bytes; the buffers of all connections together are capped at
OPS_READ_BUFFER_MB (256). A body larger than OPS_MAX_BODY_BYTES (the app's limit) is handed on
at once when its Content-Length says so, or once one chunked byte more than the limit is in: the
app answers 413 without waiting for the rest, and the connection is closed, as it is after every
answer that ends one: lingering in the same loop, never in a thread (nor blocking the loop, as
gunicorn's close_graceful would for a client that keeps its side open).

gunicorn's own refusals. A request line longer than limit_request_line (414), a header over
limit_request_field_size (431), a header it cannot parse (400): gunicorn writes those answers in
HTML through gunicorn.util.write_error; this worker swaps that for the API's JSON error shape.
"""

from __future__ import annotations

import errno
import json
import re
import selectors
import socket
import ssl
import time
from functools import partial

from gunicorn import sock as gsock
from gunicorn import util
from gunicorn.http import RequestParser
from gunicorn.http.body import DEFAULT_MAX_CHUNK_SIZE_LINE as MAX_CHUNK_SIZE_LINE
from gunicorn.http.body import ChunkedReader, LengthReader
from gunicorn.http.errors import NoMoreData
from gunicorn.http.message import Request
from gunicorn.http.unreader import IterUnreader
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

from . import settings

CODES = {400: "invalid_request", 403: "forbidden", 408: "request_timeout", 413: "payload_too_large",
         414: "uri_too_long", 417: "expectation_failed", 431: "headers_too_large", 501: "not_implemented",
         503: "server_busy"}

# checked already by api/gunicorn.conf.py, which loads the same variables before the worker starts
_ENV = settings.load("gunicorn", "API")
HEADER_TIMEOUT_S = _ENV["OPS_HEADER_TIMEOUT_S"]
BODY_TIMEOUT_S = _ENV["OPS_BODY_TIMEOUT_S"]
MAX_BODY_BYTES = _ENV["OPS_MAX_BODY_BYTES"]  # the app reads the same setting
READ_BUFFER_BYTES = int(_ENV["OPS_READ_BUFFER_MB"] * 1024 * 1024)
# a thread writes the answer; a client that does not read it holds the thread this long at most
WRITE_TIMEOUT_S = 10.0
LINGER_S, LINGER_MAX_BYTES = 2.0, 65536  # as gunicorn's close_graceful, without blocking the loop
RECV = 65536
_BARE_LF = re.compile(rb"(?<!\r)\n")


def json_error_bytes(status_int: int, reason: str, mesg: str) -> bytes:
    body = json.dumps({"ok": False, "error": CODES.get(status_int, "http_error"), "message": mesg or reason}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
    return head + body


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    util.write_nonblock(sock, json_error_bytes(status_int, reason, mesg))


class Pending:
    """What the read-ahead stage knows of the request being read on one connection."""

    __slots__ = ("buf", "deadline", "head_len", "need", "chunk_at", "decoded", "scanned", "probe_at",
                 "expect_continue", "continue_sent", "whole", "handshake")

    def __init__(self, buf: bytes, deadline: float):
        self.buf = bytearray(buf)
        self.deadline = deadline
        self.head_len = 0        # bytes of the request line and headers, once they are all in
        self.need = None         # total bytes of a request with a Content-Length
        self.chunk_at = None     # where the next chunk-size line starts (a chunked body)
        self.decoded = 0         # chunk bytes seen so far
        self.scanned = 0         # how far the end of the head was looked for
        self.probe_at = 1024     # the head is parsed again once the buffer is this long
        self.expect_continue = False
        self.continue_sent = False
        self.whole = True        # False: handed on at the body limit, the rest never read
        self.handshake = False


class ReadAheadConn(TConn):
    pending: Pending | None = None
    whole = True
    continue_sent = False
    req_count = 0


def _walk_chunks(p: Pending) -> str:
    """Walks a chunked body as far as it is buffered: "done" when the last chunk and its trailers
    are in, "over" when more than MAX_BODY_BYTES of it are, "bad" when it cannot be chunked framing
    (gunicorn's parser then refuses it), else "more"."""
    buf = p.buf
    while True:
        eol = buf.find(b"\r\n", p.chunk_at)
        if eol < 0:
            return "more" if len(buf) - p.chunk_at <= MAX_CHUNK_SIZE_LINE else "bad"
        size_text = bytes(buf[p.chunk_at:eol]).split(b";", 1)[0].rstrip(b" \t")
        if not size_text or size_text.strip(b"0123456789abcdefABCDEF"):
            return "bad"
        size = int(size_text, 16)
        if size == 0:
            # trailers, if any, then an empty line
            return "done" if buf.find(b"\r\n\r\n", eol) >= 0 else "more"
        arrived = min(size, max(0, len(buf) - eol - 2))
        if p.decoded + arrived > MAX_BODY_BYTES:
            return "over"
        if arrived < size or len(buf) < eol + 2 + size + 2:
            return "more"
        p.decoded += size
        p.chunk_at = eol + 2 + size + 2


class JsonErrorWorker(ThreadWorker):
    """gunicorn's threaded worker, reading each request whole before a thread takes it, and
    answering its own errors in JSON."""

    def init_process(self):
        # gunicorn's handle_error looks write_error up on the module at each call
        util.write_error = write_json_error
        self.buffered = 0
        self.reading: set[ReadAheadConn] = set()
        self.lingering: dict[socket.socket, float] = {}
        self.next_sweep = 0.0
        self.ssl_context = gsock.ssl_context(self.cfg) if self.cfg.is_ssl else None
        super().init_process()

    # --- where connections come in ---------------------------------------------------------

    def accept(self, listener):
        try:
            client_sock, client_addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = ReadAheadConn(self.cfg, client_sock, client_addr, listener.getsockname())
        if self.ssl_context is not None:
            conn.sock = self.ssl_context.wrap_socket(client_sock, server_side=True, do_handshake_on_connect=False,
                                                     suppress_ragged_eofs=self.cfg.suppress_ragged_eofs)
        self.read_ahead(conn, handshake=self.ssl_context is not None)

    def enqueue_req(self, conn):
        """gunicorn's every way to a thread passes here (a kept-alive connection that turns
        readable, bytes of the next request read with the last one): they go to the read-ahead
        stage instead, and hand_on passes a whole request on."""
        leftover = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        self.read_ahead(conn, leftover)

    def read_ahead(self, conn: ReadAheadConn, buf: bytes = b"", handshake: bool = False) -> None:
        conn.sock.setblocking(False)
        conn.initialized = False
        conn.pending = Pending(buf, time.monotonic() + HEADER_TIMEOUT_S)
        conn.pending.handshake = handshake
        self.buffered += len(buf)
        self.reading.add(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_readable, conn))
        if buf:
            self.advance(conn)

    # --- the read-ahead stage --------------------------------------------------------------

    def on_readable(self, conn: ReadAheadConn, _sock) -> None:
        p = conn.pending
        if p.handshake and not self.shake_hands(conn):
            return
        got, ended = 0, False
        try:
            while got < 4 * RECV and not ended:
                data = conn.sock.recv(RECV)
                p.buf += data
                got += len(data)
                ended = not data  # the client is done sending; what it sent may still be a whole request
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        except OSError:
            ended = True
        self.buffered += got
        if self.buffered > READ_BUFFER_BYTES:
            return self.drop(conn, (503, "Service Unavailable", "the server is reading too many requests; retry"))
        if got:
            self.advance(conn)
        if ended and conn.pending is not None:
            self.drop(conn, None)

    def shake_hands(self, conn: ReadAheadConn) -> bool:
        try:
            conn.sock.do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        except (OSError, ValueError):
            self.drop(conn, None)
            return False
        conn.pending.handshake = False
        return True

    def advance(self, conn: ReadAheadConn) -> None:
        """Hands the request on when it is whole (or cannot be; the thread's parser answers)."""
        p = conn.pending
        if not p.head_len and not self.read_head(conn):
            return
        if p.chunk_at is not None:
            walked = _walk_chunks(p)
            if walked == "bad":
                return self.drop(conn, (400, "Bad Request", "the chunked body is malformed"))
            ready, p.whole = walked != "more", walked == "done"
        else:
            ready = len(p.buf) >= p.need
        if ready:
            self.hand_on(conn)
        elif p.expect_continue and not p.continue_sent:
            # the client waits for this before it sends the body (curl: a body over 1 KiB)
            p.continue_sent = True
            self.send_now(conn, b"HTTP/1.1 100 Continue\r\n\r\n")

    def read_head(self, conn: ReadAheadConn) -> bool:
        """Parses the head with gunicorn's own parser once its end may be in (or the buffer has
        doubled: the parser refuses an overlong line early); True when the framing is known."""
        p = conn.pending
        end = p.buf.find(b"\r\n\r\n", max(0, p.scanned - 3))
        bare_lf = _BARE_LF.search(p.buf, max(0, p.scanned - 1))  # refused at once by the parser
        p.scanned = len(p.buf)
        if end < 0 and not bare_lf and len(p.buf) < p.probe_at:
            return False
        p.probe_at = 2 * len(p.buf)
        unreader = IterUnreader([bytes(p.buf)])
        try:
            req = Request(self.cfg, unreader, conn.client, conn.req_count + 1)
        except (NoMoreData, StopIteration):
            return False
        except Exception:  # noqa: BLE001 - a bad head: the thread's parser raises it again and answers
            p.head_len, p.need, p.whole = len(p.buf), len(p.buf), False
            return True
        p.head_len = len(p.buf) - len(unreader.take_buffered())
        p.deadline = time.monotonic() + BODY_TIMEOUT_S
        p.expect_continue = req._expected_100_continue  # noqa: SLF001 - gunicorn's reading of Expect
        reader = req.body.reader
        if isinstance(reader, ChunkedReader):
            p.chunk_at = p.head_len
        else:
            length = reader.length if isinstance(reader, LengthReader) else 0
            # over the limit: the app answers 413 from Content-Length alone, the body is never read
            p.whole = length <= MAX_BODY_BYTES
            p.need = p.head_len + (length if p.whole else 0)
        return True

    def hand_on(self, conn: ReadAheadConn) -> None:
        p = conn.pending
        self.poller.unregister(conn.sock)
        self.reading.discard(conn)
        self.buffered -= len(p.buf)
        conn.pending = None
        conn.whole, conn.continue_sent = p.whole, p.continue_sent
        conn.req_count += 1
        conn.parser = RequestParser(self.cfg, [bytes(p.buf)], conn.client)
        conn.parser.req_count = conn.req_count - 1
        conn.data_ready = True
        conn.initialized = True
        conn.sock.setblocking(True)
        ThreadWorker.enqueue_req(self, conn)

    def drop(self, conn: ReadAheadConn, answer: tuple[int, str, str] | None) -> None:
        p = conn.pending
        self.poller.unregister(conn.sock)
        self.reading.discard(conn)
        self.buffered -= len(p.buf)
        conn.pending = None
        if answer:
            self.send_now(conn, json_error_bytes(*answer))
        self.nr_conns -= 1
        self.linger(conn.sock)

    def send_now(self, conn: ReadAheadConn, data: bytes) -> None:
        try:
            conn.sock.send(data)  # a few bytes to an empty send buffer; a client that cannot take them loses them
        except OSError:
            pass

    # --- timeouts, closing, stopping -----------------------------------------------------

    def murder_pending(self):
        super().murder_pending()
        now = time.monotonic()
        if now < self.next_sweep:
            return
        self.next_sweep = now + 0.25
        for conn in [c for c in self.reading if c.pending.deadline <= now]:
            if conn.pending.buf:
                self.drop(conn, (408, "Request Timeout", "the request was not sent in time"))
            else:
                self.drop(conn, None)
        for sock in [s for s, deadline in self.lingering.items() if deadline <= now]:
            self.end_linger(sock)
        if not self.alive:
            stop_by = now + STOP_KEEPALIVE_LINGER
            for conn in self.reading:
                conn.pending.deadline = min(conn.pending.deadline, stop_by)

    def linger(self, sock) -> None:
        """Closes as RFC 9112 section 9.6 asks (FIN first, then read what the client still sends,
        so unread bytes do not turn into a reset that cuts off our answer), in the event loop."""
        try:
            sock.setblocking(False)
            sock.shutdown(socket.SHUT_WR)
        except (OSError, ValueError):
            return util.close(sock)
        self.lingering[sock] = time.monotonic() + LINGER_S
        self.poller.register(sock, selectors.EVENT_READ, self.on_linger_readable)

    def on_linger_readable(self, sock) -> None:
        try:
            if sock.recv(LINGER_MAX_BYTES):
                return
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except OSError:
            pass
        self.end_linger(sock)

    def end_linger(self, sock) -> None:
        self.lingering.pop(sock, None)
        try:
            self.poller.unregister(sock)
        except (KeyError, ValueError):
            pass
        util.close(sock)

    def finish_request(self, conn, fs):
        if fs.cancelled() or fs.result() or conn.is_http2:
            return super().finish_request(conn, fs)
        self.nr_conns -= 1
        self.linger(conn.sock)

    def run(self):
        try:
            super().run()
        finally:
            for sock in list(self.lingering):
                util.close(sock)
            for conn in list(self.reading):
                util.close(conn.sock)

    # --- in the thread ---------------------------------------------------------------------

    def handle_request(self, req, conn):
        if getattr(conn, "continue_sent", False):
            req._expected_100_continue = False  # noqa: SLF001 - already sent by the read-ahead stage
        if not getattr(conn, "whole", True):
            req.force_close()  # the answer says so: the rest of the body is never read
        conn.sock.settimeout(WRITE_TIMEOUT_S)
        return super().handle_request(req, conn)

    def _keepalive_after(self, conn, keepalive):
        # the rest of a body handed on at the limit was never read: the connection cannot serve another
        return getattr(conn, "whole", True) and super()._keepalive_after(conn, keepalive)
