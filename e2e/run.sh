#!/usr/bin/env bash
# Runs the dashboard's browser tests against a freshly started suite with demo
# data: installs Chromium if needed, builds the binaries, starts
# `cairn run --demo` on a temporary data directory, waits until the gateway is
# ready and the demo data has arrived, runs the tests and stops the suite.
#
#   e2e/run.sh                     # from anywhere
#   SKIP_BUILD=1 e2e/run.sh        # reuse ./bin
#   CAIRN_RUN_ARGS="--base-port 17100" e2e/run.sh   # extra `cairn run` flags
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
ready_timeout=${READY_TIMEOUT:-180}

log() { printf 'e2e: %s\n' "$*" >&2; }

if [ ! -x /usr/bin/chromium ]; then
  log "installing chromium"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y --no-install-recommends chromium
fi

(cd "$here" && npm ci --no-audit --no-fund)

if [ "${SKIP_BUILD:-}" != 1 ]; then
  log "building binaries"
  (cd "$root" && make build)
fi

data=$(mktemp -d "${TMPDIR:-/tmp}/cairn-e2e-XXXXXX")
suite_log="$data/suite.log"
suite_pid=""

cleanup() {
  status=$?
  if [ -n "$suite_pid" ] && kill -0 "$suite_pid" 2>/dev/null; then
    log "stopping the suite (pid $suite_pid)"
    kill -INT "$suite_pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$suite_pid" 2>/dev/null || break; sleep 1; done
    kill -KILL "$suite_pid" 2>/dev/null || true
    wait "$suite_pid" 2>/dev/null || true
  fi
  mkdir -p "$here/screenshots"
  cp "$suite_log" "$here/screenshots/suite.log" 2>/dev/null || true
  if [ "$status" -ne 0 ]; then
    log "failed; last lines of the suite's log (all of it: e2e/screenshots/suite.log):"
    tail -n 40 "$suite_log" >&2 || true
  fi
  rm -rf "$data"
  exit "$status"
}
trap cleanup EXIT INT TERM

log "starting the suite in $data"
# shellcheck disable=SC2086 # CAIRN_RUN_ARGS is a list of flags.
"$root/bin/cairn" run --bin "$root/bin" --data "$data" --demo ${CAIRN_RUN_ARGS:-} >"$suite_log" 2>&1 &
suite_pid=$!

# wait_for runs "$@" until it succeeds, failing if the suite exits or time runs out.
wait_for() {
  local what=$1; shift
  local deadline=$((SECONDS + ready_timeout))
  until "$@" >/dev/null 2>&1; do
    kill -0 "$suite_pid" 2>/dev/null || { log "the suite exited while waiting for $what"; return 1; }
    [ "$SECONDS" -lt "$deadline" ] || { log "timed out after ${ready_timeout}s waiting for $what"; return 1; }
    sleep 1
  done
}

wait_for "run.json" test -s "$data/run.json"
field() { node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1]));process.stdout.write(r[process.argv[2]]||"")' "$data/run.json" "$1"; }
url=$(field gateway_url)
key=$(field read_key)
write_key=$(field write_key)
[ -n "$url" ] && [ -n "$key" ] || { log "run.json lacks gateway_url or read_key"; exit 1; }
log "gateway $url"

wait_for "gateway readiness" curl -fsS "$url/readyz"
# The demo workspace is loaded after start-up; wait until the funnel has accounts.
has_demo_data() {
  curl -fsS -H "Authorization: Bearer $key" "$url/v1/funnel" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const f=JSON.parse(s);process.exit((f.stages||[]).some(x=>Number(x.current)>0)?0:1)})'
}
wait_for "demo data" has_demo_data
# The services may still be applying the demo year; wait until the funnel holds
# still for a few seconds so that page and API agree.
funnel_stable() {
  local a b
  a=$(curl -fsS -H "Authorization: Bearer $key" "$url/v1/funnel") || return 1
  sleep 3
  b=$(curl -fsS -H "Authorization: Bearer $key" "$url/v1/funnel") || return 1
  [ "$a" = "$b" ]
}
wait_for "the demo data to settle" funnel_stable
# Health and routing read what stages and ingestion publish and may still be
# catching up (for example, closing the handoffs of churned accounts): wait
# until every consumer of every service has no lag and the open queue and
# the at-risk list hold still too.
metrics=$(node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1]));process.stdout.write(Object.values(r.metrics||{}).join(" "))' "$data/run.json")
no_lag() {
  local m total=0 lag
  for m in $metrics; do
    lag=$(curl -fsS "http://$m/metrics" | awk '/^cairn_consumer_lag[{ ]/ {s+=$NF} END {print s+0}') || return 1
    total=$((total + ${lag%.*}))
  done
  [ "$total" -eq 0 ]
}
# views prints which handoffs are open and which accounts are at risk (ids and
# states only: an SLA clock's "used" moves with the wall clock).
views() {
  curl -fsS -H "Authorization: Bearer $key" "$url/v1/assignments?openQueue=true&page.pageSize=200" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log((JSON.parse(s).assignments||[]).map(a=>a.assignmentId+":"+a.state).join(" ")))' || return 1
  curl -fsS -H "Authorization: Bearer $key" "$url/v1/health/accounts?band=BAND_AT_RISK&page.pageSize=200" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log((JSON.parse(s).accounts||[]).map(a=>a.accountId).join(" ")))'
}
views_stable() {
  local a b
  no_lag || return 1
  a=$(views) || return 1
  sleep 3
  no_lag || return 1
  b=$(views) || return 1
  [ "$a" = "$b" ]
}
wait_for "health and routing to catch up" views_stable

log "running browser tests"
(cd "$here" && CAIRN_URL="$url" CAIRN_KEY="$key" CAIRN_WRITE_KEY="$write_key" npm test)
log "screenshots in $here/screenshots"
