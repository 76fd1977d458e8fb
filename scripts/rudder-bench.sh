#!/usr/bin/env bash
# Side by side: Cairn's whole suite (`cairn run`) against rudder-server with
# PostgreSQL and no destinations, driven by the same load tool with the same
# Segment events, runs alternating. See docs/benchmarks.md, "Side by side
# with rudder-server".
#
#   scripts/rudder-bench.sh <path-to-rudder-server-source>
#
# Environment:
#   DURATION=60        seconds of load per run (use 10-15 for a smoke run)
#   ROUNDS=1           rounds; each runs every shape once on each side,
#                      Cairn first in odd rounds, rudder-server first in even
#   SHAPES="100:8 100:32 1:32"   events per /v1/batch request : callers
#   DRAIN_MAX=600      give up waiting for idle after this many seconds
#   OUT=/tmp/cairn-rudder-bench  where logs and results.md go
#   RUDDER_BENCH_CACHE=~/.cache/cairn-rudder-bench  built rudder-server binaries
#   RUDDER_DEPS_DIR=/work/.mirror  git directories (<owner>+<name>/repo) of
#                      modules the Go proxy will not serve, see build_rudder
#
# Must run as root (it installs PostgreSQL if missing and makes a network
# namespace). Building needs the Go proxy; the runs themselves happen inside
# `unshare -n` with only loopback, so nothing leaves the machine: both
# servers, PostgreSQL, the transformer stand-in and the load driver share
# that namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

# ---------------------------------------------------------------- outside --

setup() {
  local src=$1
  [ "$(id -u)" = 0 ] || { echo "rudder-bench: run as root (PostgreSQL install, network namespace)" >&2; exit 1; }
  [ -f "$src/go.mod" ] && grep -q '^module github.com/rudderlabs/rudder-server' "$src/go.mod" ||
    { echo "rudder-bench: $src is not rudder-server's source (no go.mod of github.com/rudderlabs/rudder-server)" >&2; exit 1; }
  if ! ls -d /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
  fi
  local need=()
  command -v unshare >/dev/null || need+=(util-linux)
  command -v ip >/dev/null || need+=(iproute2)
  command -v bc >/dev/null || need+=(bc)
  command -v curl >/dev/null || need+=(curl)
  command -v python3 >/dev/null || need+=(python3)
  command -v psql >/dev/null || need+=(postgresql-client)
  [ ${#need[@]} = 0 ] || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}"; }
  mkdir -p "$OUT"
  echo "building Cairn (make build) and the load driver"
  make build >/dev/null
  go build -o "$OUT/ingestload" ./services/ingestion/cmd/ingestload
  build_rudder "$(cd "$src" && pwd)"
}

# build_rudder SRC: builds rudder-server from SRC once per source tree
# (keyed by a hash of its Go files, go.mod and go.sum) into the cache and
# sets RUDDER_BIN. Some module versions rudder-server requires may not be
# served by the Go proxy reachable here; those are replaced in a copy of
# go.mod (the source tree is not touched):
#   - github.com/aws/aws-sdk-go-v2/service/personalizeevents by the stand-in
#     in scripts/rudder/personalizeevents-stub (an Amazon Personalize
#     destination; the benchmark has no destinations);
#   - any other module by the snapshot of its repository in
#     $RUDDER_DEPS_DIR/<owner>+<name>/repo (a git directory), at the
#     version's tag or, without that tag, at HEAD; rudder-schemas without
#     v0.12.0's additions gets scripts/rudder/rudder-schemas-v0.12-compat.patch
#     (fields of multi-node partition migration only).
# Every replacement is printed and written to $OUT/rudder-build.txt.
build_rudder() {
  local src=$1 key dir bin log
  key=$( (cd "$src" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -not -path './.git/*' -print0 |
    sort -z | xargs -0 sha256sum; cat "$repo"/scripts/rudder/*.patch "$repo"/scripts/rudder/personalizeevents-stub/*.go \
    "$repo"/scripts/rudder/personalizeevents-stub/*/*.go) | sha256sum | cut -c1-16)
  dir=$RUDDER_BENCH_CACHE/$key bin=$dir/rudder-server log=$dir/build.log
  RUDDER_BIN=$bin
  if [ -x "$bin" ]; then
    echo "rudder-server: cached build $bin"
    cp "$dir/build.txt" "$OUT/rudder-build.txt" 2>/dev/null || true
    return
  fi
  mkdir -p "$dir/mod" "$dir/deps"
  echo "building rudder-server from $src (first time for this source: several minutes)"
  if (cd "$src" && GOWORK=off go build -o "$bin.tmp" .) >"$log" 2>&1; then
    mv "$bin.tmp" "$bin"
    echo "rudder-server built from $src unchanged" | tee "$dir/build.txt" "$OUT/rudder-build.txt"
    return
  fi
  cp "$src/go.mod" "$src/go.sum" "$dir/mod/"
  : >"$dir/build.txt"
  local attempt m mod ver owner name gd ref
  for attempt in 1 2 3; do
    # module@version the proxy refused (403/404/410) in the last attempt
    mapfile -t missing < <(grep -oE '[a-zA-Z0-9.-]+\.[a-z]+/[^ @]+@v[^:]+: reading https?://[^ ]+: (403|404|410)' "$log" |
      sed 's/: reading.*//' | sort -u)
    [ ${#missing[@]} -gt 0 ] || break
    for m in "${missing[@]}"; do
      mod=${m%@*} ver=${m#*@}
      if [ "$mod" = github.com/aws/aws-sdk-go-v2/service/personalizeevents ]; then
        echo "replace $mod => $repo/scripts/rudder/personalizeevents-stub" >>"$dir/mod/go.mod"
        echo "$m: not served by the Go proxy; replaced by the stand-in scripts/rudder/personalizeevents-stub" | tee -a "$dir/build.txt"
        continue
      fi
      owner=$(echo "$mod" | cut -d/ -f2) name=$(echo "$mod" | cut -d/ -f3)
      gd=$RUDDER_DEPS_DIR/$owner+$name/repo
      [ -d "$gd" ] || { echo "rudder-bench: $m is not served by the Go proxy and $gd does not exist; put a git directory of https://github.com/$owner/$name there (or set RUDDER_DEPS_DIR)" >&2; exit 1; }
      ref=HEAD
      git --git-dir="$gd" rev-parse -q --verify "refs/tags/$ver" >/dev/null && ref=$ver
      rm -rf "$dir/deps/$name" && mkdir -p "$dir/deps/$name"
      git --git-dir="$gd" archive "$ref" | tar -x -C "$dir/deps/$name"
      local note="$m: not served by the Go proxy; replaced by $gd at $ref ($(git --git-dir="$gd" rev-parse --short "$ref"))"
      if [ "$name" = rudder-schemas ] && ! grep -q AckWithJobsDBs "$dir/deps/$name/go/cluster/migration.go" &&
        grep -rq AckWithJobsDBs "$src/cluster"; then
        (cd "$dir/deps/$name" && patch -s -p1 <"$repo/scripts/rudder/rudder-schemas-v0.12-compat.patch")
        note="$note + scripts/rudder/rudder-schemas-v0.12-compat.patch"
      fi
      echo "replace $mod => $dir/deps/$name" >>"$dir/mod/go.mod"
      echo "$note" | tee -a "$dir/build.txt"
    done
    if (cd "$src" && GOWORK=off GOFLAGS="$GOFLAGS -mod=mod" go build -modfile="$dir/mod/go.mod" -o "$bin.tmp" .) >"$log" 2>&1; then
      mv "$bin.tmp" "$bin"
      cp "$dir/build.txt" "$OUT/rudder-build.txt"
      return
    fi
  done
  echo "rudder-bench: building rudder-server failed; see $log" >&2
  grep -v '^go: downloading' "$log" | tail -20 >&2
  exit 1
}

# ----------------------------------------------------------------- inside --

ticks() { # PID...: user+system CPU ticks of each process and its waited-for children, summed
  local p s=0
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] && s=$((s + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12+$13+$14+$15}')))
  done
  echo $s
}
tree() { # PID: the process and all its descendants
  local p
  echo "$1"
  for p in $(pgrep -P "$1" || true); do tree "$p"; done
}
tree_ticks() { local t; t=$(for r in "$@"; do tree "$r"; done | sort -u); ticks $t; }
now() { date +%s.%N; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

PGPORT=55432
pg_start() {
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  pgdir=$(mktemp -d /tmp/cairn-rudder-pg-XXXXXX)
  chown postgres "$pgdir" && chmod 700 "$pgdir"
  runuser -u postgres -- "$pgbin/initdb" -D "$pgdir/data" -U rudder --auth=trust >"$OUT/pg-initdb.log"
  # Debian's defaults (fsync and synchronous_commit on): a commit is on
  # disk before rudder-server acknowledges a request.
  runuser -u postgres -- "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/pg.log" -w \
    -o "-c listen_addresses=127.0.0.1 -c port=$PGPORT -c unix_socket_directories=$pgdir" start >/dev/null
  pgpid=$(head -1 "$pgdir/data/postmaster.pid")
}
pg_stop() {
  [ -n "${pgdir:-}" ] || return 0
  runuser -u postgres -- "$pgbin/pg_ctl" -D "$pgdir/data" -m fast stop >/dev/null || true
  cp "$pgdir/pg.log" "$OUT/pg.log" 2>/dev/null || true
  rm -rf "$pgdir"
}
psqlq() { PGOPTIONS='-c client_min_messages=warning' psql -h 127.0.0.1 -p $PGPORT -U rudder -At -v ON_ERROR_STOP=1 "$@"; }

# rudder_pending: gateway jobs (one per event) the processor has not
# finished: jobs minus terminal statuses, over every gw dataset.
rudder_pending() {
  local q
  q=$(psqlq -d jobsdb -c "SELECT string_agg(format('SELECT (SELECT count(*) FROM %I) - (SELECT count(*) FROM %I WHERE job_state IN (''succeeded'',''aborted'',''filtered'',''migrated''))', t, replace(t, '_jobs_', '_job_status_')), ' UNION ALL ') FROM (SELECT tablename AS t FROM pg_tables WHERE tablename ~ '^gw_jobs_[0-9_]+\$') x" 2>/dev/null) || { echo -1; return; }
  [ -n "$q" ] || { echo 0; return; }
  psqlq -d jobsdb -c "SELECT coalesce(sum(n), 0) FROM ($q) s(n)" 2>/dev/null || echo -1
}

cairn_lag() {
  curl -s "127.0.0.1:9102/metrics" "127.0.0.1:9103/metrics" "127.0.0.1:9104/metrics" "127.0.0.1:9106/metrics" |
    awk '/^cairn_consumer_lag/ {s+=$2} END {print s+0}'
}

cairn_start() {
  data=$(mktemp -d /tmp/cairn-rudder-bench-XXXXXX)
  CAIRN_RATE=0 "$repo/bin/cairn" run --bin "$repo/bin" --data "$data" --base-port 7100 \
    --metrics-base-port 9100 --http-addr 127.0.0.1:8080 >"$OUT/$run-server.log" 2>&1 &
  root=$!
  for _ in $(seq 1 180); do [ -s "$data/run.json" ] && break; sleep 1; done
  [ -s "$data/run.json" ] || { echo "cairn run did not start; see $OUT/$run-server.log" >&2; return 1; }
  key=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['write_key'])" "$data/run.json")
  for _ in $(seq 1 300); do [ "$(cairn_lag)" = 0 ] && break; sleep 1; done
  url=http://127.0.0.1:8080 okbody= roots=("$root")
}
cairn_stop() { kill -INT "$root" 2>/dev/null || true; wait "$root" 2>/dev/null || true; root=; rm -rf "$data"; }
cairn_backlog() { cairn_lag; }

rudder_start() {
  psqlq -d postgres -c 'DROP DATABASE IF EXISTS jobsdb WITH (FORCE)' -c 'CREATE DATABASE jobsdb' >/dev/null
  data=$(mktemp -d /tmp/cairn-rudder-bench-XXXXXX)
  mkdir -p "$data/tmp" "$data/empty"
  # No transformer runs: GET /features answers 404, so rudder-server uses
  # its built-in defaults; with no destinations nothing else is asked of it
  # (requests are logged in $run-transformer.log).
  python3 -m http.server --bind 127.0.0.1 9090 --directory "$data/empty" >"$OUT/$run-transformer.log" 2>&1 &
  stub=$!
  (
    cd "$data"
    export CONFIG_PATH=$RUDDER_SRC/config/config.yaml DEPLOYMENT_TYPE=DEDICATED GO_ENV=production LOG_LEVEL=WARN \
      JOBS_DB_HOST=127.0.0.1 JOBS_DB_PORT=$PGPORT JOBS_DB_USER=rudder JOBS_DB_PASSWORD=rudder JOBS_DB_DB_NAME=jobsdb JOBS_DB_SSL_MODE=disable \
      WAREHOUSE_JOBS_DB_HOST=127.0.0.1 WAREHOUSE_JOBS_DB_PORT=$PGPORT WAREHOUSE_JOBS_DB_USER=rudder WAREHOUSE_JOBS_DB_PASSWORD=rudder \
      WAREHOUSE_JOBS_DB_DB_NAME=jobsdb WAREHOUSE_JOBS_DB_SSL_MODE=disable \
      RSERVER_BACKEND_CONFIG_CONFIG_FROM_FILE=true RSERVER_BACKEND_CONFIG_CONFIG_JSONPATH=$repo/scripts/rudder/workspaceConfig.json \
      RSERVER_DEDUP_ENABLE_DEDUP=true RSERVER_GATEWAY_WEB_PORT=8081 RSERVER_ENABLE_STATS=false \
      RSERVER_DIAGNOSTICS_ENABLE_DIAGNOSTICS=false DEST_TRANSFORM_URL=http://127.0.0.1:9090 RUDDER_TMPDIR=$data/tmp
    exec "$RUDDER_BIN"
  ) >"$OUT/$run-server.log" 2>&1 &
  root=$!
  for _ in $(seq 1 120); do curl -sf 127.0.0.1:8081/health >/dev/null && break; sleep 1; done
  curl -sf 127.0.0.1:8081/health >/dev/null || { echo "rudder-server did not start; see $OUT/$run-server.log" >&2; return 1; }
  # The processor opens its deduplication store (badger) only with dedup on.
  for _ in $(seq 1 20); do [ -d "$data/tmp/badgerdbv4" ] && break; sleep 0.5; done
  [ -d "$data/tmp/badgerdbv4" ] || { echo "rudder-server: dedup is not on (no $data/tmp/badgerdbv4)" >&2; return 1; }
  key=cairn-bench-write-key url=http://127.0.0.1:8081 okbody=ok roots=("$root" "$pgpid")
}
rudder_stop() {
  kill -TERM "$root" 2>/dev/null || true; wait "$root" 2>/dev/null || true
  kill "$stub" 2>/dev/null || true; wait "$stub" 2>/dev/null || true
  root= stub=
  rm -rf "$data"
}
rudder_backlog() { rudder_pending; }

# one SIDE BATCH CONC: a fresh server, DURATION s of load, wait until idle,
# one line of results.
one() {
  local side=$1 batch=$2 conc=$3 la t0 t1 t2 c0 c1 lp max=0 b acc p99 idle
  run=r$round-$side-$batch-$conc
  "${side}_start"
  la=$(loadavg)
  c0=$(tree_ticks "${roots[@]}")
  t0=$(now)
  "$OUT/ingestload" -segment "$url" ${okbody:+-ok-body "$okbody"} -key "$key" -batch "$batch" -conc "$conc" \
    -duration "${DURATION}s" >"$OUT/$run.txt" 2>&1 &
  lp=$!
  printf 'time_s backlog\n' >"$OUT/$run-backlog.txt"
  while kill -0 "$lp" 2>/dev/null; do
    b=$("${side}_backlog"); [ "$b" -gt "$max" ] && max=$b
    printf '%.1f %s\n' "$(echo "$(now) - $t0" | bc)" "$b" >>"$OUT/$run-backlog.txt"
    sleep 1
  done
  wait "$lp" || true
  t1=$(now)
  while :; do
    b=$("${side}_backlog")
    printf '%.1f %s\n' "$(echo "$(now) - $t0" | bc)" "$b" >>"$OUT/$run-backlog.txt"
    [ "$b" -gt "$max" ] && max=$b
    [ "$b" = 0 ] && break
    [ "$(echo "$(now) - $t1 > $DRAIN_MAX" | bc)" = 1 ] && { echo "still $b behind after ${DRAIN_MAX}s" >>"$OUT/$run.txt"; break; }
    sleep 0.5
  done
  t2=$(now)
  c1=$(tree_ticks "${roots[@]}")
  "${side}_stop"
  acc=$(sed -n 's/^accepted=\([0-9]*\).*/\1/p' "$OUT/$run.txt")
  # Go duration (µs, ms or s) to milliseconds
  p99=$(sed -n 's/.* ack_p99=\([^ ]*\).*/\1/p' "$OUT/$run.txt" |
    awk '/ms$/ {printf "%.0f", $0 + 0; next} /µs$/ {printf "%.1f", $0 / 1000; next} /s$/ {printf "%.0f", $0 * 1000; next} {print "?"}')
  idle=$(echo "$t2 - $t1" | bc)
  cat "$OUT/$run.txt"
  # side batch conc accepted accepted/s p99 idle-after fully/s cpu-s cpu-s/1M max-backlog load
  awk -v s="$side" -v b="$batch" -v c="$conc" -v a="${acc:-0}" -v w="$(echo "$t1 - $t0" | bc)" -v p="${p99:-?}" \
    -v i="$idle" -v cpu="$((c1 - c0))" -v m="$max" -v l="$la" 'BEGIN {
      printf "%s\t%s\t%s\t%d\t%.0f\t%s\t%.1f\t%.0f\t%.1f\t%.0f\t%d\t%s\n", s, b, c, a, a / w, p, i, a / (w + i), cpu / 100,
        (a > 0 ? cpu / 100 / a * 1e6 : 0), m, l }' | tee -a "$OUT/results.tsv"
}

inside() {
  ip link set lo up
  # On any exit, stop what this script started (by pid) and the cluster.
  trap '[ -n "${root:-}" ] && kill -INT "$root" 2>/dev/null; [ -n "${stub:-}" ] && kill "$stub" 2>/dev/null; wait; pg_stop' EXIT
  pg_start
  : >"$OUT/results.tsv"
  local r s
  for round in $(seq 1 "$ROUNDS"); do
    for s in $SHAPES; do
      local sides="cairn rudder"
      [ $((round % 2)) = 0 ] && sides="rudder cairn"
      for side in $sides; do
        printf '\n### round %s, %s, batches of %s, %s callers, %s s (load %s)\n' "$round" "$side" "${s%%:*}" "${s##*:}" "$DURATION" "$(loadavg)"
        one "$side" "${s%%:*}" "${s##*:}"
      done
    done
  done
  {
    echo
    echo "Side by side, $DURATION s per run, $(date -u +%F), $(nproc) CPUs, rudder-server $RUDDER_REV"
    echo
    echo "| run | side | per request × callers | accepted/s | p99 | fully processed/s (idle after) | CPU-s per 1M events | largest backlog | load at start |"
    echo "|---|---|---|---|---|---|---|---|---|"
    awk -F'\t' '{ printf "| %d | %s | %s × %s | %s | %s | %s (%s s) | %s | %s %s | %s |\n", NR, ($1 == "cairn" ? "Cairn whole suite" : "rudder-server + PostgreSQL"),
      $2, $3, $5, $6 " ms", $8, $7, $10, $11, ($1 == "cairn" ? "records" : "gw jobs"), $12 }' "$OUT/results.tsv"
    echo
    echo "Backlog: Cairn, consumer lag in records; rudder-server, gateway jobs not yet processed (one per event)."
    echo "CPU: the whole process tree (cairn run and its services; rudder-server and PostgreSQL), from /proc, load and catch-up."
  } | tee "$OUT/results.md"
}

export OUT=${OUT:-/tmp/cairn-rudder-bench} DURATION=${DURATION:-60} ROUNDS=${ROUNDS:-1} \
  SHAPES=${SHAPES:-"100:8 100:32 1:32"} DRAIN_MAX=${DRAIN_MAX:-600} \
  RUDDER_BENCH_CACHE=${RUDDER_BENCH_CACHE:-$HOME/.cache/cairn-rudder-bench} RUDDER_DEPS_DIR=${RUDDER_DEPS_DIR:-/work/.mirror}

if [ "${1:-}" = --inside ]; then
  inside
  exit
fi
[ $# = 1 ] || { sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
RUDDER_SRC=$(cd "$1" && pwd)
setup "$RUDDER_SRC"
RUDDER_REV=${RUDDER_REV:-$(git -C "$RUDDER_SRC" rev-parse --short HEAD 2>/dev/null || echo "from $RUDDER_SRC")}
export RUDDER_SRC RUDDER_BIN RUDDER_REV
echo "rudder-server binary: $RUDDER_BIN"
exec unshare -n -- bash "$0" --inside
