#!/usr/bin/env bash
# make bench-a2a: A2A SendMessage through the gateway versus directly to
# the same agent (the a2a CLI's echo agent of a2a-go v2.3.1), in one run,
# at 1 and 32 concurrent clients; agent plane in plaintext (as behind a
# TLS-terminating proxy), bearer auth, entitlement check and audit on.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
DUR=${DUR:-10s}
WARM=${WARM:-2s}
cleanup() {
  for p in "$work"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
# XAVYO_BIN: a prebuilt xavyo to measure instead (to compare two builds in turn).
if [ -n "${XAVYO_BIN:-}" ]; then cp "$XAVYO_BIN" "$work/xavyo"; else go build -o "$work/xavyo" ./cmd/xavyo; fi
go build -o "$work/a2aload" ./bench/cmd/a2aload
mkdir "$work/cli" && (cd "$work/cli" && GOFLAGS= go mod init a2acli >/dev/null 2>&1 && GOFLAGS= go get github.com/a2aproject/a2a-go/v2/cmd/a2a@v2.3.1 >/dev/null 2>&1 \
  && GOFLAGS= go build -o "$work/a2a" github.com/a2aproject/a2a-go/v2/cmd/a2a)
"$work/a2a" serve --echo --transport jsonrpc --host 127.0.0.1 --port 19821 --quiet > "$work/echo.log" 2>&1 &
echo $! > "$work/echo.pid"

admin=http://127.0.0.1:18190
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
XAVYO_DATA_DIR="$work/data" XAVYO_ADMIN_ADDR=127.0.0.1:18190 XAVYO_AGENT_ADDR=127.0.0.1:18553 XAVYO_LOG_LEVEL=error \
  XAVYO_EGRESS_ALLOW_PRIVATE=true XAVYO_AGENT_TLS_PLAINTEXT=true XAVYO_DEFAULT_ADMIN_PASSWORD=Initial-passphrase-1 \
  "$work/xavyo" serve > "$work/xavyo.log" 2>&1 &
echo $! > "$work/xavyo.pid"
for _ in $(seq 1 200); do curl -sf $admin/readyz >/dev/null && break; sleep 0.1; done
login=$(curl -sf -X POST $admin/api/v1/auth/login -H 'Content-Type: application/json' \
  -d '{"tenant":"default","login":"admin@example.com","password":"Initial-passphrase-1"}' | json "['access_token']")
user=$(curl -sf -X POST $admin/api/v1/auth/password -H "Authorization: Bearer $login" -H 'Content-Type: application/json' \
  -d '{"current_password":"Initial-passphrase-1","new_password":"Correct-horse-battery-9"}' | json "['access_token']")
auth="Authorization: Bearer $user"
owner=$(curl -sf $admin/api/v1/me -H "$auth" | json "['id']")
curl -sf -X POST $admin/api/v1/nhis -H "$auth" -H 'Content-Type: application/json' \
  -d "{\"kind\":\"agent\",\"slug\":\"echo\",\"name\":\"Echo\",\"owner_id\":\"$owner\",\"profile\":{\"agent\":{\"a2a_endpoint\":\"http://127.0.0.1:19821\"}}}" >/dev/null
curl -sf -X POST $admin/api/v1/nhis -H "$auth" -H 'Content-Type: application/json' \
  -d "{\"kind\":\"agent\",\"slug\":\"caller\",\"name\":\"Caller\",\"owner_id\":\"$owner\"}" > "$work/caller.json"
caller=$(json "['id']" < "$work/caller.json")
cid=$(json "['client_id']" < "$work/caller.json")
csec=$(json "['client_secret']" < "$work/caller.json")
for _ in $(seq 1 100); do
  app=$(curl -sf "$admin/api/v1/applications?type=a2a_agent" -H "$auth" | python3 -c "import json,sys; print(([a['id'] for a in json.load(sys.stdin)['items'] if a['key']=='a2a-echo']+[''])[0])")
  [ -n "$app" ] && break; sleep 0.1
done
ent=$(curl -sf "$admin/api/v1/applications/$app/entitlements" -H "$auth" | json "['items'][0]['id']")
curl -sf -X POST $admin/api/v1/assignments -H "$auth" -H 'Content-Type: application/json' \
  -d "{\"subject_type\":\"nhi\",\"subject_id\":\"$caller\",\"target_type\":\"entitlement\",\"target_id\":\"$ent\"}" >/dev/null
url=http://127.0.0.1:18553/t/default/a2a/agents/echo
tok=$(curl -sf -X POST $admin/t/default/token -u "$cid:$csec" -d grant_type=client_credentials -d scope=a2a \
  --data-urlencode "resource=$url" | json "['access_token']")
echo "== A2A SendMessage, gateway vs direct (a2aload; $DUR per point, warm-up $WARM; plaintext agent plane)"
for c in 1 32; do
  direct=$("$work/a2aload" -url http://127.0.0.1:19821 -c $c -d "$DUR" -warmup "$WARM")
  via=$("$work/a2aload" -url "$url" -token "$tok" -c $c -d "$DUR" -warmup "$WARM")
  python3 - "$c" "$direct" "$via" <<'PY'
import json, sys
c, d, g = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"a2a c={c:>2}  direct {d['calls_per_s']:8.0f}/s p50 {d['p50_ms']:.3f} ms | gateway {g['calls_per_s']:8.0f}/s p50 {g['p50_ms']:.3f} ms p99 {g['p99_ms']:.3f} ms "
      f"errors {d['errors']}+{g['errors']} | ratio {g['calls_per_s']/d['calls_per_s']:.2f}  p50 x{g['p50_ms']/d['p50_ms']:.2f}"
      + (f"  first error: {g['first_error'] or d['first_error']}" if d['errors'] or g['errors'] else ""))
PY
done
