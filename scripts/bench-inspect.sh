#!/usr/bin/env bash
# Benchmark: `caasctl etcd inspect FILE status` against `etcdutl snapshot status` (etcd 3.5) on the
# same snapshot of at least 500 MB, alternating in one run. Prints each run, the median wall-time
# ratio (caasctl / etcdutl) and both tools' peak RSS from /usr/bin/time -v, and checks that both
# print the same hash, revision, total keys and total size.
# The snapshot is made by loading a single-member etcd 3.5 with BENCH_KEYS keys of BENCH_VALUE bytes
# (defaults 56000 x 10000, about 560 MB) and saving it with etcdctl 3.5; BENCH_SNAPSHOT=FILE skips
# that and uses FILE. BENCH_RUNS (default 5) sets the number of alternating runs.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
keys=${BENCH_KEYS:-56000}
value=${BENCH_VALUE:-10000}
runs=${BENCH_RUNS:-5}
tools=${CAASCTL_TOOLS_DIR:-$HOME/.cache/caasctl-tools}/bin
work=$(mktemp -d /tmp/caasctl-bench-inspect.XXXXXX)
etcd_pid=""
cleanup() {
    if [ -n "$etcd_pid" ]; then kill "$etcd_pid" 2>/dev/null || true; wait "$etcd_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --release -q -p caasctl -p caasctl-testing
caasctl=${CARGO_TARGET_DIR:-$root/target}/release/caasctl
load=${CARGO_TARGET_DIR:-$root/target}/release/etcd-load

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

snapshot=${BENCH_SNAPSHOT:-}
if [ -z "$snapshot" ]; then
    client=$(free_port); peer=$(free_port)
    "$tools/etcd-3.5" --name bench --data-dir "$work/data" \
        --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
        --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "bench=http://127.0.0.1:$peer" --quota-backend-bytes=$((8 * 1024 * 1024 * 1024)) \
        > "$work/etcd.log" 2>&1 &
    etcd_pid=$!
    for _ in $(seq 1 50); do
        "$tools/etcdctl-3.5" --endpoints="127.0.0.1:$client" endpoint health >/dev/null 2>&1 && break
        sleep 0.2
    done
    echo "loading $keys keys of $value bytes"
    "$load" "http://127.0.0.1:$client" "$keys" "$value"
    snapshot=$work/snapshot.db
    "$tools/etcdctl-3.5" --endpoints="127.0.0.1:$client" snapshot save "$snapshot" >/dev/null 2>&1
    kill "$etcd_pid"; wait "$etcd_pid" 2>/dev/null || true; etcd_pid=""
fi
size=$(stat -c %s "$snapshot")
echo "snapshot: $snapshot, $((size / 1000000)) MB"
if [ "$size" -lt 500000000 ]; then
    echo "bench-inspect: the snapshot is smaller than 500 MB; raise BENCH_KEYS or BENCH_VALUE" >&2
    exit 1
fi

# Same values from both tools, or the timing means nothing.
ours=$("$caasctl" -o json etcd inspect "$snapshot" status)
theirs=$("$tools/etcdutl-3.5" snapshot status -w json "$snapshot")
python3 - "$ours" "$theirs" <<'PY'
import json, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for field in ("hash", "revision", "totalKey", "totalSize"):
    if ours[field] != theirs[field]:
        sys.exit(f"bench-inspect: {field} differs: caasctl {ours[field]}, etcdutl {theirs[field]}")
print("same status:", {k: ours[k] for k in ("hash", "revision", "totalKey", "totalSize")})
PY

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# Runs a command under /usr/bin/time -v and prints "SECONDS MAX_RSS_KIB".
timed() {
    /usr/bin/time -v -o "$work/time.txt" "$@" >/dev/null 2>&1
    python3 - "$work/time.txt" <<'PY'
import sys
fields = dict(line.strip().rsplit(": ", 1) for line in open(sys.argv[1]) if ": " in line)
clock = fields["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":")
seconds = sum(float(part) * 60 ** index for index, part in enumerate(reversed(clock)))
print(f'{seconds:.3f} {fields["Maximum resident set size (kbytes)"]}')
PY
}

ours_times=(); theirs_times=(); ours_rss=0; theirs_rss=0
for i in $(seq 1 "$runs"); do
    read -r t_ours r_ours < <(timed "$caasctl" -o json etcd inspect "$snapshot" status)
    read -r t_theirs r_theirs < <(timed "$tools/etcdutl-3.5" snapshot status -w json "$snapshot")
    echo "run $i: caasctl ${t_ours}s ${r_ours} KiB, etcdutl ${t_theirs}s ${r_theirs} KiB"
    ours_times+=("$t_ours"); theirs_times+=("$t_theirs")
    ours_rss=$(( r_ours > ours_rss ? r_ours : ours_rss )); theirs_rss=$(( r_theirs > theirs_rss ? r_theirs : theirs_rss ))
done
m_ours=$(printf '%s\n' "${ours_times[@]}" | median)
m_theirs=$(printf '%s\n' "${theirs_times[@]}" | median)
python3 - "$m_ours" "$m_theirs" "$ours_rss" "$theirs_rss" <<'PY'
import sys
t_ours, t_theirs, r_ours, r_theirs = map(float, sys.argv[1:])
print(f"median time: caasctl {t_ours:.3f}s, etcdutl {t_theirs:.3f}s, ratio {t_ours / t_theirs:.2f} (goal <= 0.5)")
print(f"peak RSS: caasctl {r_ours / 1024:.1f} MiB, etcdutl {r_theirs / 1024:.1f} MiB, ratio {r_ours / r_theirs:.2f} (goal < 0.33)")
PY
