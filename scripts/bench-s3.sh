#!/usr/bin/env bash
# Benchmark: `caasctl etcd backup` straight into an S3 repository against the two-step baseline
# `etcdctl snapshot save` followed by an upload of the file (crates/etcd/examples/s3-upload.rs,
# object_store with the same part size and concurrency). Same 3-member mutual-TLS etcd 3.4
# cluster and the same s3s-fs server on loopback, alternating in one run. Prints each run, the
# median wall-time ratio (caasctl / baseline) and peak RSS of each process.
# caasctl also hashes the stream, checks etcd's appended hash and writes the manifest.
# Environment: BENCH_KEYS (default 100000), BENCH_VALUE (bytes, default 1300), BENCH_RUNS (default 5),
# BENCH_BIN_DIR (a directory with prebuilt release binaries caasctl, etcd-load and s3-upload),
# CAASCTL_S3_PART_MIB and CAASCTL_S3_UPLOAD_CONCURRENCY (upload settings of both sides).
# With BENCH_BIN_DIR the build is skipped, so a target directory shared with other worktrees
# cannot swap the binaries during the run.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
keys=${BENCH_KEYS:-100000}
value=${BENCH_VALUE:-1300}
runs=${BENCH_RUNS:-5}
tools=${CAASCTL_TOOLS_DIR:-$HOME/.cache/caasctl-tools}
work=$(mktemp -d /tmp/caasctl-bench-s3.XXXXXX)
s3_pid=
. scripts/lib/etcd-cluster.sh
trap 'etcd_cluster_stop; [ -n "$s3_pid" ] && kill "$s3_pid" 2>/dev/null; rm -rf "$work"' EXIT

if [ -n "${BENCH_BIN_DIR:-}" ]; then
    caasctl=$BENCH_BIN_DIR/caasctl load=$BENCH_BIN_DIR/etcd-load upload=$BENCH_BIN_DIR/s3-upload
else
    cargo build --release -q -p caasctl -p caasctl-testing
    cargo build --release -q -p caasctl-etcd --example s3-upload
    target=${CARGO_TARGET_DIR:-$root/target}/release
    caasctl=$target/caasctl
    load=$target/etcd-load
    upload=$target/examples/s3-upload
fi
echo "== upload settings: part ${CAASCTL_S3_PART_MIB:-default} MiB, ${CAASCTL_S3_UPLOAD_CONCURRENCY:-default} in flight; load: $(cut -d' ' -f1-3 /proc/loadavg)"

etcd_cluster_start "$work" /usr/bin/etcd
tls=(--cacert "$etcd_pki/ca.crt" --cert "$etcd_pki/peer.crt" --key "$etcd_pki/peer.key")
follower=$(ETCDCTL_API=3 etcdctl --endpoints="$etcd_endpoints" "${tls[@]}" endpoint status -w json |
    python3 -c 'import json,sys; print(next(s["Endpoint"] for s in json.load(sys.stdin) if s["Status"]["leader"] != s["Status"]["header"]["member_id"]))')

s3_port=$(etcd_free_port)
mkdir -p "$work/s3/bench"
export AWS_ACCESS_KEY_ID=bench-access AWS_SECRET_ACCESS_KEY=bench-secret-0123456789
"$tools/bin/s3s-fs" --host 127.0.0.1 --port "$s3_port" --access-key "$AWS_ACCESS_KEY_ID" \
    --secret-key "$AWS_SECRET_ACCESS_KEY" "$work/s3" >"$work/s3s.log" 2>&1 &
s3_pid=$!
endpoint=http://127.0.0.1:$s3_port
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null && break; sleep 0.1; done

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
max() { awk -v a="$1" -v b="$2" 'BEGIN {print (a > b) ? a : b}'; }

echo "== loading $keys keys of $value bytes"
"$load" "$etcd_endpoints" "$keys" "$value" "$etcd_pki/ca.crt" "$etcd_pki/peer.crt" "$etcd_pki/peer.key" >/dev/null

ours=() theirs=() saves=() uploads=() ours_rss=0 save_rss=0 upload_rss=0
for i in $(seq 1 "$runs"); do
    rm -f "$work/etcdctl.db"
    start=$(date +%s.%N)
    /usr/bin/time -f '%M' -o "$work/save.txt" env ETCDCTL_API=3 etcdctl --endpoints="$follower" "${tls[@]}" \
        snapshot save "$work/etcdctl.db" >/dev/null 2>&1
    saved=$(date +%s.%N)
    /usr/bin/time -f '%M' -o "$work/upload.txt" "$upload" "$endpoint" bench "baseline/run-$i.db" "$work/etcdctl.db"
    end=$(date +%s.%N)
    theirs+=("$(python3 -c "print(round($end - $start, 3))")")
    saves+=("$(python3 -c "print(round($saved - $start, 3))")")
    uploads+=("$(python3 -c "print(round($end - $saved, 3))")")
    save_rss=$(max "$save_rss" "$(cat "$work/save.txt")")
    upload_rss=$(max "$upload_rss" "$(cat "$work/upload.txt")")

    /usr/bin/time -f '%e %M' -o "$work/time.txt" "$caasctl" --no-progress -q etcd backup --no-config \
        --endpoints "$etcd_endpoints" "${tls[@]}" --repo "s3://bench/caasctl" \
        --s3-endpoint "$endpoint" --s3-path-style >/dev/null 2>"$work/caasctl.err"
    read -r seconds rss < "$work/time.txt"
    ours+=("$seconds"); ours_rss=$(max "$ours_rss" "$rss")
    echo "  run $i: etcdctl save + upload ${theirs[-1]} s, caasctl backup to S3 $seconds s"
done
size=$(stat -c %s "$work/etcdctl.db")
mt=$(printf '%s\n' "${theirs[@]}" | median)
mo=$(printf '%s\n' "${ours[@]}" | median)
echo "$keys keys, snapshot $((size / 1048576)) MiB"
echo "  median etcdctl snapshot save + s3-upload: $mt s, peak RSS save $((save_rss / 1024)) MiB, upload $((upload_rss / 1024)) MiB"
echo "    of which median save $(printf '%s\n' "${saves[@]}" | median) s, median upload $(printf '%s\n' "${uploads[@]}" | median) s"
echo "  median caasctl etcd backup to S3:         $mo s, peak RSS $((ours_rss / 1024)) MiB"
python3 -c "print('  ratio caasctl/baseline: %.3f' % ($mo / $mt))"
echo "  load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
