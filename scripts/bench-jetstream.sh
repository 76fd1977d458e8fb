#!/usr/bin/env bash
# Ingestion's log on a 3-node NATS JetStream cluster on loopback against the
# embedded bbolt log, with the same driver (services/ingestion/cmd/ingestload)
# and the same ingestion binary: `cairn run --services ingestion` with and
# without --cluster (docs/benchmarks.md, "Ingestion's log on NATS JetStream").
# Everything shares this machine's cores; the figures are correctness-scale.
#   scripts/bench-jetstream.sh                 # 10 s per run
#   JS_SECONDS=30 JS_BASE_PORT=17400 scripts/bench-jetstream.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=${BENCH_OUT:-/tmp/cairn-bench}
secs=${JS_SECONDS:-10}
base=${JS_BASE_PORT:-17400}
mkdir -p "$out"
say() { printf '\n### %s (load: %s)\n' "$*" "$(cut -d' ' -f1-3 /proc/loadavg)"; }

make build >/dev/null
go build -o /tmp/cairn-ingestload ./services/ingestion/cmd/ingestload

# run_backend NAME [--cluster]: starts ingestion alone, closed loop then paced.
run_backend() {
  local name=$1; shift
  local d; d=$(mktemp -d /tmp/cairn-js-bench-XXXXXX)
  ./bin/cairn run --bin ./bin --data "$d" --services ingestion --no-demo --base-port "$base" "$@" >"$d/run.log" 2>&1 &
  local run=$!
  for _ in $(seq 1 600); do [ -f "$d/run.json" ] && break; sleep 0.2; done
  [ -f "$d/run.json" ] || { echo "cairn run $* did not come up:"; tail -20 "$d/run.log"; kill -INT "$run"; exit 1; }
  local key; key=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["write_key"])' "$d/run.json")
  local addr="127.0.0.1:$((base + 1))"
  say "$name: closed loop, 16 callers x batches of 100, ${secs}s"
  /tmp/cairn-ingestload -addr "$addr" -key "$key" -batch 100 -conc 16 -duration "${secs}s" -run "$name-closed" | tee "$out/js-$name-closed.txt"
  for rate in 2000 5000; do
    say "$name: paced at $rate events/s, 8 callers x batches of 100, ${secs}s"
    /tmp/cairn-ingestload -addr "$addr" -key "$key" -batch 100 -conc 8 -rate "$rate" -duration "${secs}s" -run "$name-paced-$rate" | tee "$out/js-$name-paced-$rate.txt"
  done
  kill -INT "$run"; wait "$run" || true
  rm -rf "$d"
}

run_backend bbolt
run_backend jetstream --cluster
