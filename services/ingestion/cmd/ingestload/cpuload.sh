#!/bin/bash
# cpuload.sh INGESTION_BIN "INGESTLOAD ARGS" [SERVER FLAGS...]
#
# Starts INGESTION_BIN on a fresh data directory (127.0.0.1:7291, metrics
# :9291), drives it with ingestload (batches of 100 plus the given args),
# waits until the server idles (so the index passes that follow the load are
# counted), and prints the server's CPU per accepted event (utime+stime from
# /proc), ingestload's events/s and ack latencies, the seconds it took to idle
# (drain_s, ≥ 1), RssAnon at the end of the load and the load average.
# Expects /tmp/ib/cairn and /tmp/ib/ingestload:
#   go build -o /tmp/ib/cairn ./cmd/cairn
#   go build -o /tmp/ib/ingestload ./services/ingestion/cmd/ingestload
#   go build -o /tmp/ib/ing ./services/ingestion
#   services/ingestion/cmd/ingestload/cpuload.sh /tmp/ib/ing "-conc 32 -stream -rate 20000 -duration 10s"
set -eu
bin=$1 largs=$2
shift 2
d=$(mktemp -d /tmp/cpuload-XXXXXX)
key=$(/tmp/ib/cairn keys create --role write --workspace bench --keys "$d/keys.json" 2>/dev/null)
"$bin" -grpc-addr 127.0.0.1:7291 -metrics-addr 127.0.0.1:9291 -data "$d" -keys "$d/keys.json" "$@" >"$d/log" 2>&1 &
ing=$!
trap 'kill -TERM $ing 2>/dev/null; wait $ing || true; rm -rf "$d"' EXIT
for _ in $(seq 1 50); do curl -s 127.0.0.1:9291/metrics >/dev/null && break; sleep 0.2; done
cpu() { awk '{print $14+$15}' "/proc/$ing/stat"; }
c0=$(cpu)
# shellcheck disable=SC2086
out=$(/tmp/ib/ingestload -addr 127.0.0.1:7291 -key "$key" -workspace bench -batch 100 $largs)
rss=$(awk '/RssAnon/{printf "%.0fMB", $2/1024}' "/proc/$ing/status")
prev=$(cpu) drain=0
for _ in $(seq 1 60); do
  sleep 1
  drain=$((drain + 1))
  cur=$(cpu)
  [ $((cur - prev)) -lt 3 ] && break
  prev=$cur
done
c1=$(cpu)
acc=$(echo "$out" | sed -n 's/.*accepted=\([0-9]*\).*/\1/p')
lat=$(echo "$out" | sed -n 's/.*events\/s=\([0-9]*\) .*ack_p50=\([^ ]*\) ack_p99=\([^ ]*\).*/events\/s=\1 p50=\2 p99=\3/p')
us=$(awk -v a="$c0" -v b="$c1" -v t="$(getconf CLK_TCK)" -v n="$acc" 'BEGIN{printf "%.1f", (b-a)/t*1e6/n}')
echo "$(basename "$bin") [$largs] [$*] cpu_us/event=$us $lat accepted=$acc drain_s=$drain rssanon=$rss load=$(cut -d' ' -f1-3 /proc/loadavg)"
