"""make run's stand-ins: python scripts/standins --smtp-port 2525 --twilio-port 3002 --slack-port 3003

Prints one line per page received (who, by what, the first line), addresses redacted."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/, for fake_slack

from standins import SlackApiStandin, SmtpStandin, Standins, TwilioStandin  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--certdir", default=".local/standins", help="where the self-signed certificate is kept")
    p.add_argument("--smtp-port", type=int, default=2525)
    p.add_argument("--twilio-port", type=int, default=3002)
    p.add_argument("--slack-port", type=int, default=3003)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s stand-in %(message)s", stream=sys.stdout)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs each RCPT TO address at INFO
    parts = [SmtpStandin(Path(args.certdir), args.host, args.smtp_port),
             TwilioStandin(Standins.TWILIO_SID, Standins.TWILIO_TOKEN, args.host, args.twilio_port),
             SlackApiStandin(Standins.SLACK_TOKEN, args.host, args.slack_port)]
    for part in parts:
        part.start()
    logging.info("SMTP on %s:%d (STARTTLS), Twilio on %s, Slack Web API on %s", args.host, parts[0].port,
                 parts[1].base_url, parts[2].base_url)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    for part in parts:
        part.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
