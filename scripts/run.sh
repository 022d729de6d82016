#!/usr/bin/env bash
# `make run`: the embedded local cluster (pg_cron preloaded), migrations, demo data,
# and the ticks; prints what to paste into another shell. Ctrl-C, or SIGTERM/SIGINT to
# this script or to `make run`, stops everything it started within 5 s: the API, the
# dispatcher, the Slack stand-in, the senders' stand-ins, the ticker and the cluster (README, Stopping it).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
# `scripts/run.sh ha [ha.py options]` (make ha): the same product on etcd and three Patroni nodes
# (scripts/ha.py, docs/ha.md) instead of the embedded cluster
CLUSTER=(scripts/localpg.py)
if [ "${1:-}" = ha ]; then
    shift
    CLUSTER=(scripts/ha.py "$@")
    # a deployment on a cluster runs several API instances: they share the windows in the database
    export RATELIMIT_STORAGE_URI="${RATELIMIT_STORAGE_URI:-opsguard-database://}"
fi
cluster() {  # start | stop | info
    if [ "${CLUSTER[0]}" = scripts/ha.py ]; then
        $PY "${CLUSTER[0]}" "$1" "${CLUSTER[@]:1}"
    elif [ "$1" != info ]; then
        $PY "${CLUSTER[0]}" "$1"
    fi
}
export PYTHONPATH="$PWD/api:$PWD/scripts"
mkdir -p .local   # the secret and the logs, also when the cluster's data is elsewhere (OPSGUARD_PGDATA)
# body-only signatures (the HMAC of the body alone: no time, no path, so a captured one works
# again) are off by default, make serve included; on here, because make smoke signs its tick so
export OPS_HMAC_BODY_ONLY="${OPS_HMAC_BODY_ONLY:-on}"
if [ "${OPS_HMAC_BODY_ONLY,,}" = on ]; then
    body_only="ON (make smoke signs its tick so): tick and ack accept an HMAC of the body alone, replayable; OPS_HMAC_BODY_ONLY=off make run refuses it"
else
    body_only="off: every request signs v1 (make smoke's body-only tick needs OPS_HMAC_BODY_ONLY=on)"
fi
STOP_GRACE_TICKS=30   # tenths of a second a child gets to exit on SIGTERM before SIGKILL

children=()
idle=""
stop_children() {
    local pid alive=()
    [ -z "$idle" ] || kill "$idle" 2>/dev/null
    [ ${#children[@]} -gt 0 ] || return 0
    kill -TERM "${children[@]}" 2>/dev/null || true
    for _ in $(seq "$STOP_GRACE_TICKS"); do
        alive=()
        for pid in "${children[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
        [ ${#alive[@]} -gt 0 ] || break
        sleep 0.1
    done
    # a child still busy after the grace (a slow in-flight request): it and its own children go
    for pid in "${alive[@]}"; do
        pkill -KILL -P "$pid" 2>/dev/null || true
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
cleanup() {
    local status=$1
    set +e
    trap '' INT TERM HUP   # a second Ctrl-C must not cut the cleanup short and orphan a child
    trap - EXIT
    stop_children
    cluster stop || true
    echo "opsguard stopped."
    exit "$status"
}
trap 'cleanup 0' INT TERM HUP
trap 'cleanup $?' EXIT

# GNU make passes a SIGTERM on to this script, but not a SIGINT: it expects the terminal to
# have sent that to the whole process group, and waits for us. So `kill -INT <make's pid>`
# shows here only as the SIGINT make is handling (blocked in its signal mask, Linux /proc).
parent_is_make=""
[ "$(cat "/proc/$PPID/comm" 2>/dev/null)" = make ] && parent_is_make=yes
make_was_interrupted() {
    local key mask
    [ -n "$parent_is_make" ] || return 1
    while read -r key mask; do
        [ "$key" = SigBlk: ] && (( 16#$mask & 2 )) && return 0
    done <"/proc/$PPID/status" 2>/dev/null
    return 1
}

DATABASE_URL=$(cluster start)
export DATABASE_URL
$PY -m opsguard.migrate "$DATABASE_URL" | sed 's/^/migrate: /'
psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -f scripts/demo_data.sql

# the API's signing secret, kept across runs so pasted shells stay valid
[ -s .local/hmac_secret ] || $PY -c 'import secrets; print(secrets.token_hex(32))' >.local/hmac_secret
OPS_HMAC_SECRET=$(cat .local/hmac_secret)
# Slack's signing secret, a demo one made like the HMAC secret, so that the slash commands can
# be tried with the signed curl printed below (the demo Slack user is in scripts/demo_data.sql)
[ -n "${SLACK_SIGNING_SECRET:-}" ] || {
    [ -s .local/slack_signing_secret ] || $PY -c 'import secrets; print(secrets.token_hex(16))' >.local/slack_signing_secret
    SLACK_SIGNING_SECRET=$(cat .local/slack_signing_secret)
}
export OPS_HMAC_SECRET SLACK_SIGNING_SECRET PORT="${PORT:-3000}"
HOST="http://localhost:$PORT"

# notifications: a real webhook if one is set; else a local stand-in for Slack, so an
# escalation visibly delivers (`make run` is the demo, never production)
DEMO_WEBHOOK="http://127.0.0.1:${SLACK_PORT:-3001}/services/T0DEMO/B0DEMO/demo"
webhook=$(psql -X -At "$DATABASE_URL" -c "SELECT ops.setting('slack_webhook_url') #>> '{}'")
if [ -z "$webhook" ] || [ "$webhook" = "$DEMO_WEBHOOK" ]; then
    $PY scripts/fake_slack.py --port "${SLACK_PORT:-3001}" >>.local/slack.log 2>&1 &
    children+=($!)
    psql -X -q -At "$DATABASE_URL" -c "SELECT 1 FROM ops.set_setting('slack_webhook_url', '$DEMO_WEBHOOK', 'make-run')" >/dev/null
    webhook="$DEMO_WEBHOOK (a local stand-in for Slack; messages in .local/slack.log)"
fi

# the links in pages (/p/<token>) and the URL Twilio's signatures cover: this API, unless one was
# set by hand (a later run on another PORT moves make run's own along)
psql -X -q -At "$DATABASE_URL" -c "SELECT ops.set_setting('app_base_url', '$HOST', 'make-run') FROM ops.settings
    WHERE key = 'app_base_url' AND (coalesce(value #>> '{}', '') = '' OR updated_by = 'make-run')" >/dev/null

# pages to people (docs/notifications.md, Senders): the SMTP server, Twilio account and Slack bot
# that are configured; local stand-ins for the others, which log who was paged by what
smtp_local=$(psql -X -At "$DATABASE_URL" -c \
    "SELECT value #>> '{}' = '' OR updated_by = 'make-run' FROM ops.settings WHERE key = 'smtp_host'")
if [ "$smtp_local" = t ] || [ -z "${TWILIO_ACCOUNT_SID:-}" ] || [ -z "${SLACK_BOT_TOKEN:-}" ]; then
    rm -f .local/standins/env.sh
    $PY scripts/standins --certdir .local/standins --env-file .local/standins/env.sh >>.local/standins.log 2>&1 &
    children+=($!)
    for _ in $(seq 100); do
        [ -s .local/standins/env.sh ] && break
        kill -0 "${children[-1]}" 2>/dev/null || { tail -3 .local/standins.log >&2; exit 1; }
        sleep 0.1
    done
    # shellcheck source=/dev/null
    . .local/standins/env.sh
fi
if [ "$smtp_local" = t ]; then
    psql -X -q -At "$DATABASE_URL" -c "SELECT 1 FROM ops.set_setting('smtp_host', '$STANDIN_SMTP_HOST', 'make-run')" \
        -c "SELECT 1 FROM ops.set_setting('smtp_port', '$STANDIN_SMTP_PORT', 'make-run')" >/dev/null
    export OPS_SMTP_CA_FILE="$STANDIN_SMTP_CA_FILE"
    email="stand-in SMTP $STANDIN_SMTP_HOST:$STANDIN_SMTP_PORT (STARTTLS, a self-signed certificate)"
else
    email="$(psql -X -At "$DATABASE_URL" -c "SELECT ops.setting('smtp_host') #>> '{}' || ':' || ops.setting('smtp_port')")"
fi
if [ -z "${TWILIO_ACCOUNT_SID:-}" ]; then
    export TWILIO_ACCOUNT_SID="$STANDIN_TWILIO_ACCOUNT_SID" TWILIO_AUTH_TOKEN="$STANDIN_TWILIO_AUTH_TOKEN"
    export TWILIO_FROM="$STANDIN_TWILIO_FROM" OPS_TWILIO_API_BASE="$STANDIN_TWILIO_API_BASE"
    twilio="stand-in Twilio $STANDIN_TWILIO_API_BASE"
else
    twilio="Twilio account $TWILIO_ACCOUNT_SID, from $TWILIO_FROM"
fi
if [ -z "${SLACK_BOT_TOKEN:-}" ]; then
    export SLACK_BOT_TOKEN="$STANDIN_SLACK_BOT_TOKEN" OPS_SLACK_API_BASE="$STANDIN_SLACK_API_BASE"
    slack_dm="stand-in Slack Web API $STANDIN_SLACK_API_BASE"
else
    slack_dm="Slack's Web API (SLACK_BOT_TOKEN)"
fi
# the API after the stand-ins: it answers their pages (TWILIO_AUTH_TOKEN checks an SMS reply's
# signature, OPS_SLACK_API_BASE is where a Slack button's response_url may point)
.venv/bin/gunicorn -c api/gunicorn.conf.py 'opsguard.app:create_app()' >>.local/api.log 2>&1 &
api=$!
children+=("$api")
for _ in $(seq 100); do
    curl -s -o /dev/null "$HOST/healthz" && break   # any answer: the API is up (503 says why not healthy)
    kill -0 "${children[-1]}" 2>/dev/null || { echo "the API did not start; see .local/api.log" >&2; exit 1; }
    sleep 0.2
done
$PY -m opsguard.dispatcher --dsn "$DATABASE_URL" >>.local/dispatcher.log 2>&1 &
children+=($!)
sleep 0.5
kill -0 "${children[-1]}" 2>/dev/null || { tail -3 .local/dispatcher.log >&2; exit 1; }

if [ "$(psql -X -At "$DATABASE_URL" -c 'SELECT ops.pg_cron_status()')" = installed ]; then
    ticks="pg_cron job opsguard-escalation-tick, every minute"
else
    $PY -m opsguard.ticker --dsn "$DATABASE_URL" >>.local/ticker.log 2>&1 &
    children+=($!)
    ticks="Python ticker (pg_cron unavailable), log in .local/ticker.log"
fi

# the Prometheus collector, when a route's metrics come from Prometheus (docs/release-guard.md)
if [ "$(psql -X -At "$DATABASE_URL" -c "SELECT count(*) FROM ops.metrics_sources WHERE kind = 'prometheus'")" != 0 ]; then
    $PY -m opsguard.collector --dsn "$DATABASE_URL" >>.local/collector.log 2>&1 &
    children+=($!)
    collect="collector every minute, log in .local/collector.log"
else
    collect="no Prometheus source (SELECT ops.set_metrics_source(...), then make collect)"
fi

# the line printed under "oncall:": a signed /oncall as Slack sends it, signed when pasted (a
# signature is good for 5 minutes and once), with the variables exported above
slack_oncall_curl() {
    cat <<'CURL'
body='command=%2Foncall&text=&user_id=U0DEMO&team_id=T0DEMO'; ts=$(date +%s); curl -s -X POST "$HOST/chat/slack/commands" -H "X-Slack-Request-Timestamp: $ts" -H "X-Slack-Signature: v0=$(printf 'v0:%s:%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$SLACK_SIGNING_SECRET" | awk '{print $NF}')" --data "$body"; echo
CURL
}

cat <<INFO

opsguard is running. Paste into another shell:

export HOST="$HOST"
export DATABASE_URL="$DATABASE_URL"
export OPS_HMAC_SECRET="$OPS_HMAC_SECRET"
export PSQLRC="$PWD/scripts/psqlrc"   # quiet psql: psql -At ... RETURNING id prints only the id (README)
export SLACK_SIGNING_SECRET="$SLACK_SIGNING_SECRET"

api:     $HOST (log in .local/api.log); make smoke runs the backend smoke test against it
sign:    X-Timestamp + X-Signature: v1=HMAC(secret, "v1:<ts>:<METHOD>:<path?query>:<body>") (README, Calling the API)
body-only: $body_only
ticks:   $ticks
slack:   dispatcher (log in .local/dispatcher.log) delivering to $webhook
pages:   email via $email; SMS and calls via $twilio; Slack DMs via $slack_dm
         (stand-ins log who was paged by what in .local/standins.log; docs/notifications.md, Senders)
metrics: $collect
try:     psql "\$DATABASE_URL" -c 'SELECT incident_key, status, escalation_level, next_due_at FROM incidents'
watch:   curl -s $HOST/metrics | grep ^opsguard_; curl -s $HOST/healthz | jq; psql "\$DATABASE_URL" -c 'SELECT * FROM ops.alerts'
alerts:  make alertmanager (with the exports above) starts a real Alertmanager sending here (docs/intake.md, Trying it locally)
oncall:  Slack's /oncall as the demo Slack user U0DEMO (dana), signed as Slack signs: v0=HMAC(SLACK_SIGNING_SECRET, "v0:<ts>:<body>")
$(slack_oncall_curl)
stop:    Ctrl-C, or kill -TERM $$ (SIGINT too; the same to make run's pid works)
INFO
cluster info

while true; do
    sleep 1 &
    idle=$!
    wait "$idle" || true
    idle=""
    make_was_interrupted && cleanup 0
    kill -0 "$api" 2>/dev/null || { echo "the API exited; see .local/api.log" >&2; exit 1; }
done
