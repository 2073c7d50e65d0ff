#!/usr/bin/env bash
# Benchmark: restoring one snapshot into the data dirs of three members, etcd's own tool run once
# per member one after the other (etcdutl for 3.5, etcdctl with ETCDCTL_API=3 for 3.4) against
# `caasctl etcd restore --cluster FILE --no-start`, which checks the snapshot's hashes first and
# then runs the same tool for the three members in parallel, journaling each step.
# Runs alternate which side goes first. Prints each run, the median of the per-run wall-time
# ratios (caasctl / tool) and peak RSS. /usr/bin/time reports the largest single process it waited
# for, so caasctl's figure is the larger of caasctl itself and the restore tools it ran.
# Environment: BENCH_VERSION (3.4 or 3.5, default both), BENCH_KEYS (default 50000),
# BENCH_VALUE (bytes, default 1000), BENCH_RUNS (default 5, at least 5 recommended), and
# CAASCTL_BIN / ETCD_LOAD_BIN for prebuilt binaries.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
keys=${BENCH_KEYS:-50000}
value=${BENCH_VALUE:-1000}
runs=${BENCH_RUNS:-5}
versions=${BENCH_VERSION:-"3.4 3.5"}
tools=${CAASCTL_TOOLS_DIR:-$HOME/.cache/caasctl-tools}/bin
work=$(mktemp -d /tmp/caasctl-bench-restore.XXXXXX)
. scripts/lib/etcd-cluster.sh
trap 'etcd_cluster_stop; rm -rf "$work"' EXIT

# CAASCTL_BIN and ETCD_LOAD_BIN name prebuilt binaries and skip the release build.
if [ -z "${CAASCTL_BIN:-}" ] || [ -z "${ETCD_LOAD_BIN:-}" ]; then
    cargo build --release -q -p caasctl -p caasctl-testing
fi
caasctl=${CAASCTL_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/caasctl}
load=${ETCD_LOAD_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/etcd-load}
export CAASCTL_STATE_DIR=$work/state

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

bench_version() {
    local version=$1 etcd tool kind
    case $version in
        3.4) etcd=/usr/bin/etcd; tool=/usr/bin/etcdctl; kind=etcdctl ;;
        3.5) etcd=$tools/etcd-3.5; tool=$tools/etcdutl-3.5; kind=etcdutl ;;
        *) echo "unknown version $version" >&2; return 2 ;;
    esac
    local dir=$work/$version
    mkdir -p "$dir"
    etcd_cluster_start "$dir/cluster" "$etcd"
    "$load" "$etcd_endpoints" "$keys" "$value" "$etcd_pki/ca.crt" "$etcd_pki/peer.crt" "$etcd_pki/peer.key" >/dev/null
    # etcdctl 3.5 saves a snapshot from exactly one endpoint.
    local etcdctl=/usr/bin/etcdctl
    [ "$version" = 3.5 ] && etcdctl=$tools/etcdctl-3.5
    ETCDCTL_API=3 "$etcdctl" --endpoints="${etcd_endpoints%%,*}" --cacert="$etcd_pki/ca.crt" \
        --cert="$etcd_pki/peer.crt" --key="$etcd_pki/peer.key" snapshot save "$dir/snap.db" >/dev/null 2>&1
    etcd_cluster_stop

    local initial="" name
    for name in m0 m1 m2; do initial+="${initial:+,}$name=https://127.0.0.1:$((23800 + ${name#m}))"; done
    {
        echo '[etcd]'
        echo 'token = "bench"'
        for name in m0 m1 m2; do
            cat <<TOML
[[etcd.members]]
name = "$name"
peer_url = "https://127.0.0.1:$((23800 + ${name#m}))"
client_url = "https://127.0.0.1:$((23790 + ${name#m}))"
data_dir = "$dir/caasctl/$name"
engine = "$tool"
owner = ""
service = { kind = "commands", start = "true", stop = "true" }
TOML
        done
    } > "$dir/caasctl.toml"

    restore_with_tool() {
        local name
        for name in m0 m1 m2; do
            if [ "$kind" = etcdctl ]; then export ETCDCTL_API=3; fi
            "$tool" snapshot restore "$dir/snap.db" --data-dir "$dir/tool/$name" --name "$name" \
                --initial-cluster "$initial" --initial-cluster-token bench \
                --initial-advertise-peer-urls "https://127.0.0.1:$((23800 + ${name#m}))" >/dev/null 2>&1 || return 1
        done
    }

    local i seconds rss ours=() theirs=() ratios=() ours_rss=0 theirs_rss=0 first
    for i in $(seq 1 "$runs"); do
        rm -rf "$dir/tool" "$dir/caasctl"
        mkdir -p "$dir/tool" "$dir/caasctl"
        for first in $( ((i % 2)) && echo "tool caasctl" || echo "caasctl tool"); do
            sync
            if [ "$first" = tool ]; then
                /usr/bin/time -f '%e %M' -o "$work/time.txt" bash -c "$(declare -f restore_with_tool); kind=$kind tool=$tool dir=$dir initial=$initial restore_with_tool"
                read -r seconds rss < "$work/time.txt"
                theirs+=("$seconds"); theirs_rss=$(( rss > theirs_rss ? rss : theirs_rss ))
            else
                /usr/bin/time -f '%e %M' -o "$work/time.txt" "$caasctl" --no-progress -q etcd restore "$dir/snap.db" \
                    --cluster "$dir/caasctl.toml" --no-start --yes >/dev/null 2>&1
                read -r seconds rss < "$work/time.txt"
                ours+=("$seconds"); ours_rss=$(( rss > ours_rss ? rss : ours_rss ))
            fi
        done
        for name in m0 m1 m2; do
            test -d "$dir/tool/$name/member" || { echo "run $i: $kind wrote no $dir/tool/$name" >&2; return 1; }
            test -d "$dir/caasctl/$name/member" || { echo "run $i: caasctl wrote no $dir/caasctl/$name" >&2; return 1; }
        done
        ratios+=("$(python3 -c "print('%.3f' % (${ours[-1]} / ${theirs[-1]}))")")
        echo "  etcd $version run $i: $kind x3 sequential ${theirs[-1]} s, caasctl ${ours[-1]} s, ratio ${ratios[-1]}"
    done
    local size
    size=$(stat -c %s "$dir/snap.db")
    echo "etcd $version: $keys keys of $value bytes, snapshot $((size / 1048576)) MiB, $runs runs"
    echo "  median $kind snapshot restore x3 (sequential): $(printf '%s\n' "${theirs[@]}" | median) s, peak RSS $((theirs_rss / 1024)) MiB"
    echo "  median caasctl etcd restore (3 members, parallel): $(printf '%s\n' "${ours[@]}" | median) s, peak RSS $((ours_rss / 1024)) MiB"
    echo "  median ratio caasctl/$kind: $(printf '%s\n' "${ratios[@]}" | median)"
}

for version in $versions; do
    bench_version "$version"
done
