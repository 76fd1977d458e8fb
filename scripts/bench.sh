#!/usr/bin/env bash
# Runs the benchmarks behind docs/benchmarks.md. In-process Go benchmarks
# first, then the suite under load (built binaries, real fsync, loopback).
#   scripts/bench.sh            # everything (~15 minutes on 2 cores)
#   scripts/bench.sh go         # only the go test -bench part
#   scripts/bench.sh ingest     # only the ingestion binary under load
#   scripts/bench.sh gateway    # only the tracking API: gateway + ingestion, no consumers
#   scripts/bench.sh suite      # only the running-suite part (throughput, CPU per event, event -> transition latency)
#   scripts/bench.sh memory     # 10 M events through ingestion, RSS sampled (not in "all")
#   scripts/bench.sh overload   # 1,000 clients at 8x capacity through the gateway, 60 s (not in "all")
#   scripts/bench.sh overload-grpc  # the same straight to ingestion over gRPC (not in "all")
#   scripts/bench.sh soak       # the suite under /v1/batch load for 10 minutes: lag and RSS over time (not in "all")
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
out=${BENCH_OUT:-/tmp/cairn-bench}
mkdir -p "$out"
say() { printf '\n### %s (load: %s)\n' "$*" "$(cut -d' ' -f1-3 /proc/loadavg)"; }

if [ "$what" = all ] || [ "$what" = go ]; then
  say "pkg/stream: durable appends, group commit vs one fsync per append"
  go test -run '^$' -bench Append -benchtime 3s ./pkg/stream | tee "$out/stream.txt"
  say "ingestion store: fsynced batches of 100, group vs per-batch commit"
  (cd services/ingestion && go test -run '^$' -bench 'Ingest$' -benchtime 400x ./internal/app) | tee "$out/ingest-store.txt"
  say "stages: events applied from the log (seven stages, ~20 criteria)"
  (cd services/stages && go test -run '^$' -bench 'Apply$' -benchtime 100000x ./internal/app) | tee "$out/stages-apply.txt"
  say "stages: funnel over 100k accounts; event -> Subscribe latency at 5,000/s"
  (cd services/stages && go test -run '^$' -bench 'Funnel' -benchtime 5x ./internal/app && \
     go test -run '^$' -bench 'EventToSubscribe' -benchtime 10000x ./internal/server) | tee "$out/stages-server.txt"
  say "health: rescore 100k accounts; GetAccountHealth at 1,000 req/s"
  (cd services/health && go test -run '^$' -bench 'Rescore100k' -benchtime 1x ./internal/app && \
     go test -run '^$' -bench 'GetAccountHealthRate1000' -benchtime 1x ./internal/server) | tee "$out/health.txt"
  say "routing: decisions (200 owners, 50 rules), qualify at 1,000/s with fsync, restart with overdue timers"
  (cd services/routing && go test -run '^$' -bench Decision -benchtime 2000x ./internal/rules && \
     go test -run '^$' -bench 'QualifyAtRate' -benchtime 3000x ./internal/app && \
     CAIRN_BENCH_TIMERS=${CAIRN_BENCH_TIMERS:-100000} go test -run '^$' -bench RestartTimers -benchtime 1x ./internal/app) | tee "$out/routing.txt"
  say "plays: deliveries/s to a loopback receiver; trigger -> delivery in bursts and at 1,000/s; resume 100k pending; isolation from a timing-out destination"
  (cd services/plays && go test -run '^$' -bench BenchmarkDeliver -benchtime 20000x ./internal/deliver && \
     go test -run '^$' -bench 'TriggerToDelivery|Resume100kPending' -benchtime 1x ./internal/app && \
     go test -run '^$' -bench BenchmarkIsolation -benchtime 1x ./internal/deliver) | tee "$out/plays.txt"
  say "gateway: Segment /v1/batch of 100 events to a loopback ingestion fake"
  (cd services/gateway && go test -run '^$' -bench TrackBatch -benchtime 3s ./internal/server) | tee "$out/gateway.txt"
fi

# The single-process modes (ingest, gateway, memory, overload) serve
# ingestion's gRPC and metrics and the gateway's HTTP and metrics on these
# ports (and with PROFILE=1, ingestion's pprof on the last);
# BENCH_BASE_PORT=N moves them to N+1, N+11, N+20, N+30 and N+41, so that a
# run can share the machine with another.
if [ -n "${BENCH_BASE_PORT:-}" ]; then
  ingport=$((BENCH_BASE_PORT + 1)) ingmport=$((BENCH_BASE_PORT + 11)) gwport=$((BENCH_BASE_PORT + 20)) gwmport=$((BENCH_BASE_PORT + 30))
  ingpprof=$((BENCH_BASE_PORT + 41))
else
  ingport=7201 ingmport=9201 gwport=8280 gwmport=9280 ingpprof=6201
fi

# build_binaries builds the suite (bin/) and the load tool once per run.
built=
build_binaries() {
  [ -n "$built" ] && return
  make build >/dev/null
  go build -o /tmp/cairn-ingestload ./services/ingestion/cmd/ingestload
  built=1
}

# start_ingestion FLAGS...: a fresh ingestion service on 127.0.0.1:$ingport with
# its own data directory; sets d, key and ing.
start_ingestion() {
  d=$(mktemp -d /tmp/cairn-ingest-XXXXXX)
  key=$(./bin/cairn keys create --role write --workspace bench --keys "$d/keys.json" 2>/dev/null)
  ./bin/cairn-ingestion -grpc-addr 127.0.0.1:$ingport -metrics-addr 127.0.0.1:$ingmport -data "$d" -keys "$d/keys.json" "$@" >"$d/log" 2>&1 &
  ing=$!
  for _ in $(seq 1 50); do curl -s 127.0.0.1:$ingmport/metrics >/dev/null && break; sleep 0.2; done
}
stop_ingestion() { kill -TERM "$ing"; wait "$ing" || true; rm -rf "$d"; }

# wait_idle PID: seconds until the process uses under 3 clock ticks of CPU
# in a second (at most 120), i.e. its background work is done.
wait_idle() {
  local prev cur n=0
  prev=$(awk '{print $14+$15}' "/proc/$1/stat")
  while [ $n -lt 120 ]; do
    sleep 1
    n=$((n + 1))
    cur=$(awk '{print $14+$15}' "/proc/$1/stat")
    [ $((cur - prev)) -lt 3 ] && break
    prev=$cur
  done
  echo $n
}

if [ "$what" = all ] || [ "$what" = ingest ]; then
  # Ingestion alone: the issue's throughput target is about this process.
  build_binaries
  # Each shape on a fresh server, 60 s, then wait until the server idles:
  # acks are durable at once, but index passes run behind the ingest
  # commits, so "indexed" (events over run + catch-up) is the rate the
  # timeline index keeps up with, and a paced run does not inherit the
  # previous run's backlog.
  for args in "-conc 8 -stream" "-conc 32 -stream" "-conc 32 -stream -window 4" "-conc 64" "-conc 32 -stream -rate 20000" "-conc 32 -stream -rate 50000"; do
    start_ingestion
    say "ingestion alone, fsync, batches of 100, fresh file, 60 s: $args"
    /tmp/cairn-ingestload -addr 127.0.0.1:$ingport -key "$key" -batch 100 $args -duration 60s | tee -a "$out/ingest-alone.txt"
    catchup=$(wait_idle "$ing")
    n=$(sed -n 's/.*accepted=\([0-9]*\).*/\1/p' "$out/ingest-alone.txt" | tail -1)
    echo "index caught up ${catchup} s after the run; indexed events/s=$((n / (60 + catchup)))" | tee -a "$out/ingest-alone.txt"
    grep -E 'RssAnon' "/proc/$ing/status" | tee -a "$out/ingest-alone.txt"
    stop_ingestion
  done
  start_ingestion
  say "ingestion alone, one event per request, 64 callers, group commit"
  /tmp/cairn-ingestload -addr 127.0.0.1:$ingport -key "$key" -batch 1 -conc 64 -duration 10s | tee -a "$out/ingest-alone.txt"
  stop_ingestion
  start_ingestion -no-group-commit
  say "ingestion alone, one event per request, 64 callers, one fsync per request (-no-group-commit)"
  /tmp/cairn-ingestload -addr 127.0.0.1:$ingport -key "$key" -batch 1 -conc 64 -duration 10s | tee -a "$out/ingest-alone.txt"
  say "ingestion alone, batches of 100, 32 streams, one fsync per batch (-no-group-commit)"
  /tmp/cairn-ingestload -addr 127.0.0.1:$ingport -key "$key" -batch 100 -conc 32 -stream -duration 15s | tee -a "$out/ingest-alone.txt"
  stop_ingestion
fi

if [ "$what" = all ] || [ "$what" = gateway ]; then
  # The tracking API alone: gateway -> ingestion (fsync), no consumers.
  build_binaries
  start_ingestion
  ./bin/cairn-gateway -http-addr 127.0.0.1:$gwport -metrics-addr 127.0.0.1:$gwmport -ingestion-addr 127.0.0.1:$ingport \
    -keys "$d/keys.json" -rate 0 >"$d/gateway.log" 2>&1 &
  gw=$!
  for _ in $(seq 1 50); do curl -s 127.0.0.1:$gwport/healthz >/dev/null && break; sleep 0.2; done
  for conc in 8 16 32; do
    say "gateway Segment /v1/batch of 100 events -> ingestion (fsync), no consumers, $conc callers"
    /tmp/cairn-ingestload -segment http://127.0.0.1:$gwport -key "$key" -batch 100 -conc "$conc" -duration 15s | tee -a "$out/segment-alone.txt"
  done
  kill -TERM "$gw"; wait "$gw" || true
  stop_ingestion
fi

# Not part of "all": 10 million events through one ingestion process, RSS
# sampled every 15 s (about 5 minutes and 10 GB of disk on the dev machine).
if [ "$what" = memory ]; then
  build_binaries
  start_ingestion
  ( while kill -0 "$ing" 2>/dev/null; do
      printf '%s %s\n' "$(date +%T)" "$(grep -E 'RssAnon|RssFile' /proc/$ing/status 2>/dev/null | tr -s ' \t\n' ' ')"
      sleep 15
    done ) | tee "$out/memory-rss.txt" &
  sampler=$!
  say "ingestion alone, 10,000,000 events, batches of 100, 32 streams"
  /tmp/cairn-ingestload -addr 127.0.0.1:$ingport -key "$key" -batch 100 -conc 32 -stream -n 10000000 -duration 30m | tee "$out/memory.txt"
  curl -s 127.0.0.1:$ingmport/metrics | grep -E '^go_memstats_heap_inuse_bytes|^go_goroutines' | tee -a "$out/memory.txt"
  grep -E 'VmHWM|VmRSS|RssAnon|RssFile' "/proc/$ing/status" | tee -a "$out/memory.txt"
  ls -l "$d/ingestion.db" | tee -a "$out/memory.txt"
  stop_ingestion
  kill "$sampler" 2>/dev/null || true
fi

# Not part of "all": overload. 1,000 clients send batches of 500 events
# (about 95 KB of Segment JSON, 60 KB of protobuf) with 8 write keys, paced
# at 8 times the capacity measured first with 16 callers, for 60 s; every
# request has a 60 s client timeout. Reported: timeouts (must be 0), shed
# requests (429 / ResourceExhausted), accepted latency, RssAnon of the
# gateway and ingestion before, at the peak during and 30 s after the load,
# and a one-event write right after it (must succeed within 1 s). With
# PROFILE=1, ingestion's CPU profile from 10 to 40 s into the load and its
# heap profiles at 40 s and 25 s after it are saved under
# $out/pprof-overload-MODE-*.
overload() {
  local mode=$1 target url prof=
  build_binaries
  if [ "${PROFILE:-0}" = 1 ]; then start_ingestion -pprof-addr "127.0.0.1:$ingpprof"; else start_ingestion; fi
  local keys=$key
  for _ in 2 3 4 5 6 7 8; do
    keys="$keys,$(./bin/cairn keys create --role write --workspace bench --keys "$d/keys.json" 2>/dev/null)"
  done
  # The per-key rate limit (-rate) is off: what is measured is admission.
  ./bin/cairn-gateway -http-addr 127.0.0.1:$gwport -metrics-addr 127.0.0.1:$gwmport -ingestion-addr 127.0.0.1:$ingport \
    -keys "$d/keys.json" -rate 0 >"$d/gateway.log" 2>&1 &
  gw=$!
  # The keys made after the start are known once the keyring is reloaded.
  for _ in $(seq 1 50); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -u "${keys##*,}:" -H 'Content-Type: application/json' \
      -d '{"userId":"u0","event":"warm_up"}' 127.0.0.1:$gwport/v1/track)" = 200 ] && break
    sleep 0.2
  done
  if [ "$mode" = gateway ]; then target=(-segment http://127.0.0.1:$gwport); else target=(-addr 127.0.0.1:$ingport); fi
  rss() { awk '/RssAnon/{printf "%.0f", $2/1024}' "/proc/$1/status"; }
  echo "at start: gateway RssAnon $(rss $gw) MB, ingestion RssAnon $(rss $ing) MB" | tee "$out/overload-$mode.txt"
  say "overload ($mode): capacity with 16 callers, batches of 500, 15 s"
  /tmp/cairn-ingestload "${target[@]}" -key "$keys" -batch 500 -conc 16 -duration 15s | tee -a "$out/overload-$mode.txt"
  cap=$(sed -n 's/^events\/s=\([0-9]*\).*/\1/p' "$out/overload-$mode.txt" | tail -1)
  # Idle, as before any load: the index has caught up with the capacity run
  # and the memory it took has been given back (pkg/admit.Reclaimer, 5 s
  # after the last request; a second pass 5 s later).
  wait_idle "$ing" >/dev/null
  sleep 11
  echo "before the load: gateway RssAnon $(rss $gw) MB, ingestion RssAnon $(rss $ing) MB" | tee -a "$out/overload-$mode.txt"
  ( while kill -0 "$gw" 2>/dev/null; do echo "$(date +%s) $(rss $gw) $(rss $ing)"; sleep 1; done ) >"$d/rss.txt" &
  sampler=$!
  say "overload ($mode): 1,000 clients at 8 x $cap events/s, batches of 500, 8 keys, 60 s"
  if [ "${PROFILE:-0}" = 1 ]; then
    (sleep 10
     curl -s "127.0.0.1:$ingpprof/debug/pprof/profile?seconds=30" -o "$out/pprof-overload-$mode-cpu.pb.gz"
     curl -s "127.0.0.1:$ingpprof/debug/pprof/heap" -o "$out/pprof-overload-$mode-heap.pb.gz"
     curl -s "127.0.0.1:$ingpprof/debug/pprof/goroutine" -o "$out/pprof-overload-$mode-goroutine.pb.gz") &
    prof=$!
  fi
  /tmp/cairn-ingestload "${target[@]}" -key "$keys" -batch 500 -conc 1000 -rate $((cap * 8)) -duration 60s -timeout 60s | tee -a "$out/overload-$mode.txt"
  url=http://127.0.0.1:$gwport/v1/track
  curl -s -o /dev/null -m 1 -w "one-event write after the load: HTTP %{http_code} in %{time_total} s\n" -u "$key:" \
    -H 'Content-Type: application/json' -d '{"userId":"u1","event":"after_the_load"}' "$url" | tee -a "$out/overload-$mode.txt" || echo "one-event write after the load: no answer within 1 s" | tee -a "$out/overload-$mode.txt"
  end=$(date +%s)
  if [ -n "$prof" ]; then
    wait "$prof"
    sleep 25
    curl -s "127.0.0.1:$ingpprof/debug/pprof/heap" -o "$out/pprof-overload-$mode-heap-after.pb.gz"
    sleep 5
  else
    sleep 30
  fi
  kill "$sampler"
  cp "$d/rss.txt" "$out/overload-$mode-rss.txt" # epoch seconds, gateway and ingestion RssAnon MB
  awk -v end="$end" '$1 <= end { if ($2 > g) g = $2; if ($3 > i) i = $3 } END { printf "peak during the load: gateway RssAnon %d MB, ingestion RssAnon %d MB\n", g, i }' "$d/rss.txt" | tee -a "$out/overload-$mode.txt"
  echo "30 s after the load: gateway RssAnon $(rss $gw) MB, ingestion RssAnon $(rss $ing) MB" | tee -a "$out/overload-$mode.txt"
  # What ingestion holds 30 s after is mostly its index catching up with
  # the load's events: report when it is idle again, and its memory then.
  local idle
  idle=$(wait_idle "$ing")
  sleep 6
  echo "ingestion idle $((30 + idle)) s after the load; 6 s later RssAnon $(rss $ing) MB" | tee -a "$out/overload-$mode.txt"
  curl -s 127.0.0.1:$gwmport/metrics 127.0.0.1:$ingmport/metrics | { grep -E '^cairn_admit_(shed|admitted)_total' || true; } | { grep -v ' 0$' || true; } | tee -a "$out/overload-$mode.txt"
  kill -TERM "$gw"; wait "$gw" || true
  stop_ingestion
}
if [ "$what" = overload ]; then overload gateway; fi
if [ "$what" = overload-grpc ]; then overload grpc; fi

# suite_pids: "name pid" for each service process of the running suite (the
# children of `cairn run`, $suite).
suite_pids() {
  for p in $(pgrep -P "$suite"); do
    n=$(tr '\0' ' ' </proc/$p/cmdline | cut -d' ' -f1 | xargs basename)
    case "$n" in cairn-*) echo "$n $p" ;; esac
  done | sort
}
# suite_cpu: "name ticks" (user+system, 1/100 s) for each suite process.
suite_cpu() { suite_pids | while read -r n p; do echo "$n $(awk '{print $14+$15}' /proc/$p/stat)"; done; }
# suite_lag: records the consumers have not applied yet, summed.
suite_lag() {
  curl -s "127.0.0.1:$((mbase + 2))/metrics" "127.0.0.1:$((mbase + 3))/metrics" "127.0.0.1:$((mbase + 4))/metrics" "127.0.0.1:$((mbase + 6))/metrics" |
    awk '/^cairn_consumer_lag/ {s+=$2} END {print s+0}'
}
# suite_load NAME DRIVER-ARGS...: runs the load driver against the suite and
# reports, besides the driver's own figures: the consumers' lag (sampled every
# second: the largest, and how long after the load they were idle again), the
# events fully processed per second (accepted ÷ (load + catch-up)), and each
# process's CPU per accepted event. With PROFILE=1 it also saves a 20 s CPU
# profile of every process, taken during the load, under $out/pprof-NAME-*.
suite_load() {
  local name=$1; shift
  suite_cpu >"$out/cpu-before"
  local t0 t1 t2 maxlag=0 lag lp prof=
  t0=$(date +%s.%N)
  /tmp/cairn-ingestload "$@" >"$out/$name.txt" 2>&1 &
  lp=$!
  if [ "${PROFILE:-0}" = 1 ]; then
    (sleep 3; i=1; for svc in ingestion stages health routing gateway plays; do
       curl -s "127.0.0.1:$((mbase + i))/debug/pprof/profile?seconds=20" -o "$out/pprof-$name-$svc.pb.gz" & i=$((i + 1))
     done; wait) &
    prof=$!
  fi
  printf 'time_s lag\n' >"$out/$name-lag.txt"
  while kill -0 "$lp" 2>/dev/null; do
    lag=$(suite_lag); [ "$lag" -gt "$maxlag" ] && maxlag=$lag
    printf '%s %s\n' "$(echo "$(date +%s.%N) - $t0" | bc)" "$lag" >>"$out/$name-lag.txt"
    sleep 1
  done
  wait "$lp" || true
  t1=$(date +%s.%N)
  for _ in $(seq 1 1200); do [ "$(suite_lag)" = 0 ] && break; sleep 0.25; done
  t2=$(date +%s.%N)
  [ -n "$prof" ] && wait "$prof"
  suite_cpu >"$out/cpu-after"
  cat "$out/$name.txt"
  local acc
  acc=$(grep -o 'accepted=[0-9]*' "$out/$name.txt" | cut -d= -f2)
  echo "consumers: largest lag ${maxlag} records; idle $(printf '%.2f' "$(echo "$t2 - $t1" | bc)") s after the load; fully processed $(echo "$acc / ($t2 - $t0)" | bc) events/s"
  join "$out/cpu-before" "$out/cpu-after" | awk -v n="$acc" '
    {d = $3 - $2; tot += d; printf "  %-16s %7.1f CPU-s %7.1f CPU-µs/event\n", $1, d / 100, d * 1e4 / n}
    END {printf "  %-16s %7.1f CPU-s %7.1f CPU-µs/event\n", "whole suite", tot / 100, tot * 1e4 / n}'
  suite_pids | while read -r n p; do
    printf '  %-16s %s\n' "$n" "$(grep -E 'VmHWM|RssAnon' "/proc/$p/status" | tr -s ' \t\n' ' ')"
  done
}

# start_suite starts the suite as `make run` does (demo workspace loaded) on
# SUITE_BASE_PORT and waits until the consumers have caught up; sets data,
# base, mbase, http, suite, wkey and rkey.
start_suite() {
  build_binaries
  data=$(mktemp -d /tmp/cairn-bench-XXXXXX)
  base=${SUITE_BASE_PORT:-7100}
  mbase=$((base + 10)) http=$((base + 20))
  [ "$base" = 7100 ] && mbase=9100 http=8080
  # The gateway's per-key limit (default 1,000 req/s) would answer 429 at
  # the paced rate; CAIRN_PPROF serves /debug/pprof on the metrics ports.
  CAIRN_PPROF=1 CAIRN_RATE=0 ./bin/cairn run --bin ./bin --data "$data" --base-port "$base" \
    --metrics-base-port "$mbase" --http-addr "127.0.0.1:$http" >"$data/suite.log" 2>&1 &
  suite=$!
  trap 'kill -INT $suite 2>/dev/null; wait $suite 2>/dev/null; rm -rf "$data"' EXIT
  for _ in $(seq 1 120); do [ -s "$data/run.json" ] && break; sleep 1; done
  wkey=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['write_key'])" "$data/run.json")
  rkey=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['read_key'])" "$data/run.json")
  go build -o "$data/pace" ./reliability/cmd/pace
  # run.json appears once the demo is loaded; let the consumers catch up.
  for _ in $(seq 1 300); do [ "$(suite_lag)" = 0 ] && break; sleep 1; done
}

if [ "$what" = all ] || [ "$what" = suite ]; then
  start_suite
  say "REST reads through the gateway, paced at 1,000 req/s"
  acct=$(curl -s -H "Authorization: Bearer $rkey" "127.0.0.1:$http/v1/journey/accounts?page.pageSize=1" | python3 -c "import json,sys;a=json.load(sys.stdin).get('accounts',[]);print(a[0]['accountId'] if a else 'none')")
  "$data/pace" -rate 1000 -duration 20s -H "Authorization: Bearer $rkey" \
    "http://127.0.0.1:$http/v1/accounts/$acct/health" "http://127.0.0.1:$http/v1/accounts/$acct/journey" | tee "$out/rest.txt"
  for conc in 8 32; do
    say "whole suite: Segment /v1/batch of 100 events through the gateway, $conc callers, ${SUITE_SECONDS:-30} s"
    suite_load "suite-batch-$conc" -segment "http://127.0.0.1:$http" -key "$wkey" -batch 100 -conc "$conc" -duration "${SUITE_SECONDS:-30}s"
  done
  for conc in 8 32; do
    say "whole suite: IngestStream batches of 100 straight to ingestion, $conc streams, ${SUITE_SECONDS:-30} s"
    suite_load "suite-grpc-$conc" -addr "127.0.0.1:$((base + 1))" -key "$wkey" -batch 100 -conc "$conc" -stream -duration "${SUITE_SECONDS:-30}s"
  done
  say "whole suite: event -> stage transition seen through Subscribe, paced at ${LAT_RATE:-10000} events/s, ${SUITE_SECONDS:-30} s"
  skey=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['service_key'])" "$data/run.json")
  go build -o "$data/e2elat" ./reliability/cmd/e2elat
  "$data/e2elat" -gateway "http://127.0.0.1:$http" -key "$wkey" -stages "127.0.0.1:$((base + 2))" -service-key "$skey" \
    -rate "${LAT_RATE:-10000}" -duration "${SUITE_SECONDS:-30}s" | tee "$out/suite-latency.txt"
  say "whole suite: single events, one per /v1/batch request, 32 callers, ${SUITE_SECONDS:-30} s"
  suite_load "suite-track-32" -segment "http://127.0.0.1:$http" -key "$wkey" -batch 1 -conc 32 -duration "${SUITE_SECONDS:-30}s"
fi

# Not part of "all": soak. The suite under sustained /v1/batch load for
# SOAK_SECONDS (default 600) with SOAK_CALLERS callers (default 32), or paced
# at SOAK_RATE events/s when set: the consumers' lag is sampled every second
# (records, and seconds of input at the accepted rate), RSS every 30 s.
if [ "$what" = soak ]; then
  start_suite
  secs=${SOAK_SECONDS:-600}
  rate_args=()
  [ -n "${SOAK_RATE:-}" ] && rate_args=(-rate "$SOAK_RATE")
  ( while kill -0 "$suite" 2>/dev/null; do
      suite_pids | while read -r n p; do printf '%s %s %s\n' "$(date +%T)" "$n" "$(awk '/RssAnon/{print $2}' /proc/$p/status)"; done
      sleep 30
    done ) >"$out/soak-rss.txt" &
  rss=$!
  say "whole suite: Segment /v1/batch of 100 events, ${SOAK_CALLERS:-32} callers${SOAK_RATE:+, paced at $SOAK_RATE events/s}, $secs s"
  suite_load soak -segment "http://127.0.0.1:$http" -key "$wkey" -batch 100 -conc "${SOAK_CALLERS:-32}" "${rate_args[@]}" -duration "${secs}s"
  kill "$rss" 2>/dev/null || true
  acc=$(grep -o 'accepted=[0-9]*' "$out/soak.txt" | cut -d= -f2)
  awk -v n="$acc" -v secs="$secs" 'NR > 1 { if ($2 > m) m = $2; if ($1 > 10 && $1 < secs) { s += $2; c++ } }
    END { r = n / secs; printf "consumer lag over the run: largest %d records (%.2f s of input at %.0f events/s), mean after the first 10 s %.0f records (%.2f s)\n", m, m / r, r, s / c, s / c / r }' "$out/soak-lag.txt"
  echo "RssAnon (kB) at the start and at the end of the run:"
  head -6 "$out/soak-rss.txt"; tail -6 "$out/soak-rss.txt"
fi
