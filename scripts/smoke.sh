#!/usr/bin/env bash
# `make smoke`: the seeds' backend-only smoke test (seeds/000_*.txt) with the same psql,
# curl, openssl and jq steps, against $HOST and $DATABASE_URL (default: make run's).
set -euo pipefail
cd "$(dirname "$0")/.."
HOST="${HOST:-http://localhost:3000}"
DATABASE_URL="${DATABASE_URL:-$(.venv/bin/python scripts/localpg.py url)}"
OPS_HMAC_SECRET="${OPS_HMAC_SECRET:-$(cat .local/hmac_secret 2>/dev/null || true)}"
export PSQLRC="${PSQLRC:-$PWD/scripts/psqlrc}"   # quiet psql: -At ... RETURNING id prints only the id
[ -n "$OPS_HMAC_SECRET" ] || { echo "set OPS_HMAC_SECRET (make run prints it)" >&2; exit 2; }
fail() { echo "SMOKE FAILED: $*" >&2; exit 1; }

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
RETURNING id;")
echo "INCIDENT_ID=$INCIDENT_ID"
[[ "$INCIDENT_ID" =~ ^[0-9a-f-]{36}$ ]] || fail "step 1 did not return one incident id"

# 2) Force one escalation tick (DRY_RUN; no Slack needed)
BODY='{}'
SIG=$(printf '%s' "$BODY" | openssl dgst -sha256 -hmac "$OPS_HMAC_SECRET" -binary | xxd -p -c 256)
TICK=$(curl -s -X POST "$HOST/ops/escalation/tick" \
  -H "Content-Type: application/json" \
  -H "X-Signature: $SIG" \
  --data "$BODY")
echo "$TICK" | jq
[ "$(echo "$TICK" | jq -r .ok)" = true ] || fail "step 2: the tick did not answer ok:true"

# 3) Release Guard should FAIL (blocks promotion)
curl -s -o /tmp/guard_fail.json -w "HTTP:%{http_code}\n" "$HOST/ops/release-guard" | tee /tmp/guard_fail.code
echo "---- guard_fail.json ----"; cat /tmp/guard_fail.json; echo
grep -q "HTTP:409" /tmp/guard_fail.code || fail "step 3: expected HTTP:409"
[ "$(jq -r .ok /tmp/guard_fail.json)" = false ] || fail "step 3: expected ok:false"
jq -e --arg id "$INCIDENT_ID" '.failing | any(.id == $id)' /tmp/guard_fail.json >/dev/null \
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
curl -s -o /tmp/guard_ok.json -w "HTTP:%{http_code}\n" "$HOST/ops/release-guard" | tee /tmp/guard_ok.code
echo "---- guard_ok.json ----"; cat /tmp/guard_ok.json; echo
grep -q "HTTP:200" /tmp/guard_ok.code || fail "step 5: expected HTTP:200 (something else still blocks: see above)"
[ "$(jq -r '.ok, .failingCount' /tmp/guard_ok.json | tr '\n' ' ')" = "true 0 " ] || fail "step 5: expected ok:true, failingCount:0"

echo "smoke: all five steps passed"
