#!/usr/bin/env bash
# `make smoke`: the backend-only smoke test against $HOST and $DATABASE_URL (default: make
# run's); README, "The smoke test", lists its six steps. Steps 1-5 are plain psql, curl,
# openssl and jq commands, kept as the original smoke script wrote them (its tick is signed
# body-only, which the API accepts only with OPS_HMAC_BODY_ONLY=on, as make run starts it; step 1
# needs quiet psql: PSQLRC below);
# step 6 is ours, signed v1 like every other client: it resolves the incident step 1 opened.
# Whatever happens, no incident the test opened is left open, and its files are private.
set -euo pipefail
cd "$(dirname "$0")/.."
HOST="${HOST:-http://localhost:3000}"
DATABASE_URL="${DATABASE_URL:-$(.venv/bin/python scripts/localpg.py url)}"
OPS_HMAC_SECRET="${OPS_HMAC_SECRET:-$(cat .local/hmac_secret 2>/dev/null || true)}"
export PSQLRC="${PSQLRC:-$PWD/scripts/psqlrc}"   # quiet psql: -At ... RETURNING id prints only the id
[ -n "$OPS_HMAC_SECRET" ] || { echo "smoke: set OPS_HMAC_SECRET (make run prints it)" >&2; exit 2; }
curl -s -o /dev/null "$HOST/healthz" \
  || { echo "smoke: no API answers at $HOST; start 'make run' (or set HOST) first" >&2; exit 2; }
psql "$DATABASE_URL" -At -c "SELECT 1" >/dev/null \
  || { echo "smoke: cannot reach the database at $DATABASE_URL; start 'make run' (or set DATABASE_URL) first" >&2; exit 2; }

# private to this run: two users (or two runs) on one machine never share or clobber these
TMP=$(mktemp -d "${TMPDIR:-/tmp}/opsguard-smoke.XXXXXX")
INCIDENT_ID=""
finish() {
    status=$?
    # a failed run must not leave the incident it opened blocking the release guard
    if [ "$status" -ne 0 ] && [[ "$INCIDENT_ID" =~ ^[0-9a-f-]{36}$ ]]; then
        psql "$DATABASE_URL" -At -c "SELECT status FROM ops.resolve_incident('$INCIDENT_ID', 'backend-smoke', 'smoke test failed')" \
          >/dev/null 2>&1 && echo "smoke: resolved the incident it opened ($INCIDENT_ID)" >&2
    fi
    rm -rf "$TMP"
    exit "$status"
}
trap finish EXIT
fail() { echo "SMOKE FAILED: $*" >&2; exit 1; }

# v1 signature (docs/api.md): timestamp, method, path with query, body; prints the curl headers
sign_v1() {  # METHOD PATH BODY
    local ts sig
    ts=$(date +%s)
    sig=$(printf 'v1:%s:%s:%s:%s' "$ts" "$1" "$2" "$3" | openssl dgst -sha256 -hmac "$OPS_HMAC_SECRET" -binary | xxd -p -c 256)
    printf '%s\n' "X-Timestamp: $ts" "X-Signature: v1=$sig"
}

# 1) Seed a blocking incident (critical L1 inside 10m lookback)
INCIDENT_ID=$(psql "$DATABASE_URL" -At -c "
WITH pick AS (SELECT id FROM incidents ORDER BY random() LIMIT 1)
UPDATE incidents
SET status='open',
    severity='critical',
    acknowledged_at=NULL,
    escalation_level=1,
    first_seen=now() - interval '6 minutes',
    last_seen=now()
WHERE id IN (SELECT id FROM pick)
RETURNING id;") || fail "step 1: psql refused the UPDATE (see its message and hint above; a resolved incident whose key is active again cannot be re-opened: run again to pick another)"
echo "INCIDENT_ID=$INCIDENT_ID"
[[ "$INCIDENT_ID" =~ ^[0-9a-f-]{36}$ ]] || fail "step 1 did not return one incident id (no incidents in the database? make run loads demo data)"

# 2) Force one escalation tick (DRY_RUN; no Slack needed)
BODY='{}'
SIG=$(printf '%s' "$BODY" | openssl dgst -sha256 -hmac "$OPS_HMAC_SECRET" -binary | xxd -p -c 256)
TICK=$(curl -s -X POST "$HOST/ops/escalation/tick" \
  -H "Content-Type: application/json" \
  -H "X-Signature: $SIG" \
  --data "$BODY")
echo "$TICK" | jq
[ "$(echo "$TICK" | jq -r .ok)" = true ] || fail "step 2: the tick did not answer ok:true (is OPS_HMAC_SECRET the API's, and does it run with OPS_HMAC_BODY_ONLY=on, as make run starts it?)"

# 3) Release Guard should FAIL (blocks promotion)
curl -s -o "$TMP/guard_fail.json" -w "HTTP:%{http_code}\n" "$HOST/ops/release-guard" | tee "$TMP/guard_fail.code"
echo "---- guard_fail.json ----"; cat "$TMP/guard_fail.json"; echo
grep -q "HTTP:409" "$TMP/guard_fail.code" || fail "step 3: expected HTTP:409"
[ "$(jq -r .ok "$TMP/guard_fail.json")" = false ] || fail "step 3: expected ok:false"
jq -e --arg id "$INCIDENT_ID" '.failing | any(.id == $id)' "$TMP/guard_fail.json" >/dev/null \
  || fail "step 3: the seeded incident is not listed"

# 4) Clear the blocker (ack via SQL; no ChatOps needed)
psql "$DATABASE_URL" -c "
UPDATE incidents
SET status='acknowledged',
    acknowledged_by='backend-smoke',
    acknowledged_at=now()
WHERE id='${INCIDENT_ID}';"
STATE=$(psql "$DATABASE_URL" -At -c "SELECT status || ' ' || acknowledged_by FROM incidents WHERE id='${INCIDENT_ID}'")
[ "$STATE" = "acknowledged backend-smoke" ] || fail "step 4: incident is '$STATE'"

# 5) Release Guard should PASS now
curl -s -o "$TMP/guard_ok.json" -w "HTTP:%{http_code}\n" "$HOST/ops/release-guard" | tee "$TMP/guard_ok.code"
echo "---- guard_ok.json ----"; cat "$TMP/guard_ok.json"; echo
grep -q "HTTP:200" "$TMP/guard_ok.code" || fail "step 5: expected HTTP:200 (something else still blocks: see above)"
[ "$(jq -r '.ok, .failingCount' "$TMP/guard_ok.json" | tr '\n' ' ')" = "true 0 " ] || fail "step 5: expected ok:true, failingCount:0"

# 6) Resolve the incident through the API, signed v1, so the test leaves nothing open behind it
P="/ops/incidents/$INCIDENT_ID/resolve"; BODY='{"note":"backend smoke test done"}'
mapfile -t SIGNED < <(sign_v1 POST "$P" "$BODY")
RESOLVED=$(curl -s -X POST "$HOST$P" -H "${SIGNED[0]}" -H "${SIGNED[1]}" -H "Content-Type: application/json" --data "$BODY")
echo "$RESOLVED" | jq -c '{ok, status: .incident.status, error, message}'
[ "$(echo "$RESOLVED" | jq -r .incident.status)" = resolved ] || fail "step 6: the v1-signed resolve did not answer status resolved"

echo "smoke: all six steps passed"
