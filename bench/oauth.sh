#!/usr/bin/env bash
# make bench-oauth: client-credentials tokens/s and token exchanges/s
# (bench/cmd/tokenload) against a running xavyo on loopback, each from a
# separate process, beside the raw ES256 signing rate of the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/xavyo" ./cmd/xavyo
go build -o "$work/tokenload" ./bench/cmd/tokenload
XAVYO_DATA_DIR="$work/data" XAVYO_ADMIN_ADDR=127.0.0.1:18180 XAVYO_AGENT_ADDR=127.0.0.1:18543 XAVYO_LOG_LEVEL=error \
  XAVYO_DEFAULT_ADMIN_PASSWORD=Initial-passphrase-1 "$work/xavyo" serve > "$work/out" 2>&1 &
echo $! > "$work/pid"
admin=http://127.0.0.1:18180
for _ in $(seq 1 100); do curl -sf $admin/readyz >/dev/null && break; sleep 0.1; done
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
login=$(curl -sf -X POST $admin/api/v1/auth/login -H 'Content-Type: application/json' \
  -d '{"tenant":"default","login":"admin@example.com","password":"Initial-passphrase-1"}' | json "['access_token']")
user=$(curl -sf -X POST $admin/api/v1/auth/password -H "Authorization: Bearer $login" -H 'Content-Type: application/json' \
  -d '{"current_password":"Initial-passphrase-1","new_password":"Correct-horse-battery-9"}' | json "['access_token']")
owner=$(curl -sf $admin/api/v1/me -H "Authorization: Bearer $user" | json "['id']")
curl -sf -X POST $admin/api/v1/nhis -H "Authorization: Bearer $user" -H 'Content-Type: application/json' \
  -d "{\"kind\":\"agent\",\"slug\":\"bench-agent\",\"name\":\"Bench\",\"owner_id\":\"$owner\"}" > "$work/agent.json"
id=$(json "['client_id']" < "$work/agent.json")
secret=$(json "['client_secret']" < "$work/agent.json")

echo "== raw signing (same machine, same run)"
go test -run '^$' -bench 'BenchmarkToken/ES256/sign' -benchtime 3s ./bench/ | grep -E '^Benchmark'
echo "== client credentials (tokenload, 16 workers, 10 s)"
"$work/tokenload" -grant client_credentials -url $admin/t/default/token -client-id "$id" -client-secret "$secret" -c 16 -d 10s
echo "== token exchange (tokenload, 16 workers, 10 s)"
"$work/tokenload" -grant token_exchange -url $admin/t/default/token -client-id "$id" -client-secret "$secret" -subject-token "$user" -c 16 -d 10s
