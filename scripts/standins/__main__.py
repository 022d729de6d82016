"""make run's stand-ins: python scripts/standins [--env-file .local/standins/env.sh]

Prints one line per page received (who, by what, the first line), addresses redacted. Ports are
free ones unless given; --env-file then gets, as shell assignments, the STANDIN_* values the
dispatcher needs to use them (scripts/run.sh sources it)."""

from __future__ import annotations

import argparse
import logging
import shlex
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
    p.add_argument("--smtp-port", type=int, default=0)
    p.add_argument("--twilio-port", type=int, default=0)
    p.add_argument("--slack-port", type=int, default=0)
    p.add_argument("--env-file", help="write the STANDIN_* shell assignments here once listening")
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
    if args.env_file:
        env = {"STANDIN_SMTP_HOST": args.host, "STANDIN_SMTP_PORT": str(parts[0].port),
               "STANDIN_SMTP_CA_FILE": str(Path(parts[0].ca_file).resolve()),
               "STANDIN_TWILIO_ACCOUNT_SID": Standins.TWILIO_SID, "STANDIN_TWILIO_AUTH_TOKEN": Standins.TWILIO_TOKEN,
               "STANDIN_TWILIO_FROM": Standins.TWILIO_FROM, "STANDIN_TWILIO_API_BASE": parts[1].base_url,
               "STANDIN_SLACK_BOT_TOKEN": Standins.SLACK_TOKEN, "STANDIN_SLACK_API_BASE": parts[2].base_url}
        tmp = Path(args.env_file + ".tmp")
        tmp.write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in env.items()))
        tmp.replace(args.env_file)  # whole or not at all: run.sh waits for it
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    for part in parts:
        part.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
