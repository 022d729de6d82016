"""Local stand-ins for the senders' providers, so pages can be sent and read without any account:
an SMTP server (aiosmtpd, STARTTLS on a self-signed certificate), a server speaking Twilio's
Messages/Calls REST shape, and Slack's Web API (chat.postMessage). Each keeps what it received
for tests to read, and logs one line per message: who was paged by what, addresses redacted as
ops.contact_address_redacted shows them, no secrets.

Tests start them with Standins().start() (the `standins` fixture of tests/conftest.py);
make run starts `python scripts/standins` when no SMTP server, Twilio account or Slack bot token
is configured (docs/notifications.md, Senders). Webhook pages and Slack's response_url replies
go to scripts/fake_slack.py, which records any POST.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

log = logging.getLogger("standins")


def redacted(address: str) -> str:
    """An address as the log shows it: b…@example.com, +…42, U…7Q."""
    if "@" in address:
        return address[:1] + "…@" + address.rpartition("@")[2]
    if address.startswith("+"):
        return "+…" + address[-2:]
    return address[:1] + "…" + address[-2:]


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """cert.pem and key.pem for localhost and 127.0.0.1 (openssl, once per directory)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    if not cert.exists() or not key.exists():
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365",
                        "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
    return cert, key


# --- SMTP -----------------------------------------------------------------------------


@dataclass
class Mail:
    envelope_from: str
    recipients: list[str]
    message: EmailMessage
    tls: bool  # delivered after STARTTLS
    peer: tuple  # the client's address and port: one per SMTP connection


class SmtpStandin:
    """aiosmtpd in a thread, offering STARTTLS (required before MAIL when require_tls); with
    `login` (user, password), AUTH over TLS with exactly those is required too."""

    def __init__(self, certdir: Path, host: str = "127.0.0.1", port: int = 0, require_tls: bool = True,
                 login: tuple[str, str] | None = None):
        import ssl

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        def authenticator(server, session, envelope, mechanism, data) -> AuthResult:
            given = (data.login.decode(), data.password.decode()) if isinstance(data, LoginPassword) else None
            return AuthResult(success=given == login)

        cert, key = self_signed_certificate(certdir)
        self.ca_file = str(cert)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert), str(key))
        self.received: list[Mail] = []
        self._lock = threading.Lock()
        self.controller = Controller(self, hostname=host, port=port or _free_port(host), tls_context=context,
                                     require_starttls=require_tls, ready_timeout=10,
                                     **({"authenticator": authenticator, "auth_required": True} if login else {}))
        self.host = host

    @property
    def port(self) -> int:
        return self.controller.port

    def start(self) -> SmtpStandin:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's naming)
        msg = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        mail = Mail(envelope.mail_from, list(envelope.rcpt_tos), msg, session.ssl is not None, tuple(session.peer))
        with self._lock:
            self.received.append(mail)
        log.info("email to %s: %s", ", ".join(map(redacted, mail.recipients)), msg["Subject"])
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Mail]:
        return _wait(lambda: self.received, count, timeout)


# --- HTTP (Twilio, Slack Web API) -------------------------------------------------------


@dataclass
class Call:
    """One request a stand-in received: its path, headers (lower-case) and fields."""
    path: str
    headers: dict[str, str]
    fields: dict
    answered: int = 0
    response: dict = field(default_factory=dict)  # what the stand-in answered (Twilio's sid: its callbacks name it)


@dataclass
class _Http:
    host: str = "127.0.0.1"
    port: int = 0
    received: list[Call] = field(default_factory=list)

    def start(self):
        self._server = ThreadingHTTPServer((self.host, self.port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Call]:
        return _wait(lambda: [c for c in self.received if 200 <= c.answered < 300], count, timeout)

    def answer(self, call: Call) -> tuple[int, dict]:
        raise NotImplementedError

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 (http.server's naming)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                if headers.get("content-type", "").startswith("application/json"):
                    fields = json.loads(raw or b"{}")
                else:
                    fields = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
                call = Call(self.path, headers, fields)
                status, body = standin.answer(call)
                call.answered, call.response = status, body
                standin.received.append(call)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler


class TwilioStandin(_Http):
    """POST /2010-04-01/Accounts/<sid>/Messages.json (To, From, Body) and .../Calls.json (To,
    From, Twiml), with HTTP Basic auth of the account SID and auth token, answered as Twilio
    does (201 and the new resource with its sid)."""

    def __init__(self, account_sid: str, auth_token: str, host: str = "127.0.0.1", port: int = 0):
        super().__init__(host, port)
        self.account_sid, self.auth_token = account_sid, auth_token
        self._count = 0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def answer(self, call: Call) -> tuple[int, dict]:
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if call.headers.get("authorization") != expected:
            return 401, {"code": 20003, "message": "Authenticate", "status": 401}
        prefix = f"/2010-04-01/Accounts/{self.account_sid}/"
        kind = {prefix + "Messages.json": "SM", prefix + "Calls.json": "CA"}.get(call.path)
        need = ("To", "From", "Body") if kind == "SM" else ("To", "From", "Twiml")
        if kind is None:
            return 404, {"code": 20404, "message": "The requested resource was not found", "status": 404}
        if any(not call.fields.get(k) for k in need):
            return 400, {"code": 21604, "message": f"{' and '.join(need)} are required", "status": 400}
        self._count += 1
        sid = f"{kind}{self._count:032x}"
        said = re.findall(r"<Say>(.*?)</Say>", call.fields.get("Twiml") or "")
        log.info("%s to %s: %s", "sms" if kind == "SM" else "voice call", redacted(call.fields["To"]),
                 (call.fields.get("Body") or (said[0] if said else "(TwiML)")).splitlines()[0])
        return 201, {"sid": sid, "account_sid": self.account_sid, "to": call.fields["To"], "from": call.fields["From"],
                     "body": call.fields.get("Body"), "status": "queued", "api_version": "2010-04-01",
                     "uri": f"{prefix}{'Messages' if kind == 'SM' else 'Calls'}/{sid}.json"}


class SlackApiStandin(_Http):
    """Slack's Web API chat.postMessage (POST /api/chat.postMessage, Authorization: Bearer
    <bot token>), answered {"ok": true, "channel", "ts"} as Slack does; and the response_url of a
    button press (POST /actions/..., no token), which replaces the message."""

    def __init__(self, bot_token: str, host: str = "127.0.0.1", port: int = 0):
        super().__init__(host, port)
        self.bot_token = bot_token
        self._count = 0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/api/"

    def answer(self, call: Call) -> tuple[int, dict]:
        if call.path.startswith("/actions/"):
            # a button press's response_url (https://hooks.slack.com/actions/...): the URL is the
            # credential, no token; the API accepts this host's as a stand-in's (OPS_SLACK_API_BASE)
            log.info("slack reply: %s", call.fields.get("text"))
            return 200, {"ok": True}
        if call.headers.get("authorization") != f"Bearer {self.bot_token}":
            return 200, {"ok": False, "error": "invalid_auth"}
        if call.path != "/api/chat.postMessage":
            return 200, {"ok": False, "error": "unknown_method"}
        if not call.fields.get("channel"):
            return 200, {"ok": False, "error": "channel_not_found"}
        self._count += 1
        ts = f"{int(time.time())}.{self._count:06d}"
        log.info("slack_dm to %s: %s", redacted(call.fields["channel"]), call.fields.get("text"))
        return 200, {"ok": True, "channel": call.fields["channel"], "ts": ts, "message": {"text": call.fields.get("text")}}


class Standins:
    """Every stand-in on a free port: smtp, twilio, slack (Web API) and hooks (any POST: webhook
    pages, response_url replies). env() is what the dispatcher needs to use them."""

    TWILIO_SID = "AC" + "0" * 31 + "1"
    TWILIO_TOKEN = "standin-auth-token"  # noqa: S105 (a stand-in's, not a secret)
    SLACK_TOKEN = "xoxb-standin"  # noqa: S105
    TWILIO_FROM = "+15005550006"

    def __init__(self, certdir: Path | None = None, host: str = "127.0.0.1",
                 ports: tuple[int, int, int, int] = (0, 0, 0, 0)):
        from fake_slack import FakeSlack

        self.certdir = certdir or Path(tempfile.mkdtemp(prefix="opsguard-standins-"))
        self.smtp = SmtpStandin(self.certdir, host, ports[0])
        self.twilio = TwilioStandin(self.TWILIO_SID, self.TWILIO_TOKEN, host, ports[1])
        self.slack = SlackApiStandin(self.SLACK_TOKEN, host, ports[2])
        self.hooks = FakeSlack(host, ports[3])

    def start(self) -> Standins:
        for s in (self.smtp, self.twilio, self.slack, self.hooks):
            s.start()
        return self

    def stop(self) -> None:
        for s in (self.smtp, self.twilio, self.slack, self.hooks):
            s.stop()

    def env(self) -> dict[str, str]:
        return {"OPS_SMTP_CA_FILE": self.smtp.ca_file, "TWILIO_ACCOUNT_SID": self.TWILIO_SID,
                "TWILIO_AUTH_TOKEN": self.TWILIO_TOKEN, "TWILIO_FROM": self.TWILIO_FROM,
                "OPS_TWILIO_API_BASE": self.twilio.base_url, "SLACK_BOT_TOKEN": self.SLACK_TOKEN,
                "OPS_SLACK_API_BASE": self.slack.base_url}


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _wait(get, count: int, timeout: float) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = list(get())
        if len(got) >= count:
            return got
        time.sleep(0.02)
    return list(get())
