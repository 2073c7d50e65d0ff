#!/usr/bin/env bash
# Benchmark: `caasctl etcd backup` against `etcdctl snapshot save` on the same 3-member mutual-TLS
# etcd 3.4 cluster, alternating in one run. Prints each run, the median wall-time ratio
# (caasctl / etcdctl) and both tools' peak RSS, first at BENCH_KEYS keys, then at twice as many.
# caasctl also hashes the stream, checks etcd's appended hash, archives a config directory and
# writes the manifest; etcdctl only saves the file.
# Environment: BENCH_KEYS (default 100000), BENCH_VALUE (bytes, default 1300), BENCH_RUNS (default 5).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
keys=${BENCH_KEYS:-100000}
value=${BENCH_VALUE:-1300}
runs=${BENCH_RUNS:-5}
work=$(mktemp -d /tmp/caasctl-bench-backup.XXXXXX)
. scripts/lib/etcd-cluster.sh
trap 'etcd_cluster_stop; rm -rf "$work"' EXIT

cargo build --release -q -p caasctl -p caasctl-testing
caasctl=${CARGO_TARGET_DIR:-$root/target}/release/caasctl
load=${CARGO_TARGET_DIR:-$root/target}/release/etcd-load

etcd_cluster_start "$work" /usr/bin/etcd
tls=(--cacert "$etcd_pki/ca.crt" --cert "$etcd_pki/peer.crt" --key "$etcd_pki/peer.key")
# etcdctl saves from one endpoint; give it a follower, as caasctl picks one.
follower=$(ETCDCTL_API=3 etcdctl --endpoints="$etcd_endpoints" "${tls[@]}" endpoint status -w json |
    python3 -c 'import json,sys; print(next(s["Endpoint"] for s in json.load(sys.stdin) if s["Status"]["leader"] != s["Status"]["header"]["member_id"]))')

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

measure() {
    local label=$1 total_keys=$2
    local i ours=() theirs=() ours_rss=0 theirs_rss=0 seconds rss
    for i in $(seq 1 "$runs"); do
        rm -f "$work/etcdctl.db"
        /usr/bin/time -f '%e %M' -o "$work/time.txt" env ETCDCTL_API=3 etcdctl --endpoints="$follower" "${tls[@]}" \
            snapshot save "$work/etcdctl.db" >/dev/null 2>&1
        read -r seconds rss < "$work/time.txt"
        theirs+=("$seconds"); theirs_rss=$(( rss > theirs_rss ? rss : theirs_rss ))

        rm -rf "$work/repo"
        /usr/bin/time -f '%e %M' -o "$work/time.txt" "$caasctl" --no-progress -q etcd backup \
            --endpoints "$etcd_endpoints" "${tls[@]}" --repo "$work/repo" --config-dir "$etcd_pki" >/dev/null
        read -r seconds rss < "$work/time.txt"
        ours+=("$seconds"); ours_rss=$(( rss > ours_rss ? rss : ours_rss ))
        echo "  run $i: etcdctl ${theirs[-1]} s, caasctl ${ours[-1]} s"
    done
    local size mt mo
    size=$(stat -c %s "$work/etcdctl.db")
    mt=$(printf '%s\n' "${theirs[@]}" | median)
    mo=$(printf '%s\n' "${ours[@]}" | median)
    echo "$label: $total_keys keys, snapshot $((size / 1048576)) MiB"
    echo "  median etcdctl snapshot save: $mt s, peak RSS $((theirs_rss / 1024)) MiB"
    echo "  median caasctl etcd backup:   $mo s, peak RSS $((ours_rss / 1024)) MiB"
    python3 -c "print('  ratio caasctl/etcdctl: %.3f' % ($mo / $mt))"
}

echo "== loading $keys keys of $value bytes"
"$load" "$etcd_endpoints" "$keys" "$value" "$etcd_pki/ca.crt" "$etcd_pki/peer.crt" "$etcd_pki/peer.key" >/dev/null
measure "single size" "$keys"

echo "== loading $((keys * 2)) keys (twice the data)"
"$load" "$etcd_endpoints" "$((keys * 2))" "$value" "$etcd_pki/ca.crt" "$etcd_pki/peer.crt" "$etcd_pki/peer.key" >/dev/null
measure "double size" "$((keys * 2))"
