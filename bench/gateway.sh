#!/usr/bin/env bash
# make bench-gateway: tools/call through the MCP gateway versus directly to
# the same upstream (bench/cmd/mcpload; examples/mcp-echo as upstream), in one run, at 1 and 32
# concurrent sessions, bearer auth and audit on; the agent plane first in
# plaintext (as behind a TLS-terminating proxy), then with TLS. Reports the
# ratios and the gateway's CPU time per call.
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
# XAVYO_BIN: a prebuilt binary instead (to compare two builds in turn);
# POINTS: which parts to run (default: all).
POINTS=${POINTS:-"footprint hop plaintext safety eras tls"}
if [ -n "${XAVYO_BIN:-}" ]; then cp "$XAVYO_BIN" "$work/xavyo"; else go build -o "$work/xavyo" ./cmd/xavyo; fi
go build -o "$work/bareproxy" ./bench/cmd/bareproxy
go build -o "$work/eraload" ./bench/cmd/eraload
go build -o "$work/mcp-upstream" ./examples/mcp-echo
go build -o "$work/mcpload" ./bench/cmd/mcpload
"$work/mcp-upstream" -addr 127.0.0.1:19801 -tools 3 > "$work/upstream.log" 2>&1 &
echo $! > "$work/upstream.pid"
"$work/bareproxy" -listen 127.0.0.1:19802 -target http://127.0.0.1:19801 > "$work/bareproxy.log" 2>&1 &
echo $! > "$work/bareproxy.pid"

admin=http://127.0.0.1:18180
metrics_token=bench-metrics-token-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
start_xavyo() { # $1: plaintext true|false
  if curl -sf $admin/readyz >/dev/null; then echo "something already answers on $admin: stop it first"; exit 1; fi
  XAVYO_DATA_DIR="$work/data" XAVYO_ADMIN_ADDR=127.0.0.1:18180 XAVYO_AGENT_ADDR=127.0.0.1:18543 XAVYO_LOG_LEVEL=error \
    XAVYO_EGRESS_ALLOW_PRIVATE=true XAVYO_AGENT_TLS_PLAINTEXT=$1 XAVYO_DEFAULT_ADMIN_PASSWORD=Initial-passphrase-1 \
    XAVYO_METRICS_TOKEN=$metrics_token XAVYO_MCP_MAX_STREAMS_PER_PRINCIPAL=1000 \
    "$work/xavyo" serve > "$work/xavyo.log" 2>&1 &
  echo $! > "$work/xavyo.pid"
  for _ in $(seq 1 200); do curl -sf $admin/readyz >/dev/null && return; sleep 0.1; done
  cat "$work/xavyo.log"; exit 1
}
stop_xavyo() { kill "$(cat "$work/xavyo.pid")"; wait "$(cat "$work/xavyo.pid")" 2>/dev/null || true; rm -f "$work/xavyo.pid"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$(cat "$work/xavyo.pid")/stat"; }
go_mem_kib() { # the Go heap in use plus goroutine stacks, in KiB
  curl -sf $admin/metrics -H "Authorization: Bearer $metrics_token" |
    awk '$1 == "go_memstats_heap_inuse_bytes" || $1 == "go_memstats_stack_inuse_bytes" {s += $2} END {printf "%d", s / 1024}'
}
goroutines() { curl -sf $admin/metrics -H "Authorization: Bearer $metrics_token" | awk '$1 == "go_goroutines" {print $2}'; }
status_kib() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$(cat "$work/xavyo.pid")/status"; } # $1: VmHWM, VmRSS

start_xavyo true
sleep 2
idle_kib=$(status_kib VmRSS)
login=$(curl -sf -X POST $admin/api/v1/auth/login -H 'Content-Type: application/json' \
  -d '{"tenant":"default","login":"admin@example.com","password":"Initial-passphrase-1"}' | json "['access_token']")
user=$(curl -sf -X POST $admin/api/v1/auth/password -H "Authorization: Bearer $login" -H 'Content-Type: application/json' \
  -d '{"current_password":"Initial-passphrase-1","new_password":"Correct-horse-battery-9"}' | json "['access_token']")
auth="Authorization: Bearer $user"
owner=$(curl -sf $admin/api/v1/me -H "$auth" | json "['id']")
server=$(curl -sf -X POST $admin/api/v1/nhis -H "$auth" -H 'Content-Type: application/json' \
  -d "{\"kind\":\"tool_server\",\"slug\":\"bench\",\"name\":\"Bench\",\"owner_id\":\"$owner\",\"profile\":{\"tool_server\":{\"transport\":\"streamable_http\",\"url\":\"http://127.0.0.1:19801/mcp\"}}}" | json "['id']")
curl -sf -X PUT $admin/api/v1/tool-servers/$server/upstream -H "$auth" -H 'Content-Type: application/json' -d '{"auto_approve":true}' >/dev/null
curl -sf -X POST $admin/api/v1/tool-servers/$server/sync -H "$auth" > "$work/sync.json"
echo_ent=$(json "['tools']" < "$work/sync.json" | python3 -c "import ast,sys; print([t['entitlement_id'] for t in ast.literal_eval(sys.stdin.read()) if t['name']=='echo'][0])")
curl -sf -X POST $admin/api/v1/nhis -H "$auth" -H 'Content-Type: application/json' \
  -d "{\"kind\":\"agent\",\"slug\":\"bench-agent\",\"name\":\"Bench\",\"owner_id\":\"$owner\"}" > "$work/agent.json"
agent=$(json "['id']" < "$work/agent.json")
cid=$(json "['client_id']" < "$work/agent.json")
csec=$(json "['client_secret']" < "$work/agent.json")
assignment=$(curl -sf -X POST $admin/api/v1/assignments -H "$auth" -H 'Content-Type: application/json' \
  -d "{\"subject_type\":\"nhi\",\"subject_id\":\"$agent\",\"target_type\":\"entitlement\",\"target_id\":\"$echo_ent\"}" | json "['id']")
constrain() { # $1: the assignment's constraints (JSON)
  curl -sf -X PATCH $admin/api/v1/assignments/$assignment -H "$auth" -H 'Content-Type: application/json' -d "{\"constraints\":$1}" >/dev/null
}
token() { # $1: resource
  curl -sf -X POST $admin/t/default/token -u "$cid:$csec" -d grant_type=client_credentials -d scope=mcp \
    --data-urlencode "resource=$1" | json "['access_token']"
}
load() { "$work/mcpload" -d "$DUR" -warmup "$WARM" -json "$@"; }
run() { # $1: label, $2: gateway URL, rest: extra mcpload flags
  local label=$1 url=$2; shift 2
  local tok; tok=$(token "$url")
  for c in 1 32; do
    direct=$(load -url http://127.0.0.1:19801/mcp -c $c -tool echo)
    before=$(cpu_ticks)
    via=$(MCPLOAD_TOKEN=$tok load -url "$url" -c $c -tool bench__echo "$@")
    after=$(cpu_ticks)
    python3 - "$label" "$c" "$direct" "$via" "$before" "$after" "${DUR%s}" "${WARM%s}" <<'PY'
import json, os, sys
label, c, d, g, before, after, dur, warm = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7]), float(sys.argv[8])
hz = os.sysconf("SC_CLK_TCK")
calls = g["calls_per_s"] * (dur + warm)  # CPU is sampled over warm-up and measurement
cpu_us = (after - before) / hz / calls * 1e6 if calls else float("nan")
print(f"{label:10} c={c:>2}  direct {d['calls_per_s']:8.0f}/s p50 {d['p50_ms']:.3f} ms | gateway {g['calls_per_s']:8.0f}/s p50 {g['p50_ms']:.3f} ms p99 {g['p99_ms']:.3f} ms errors {g['errors']} | "
      f"ratio {g['calls_per_s']/d['calls_per_s']:.2f}  p50 x{g['p50_ms']/d['p50_ms']:.2f}  gateway CPU {cpu_us:.0f} us/call")
PY
  done
}
want() { [[ " $POINTS " == *" $1 "* ]]; }
# Footprint: the embedded store's first start (a new data directory: the
# default tenant and its admin are created), set-up over REST (sign-in,
# password change, tool server, agent, grant) and one second of tool
# calls; then the memory each idle session holds, 500 of them per transport.
if want footprint; then
  url=http://127.0.0.1:18543/t/default/mcp
  tok=$(token "$url")
  "$work/eraload" -mode stateless -url "$url" -c 1 -d 1s -warmup 0s -token "$tok" >/dev/null
  echo "== footprint: RSS idle after the first start $((idle_kib / 1024)) MiB; peak from start to the first tool calls $(($(status_kib VmHWM) / 1024)) MiB; RSS now $(($(status_kib VmRSS) / 1024)) MiB"
  for mode in session websocket; do
    n=500
    before=$(status_kib VmRSS) gbefore=$(go_mem_kib) rbefore=$(goroutines)
    : > "$work/idle.err"
    "$work/eraload" -mode $mode -idle -c $n -d 6s -url "$url" -token "$tok" > "$work/idle.out" 2> "$work/idle.err" &
    holder=$!
    held=
    for _ in $(seq 1 300); do held=$(awk '$1 == "ready" {print $2}' "$work/idle.err"); [ -n "$held" ] && break; sleep 0.1; done
    sleep 2 # the sessions settle
    after=$(status_kib VmRSS) gafter=$(go_mem_kib) rafter=$(goroutines)
    wait $holder
    echo "idle $mode sessions: ${held:-0} held; RSS $((before / 1024)) → $((after / 1024)) MiB, Go heap + stacks $((gbefore / 1024)) → $((gafter / 1024)) MiB: $(((gafter - gbefore) / ${held:-1})) KiB and $(((rafter - rbefore) / ${held:-1})) goroutines per session$(grep -m1 -v '^ready' "$work/idle.err" | sed 's/^/; first error: /')"
  done
fi
want hop && echo "== the cost of a hop alone: Go's bare reverse proxy (no TLS, auth, decision or audit) vs direct"
want hop && for c in 1 32; do
  direct=$(load -url http://127.0.0.1:19801/mcp -c $c -tool echo)
  hop=$(load -url http://127.0.0.1:19802/mcp -c $c -tool echo)
  python3 - "$c" "$direct" "$hop" <<'PY'
import json, sys
c, d, h = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"bare proxy c={c:>2}  direct {d['calls_per_s']:8.0f}/s p50 {d['p50_ms']:.3f} ms | proxy {h['calls_per_s']:8.0f}/s p50 {h['p50_ms']:.3f} ms | "
      f"ratio {h['calls_per_s']/d['calls_per_s']:.2f}  p50 x{h['p50_ms']/d['p50_ms']:.2f}")
PY
done
echo "== tools/call, gateway vs direct (mcpload, the mcp-go client, which negotiates the newest era both sides offer: 2026-07-28; $DUR per point, warm-up $WARM)"
want plaintext && run plaintext http://127.0.0.1:18543/t/default/mcp
# Agent safety: an argument pattern, an argument schema and a rate limit on
# the grant (limit far above the load), against the same grant without
# them; runs alternate, gateway only, so each pair shares the machine's state.
SAFE='{"argument_patterns":{"text":["[a-z ]{1,100}"]},"argument_schema":{"properties":{"text":{"type":"string","maxLength":100}}},"rate_limit_per_minute":1000000}'
want safety && echo "== agent safety on the grant (argument pattern + schema fragment + rate limit) vs none, gateway only, alternating runs"
want safety && for c in 1 32; do
  url=http://127.0.0.1:18543/t/default/mcp
  tok=$(token "$url")
  res=()
  for round in 1 2; do
    constrain '{}'
    res+=("$(MCPLOAD_TOKEN=$tok load -url "$url" -c $c -tool bench__echo)")
    constrain "$SAFE"
    res+=("$(MCPLOAD_TOKEN=$tok load -url "$url" -c $c -tool bench__echo)")
  done
  constrain '{}'
  python3 - "$c" "${res[@]}" <<'PY'
import json, sys
c, runs = sys.argv[1], [json.loads(x) for x in sys.argv[2:]]
off, on = runs[0::2], runs[1::2]
o = sum(r['calls_per_s'] for r in off) / len(off)
n = sum(r['calls_per_s'] for r in on) / len(on)
errs = sum(r['errors'] for r in runs)
print(f"safety     c={c:>2}  none {o:8.0f}/s p50 {off[-1]['p50_ms']:.3f} ms | constrained {n:8.0f}/s p50 {on[-1]['p50_ms']:.3f} ms | "
      f"ratio {n/o:.3f} (loss {100*(1-n/o):.1f} %)  errors {errs}")
PY
done
want eras && echo "== clients of each era and transport through the gateway (eraload) vs direct (mcpload), plaintext"
want eras && for mode in session stateless websocket; do
  url=http://127.0.0.1:18543/t/default/mcp
  tok=$(token "$url")
  for c in 1 32; do
    direct=$(load -url http://127.0.0.1:19801/mcp -c $c -tool echo)
    via=$("$work/eraload" -mode $mode -url "$url" -c $c -d "$DUR" -warmup "$WARM" -token "$tok")
    python3 - "$mode" "$c" "$direct" "$via" <<'PY'
import json, sys
mode, c, d, g = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
print(f"{mode:10} c={c:>2}  direct {d['calls_per_s']:8.0f}/s p50 {d['p50_ms']:.3f} ms | gateway {g['calls_per_s']:8.0f}/s p50 {g['p50_ms']:.3f} ms p99 {g['p99_ms']:.3f} ms errors {g['errors']} | "
      f"ratio {g['calls_per_s']/d['calls_per_s']:.2f}  p50 x{g['p50_ms']/d['p50_ms']:.2f}" + (f"  first error: {g['first_error']}" if g['errors'] else ""))
PY
  done
done
stop_xavyo
if want tls; then
  start_xavyo false
  run tls https://127.0.0.1:18543/t/default/mcp -ca "$work/data/agent-ca.pem"
fi
