#!/usr/bin/env bash
# The main job on real input: installs what caasctl needs, starts a local 3-member etcd cluster with
# mutual TLS and sample Kubernetes-shaped data on loopback ports, backs it up with caasctl into
# ./caasctl-backups and verifies the backup. Then it stops that cluster, restores the backup into a
# fresh 3-member cluster through a cluster file and checks that every key and value is back.
# Every etcd process is stopped by PID when the script ends.
# Environment: DEMO_KEYS (sample keys, default 5000), DEMO_DIR (work directory, default .caasctl-demo).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
keys=${DEMO_KEYS:-5000}
work=${DEMO_DIR:-$root/.caasctl-demo}
repo=$root/caasctl-backups
. scripts/lib/etcd-cluster.sh

bash scripts/install-deps.sh
# The dev profile shares its build with the test suite; dependencies are optimised in it too.
cargo build -q -p caasctl -p caasctl-testing
target=${CARGO_TARGET_DIR:-$root/target}
caasctl=$target/debug/caasctl

rm -rf "$work"
mkdir -p "$work"
fresh=$work/fresh
stop_fresh() {
    local name
    for name in m0 m1 m2; do
        [ -d "$fresh/$name" ] && bash scripts/lib/etcd-member.sh stop "$fresh/$name"
    done
    return 0
}
trap 'etcd_cluster_stop; stop_fresh' EXIT

echo "== starting a 3-member etcd 3.4 cluster with mutual TLS in $work"
etcd_cluster_start "$work" /usr/bin/etcd
tls=(--cacert "$etcd_pki/ca.crt" --cert "$etcd_pki/peer.crt" --key "$etcd_pki/peer.key")

echo "== loading $keys Kubernetes-shaped keys"
"$target/debug/etcd-load" "$etcd_endpoints" "$keys" 1024 "$etcd_pki/ca.crt" "$etcd_pki/peer.crt" "$etcd_pki/peer.key"

echo "== caasctl etcd health"
"$caasctl" etcd health --endpoints "$etcd_endpoints" "${tls[@]}"

echo "== caasctl etcd backup --repo $repo"
# m0's directory plays the part of /etc/etcd, so its etcd.conf and certificates are archived too.
cp -r "$etcd_pki" "$work/m0/"
"$caasctl" etcd backup --endpoints "$etcd_endpoints" "${tls[@]}" --repo "$repo" --config-dir "$work/m0"

echo "== caasctl etcd backups verify --repo $repo latest"
"$caasctl" etcd backups verify --repo "$repo" latest
"$caasctl" etcd backups list --repo "$repo"

echo "== stopping the cluster and restoring the backup into a fresh one"
etcdctl_tls get "" --prefix > "$work/before.txt"
etcd_cluster_stop
initial=""
declare -A client peer
for name in m0 m1 m2; do
    client[$name]=$(etcd_free_port)
    peer[$name]=$(etcd_free_port)
    initial+="${initial:+,}$name=https://127.0.0.1:${peer[$name]}"
done
cat > "$work/caasctl.toml" <<TOML
# The fresh cluster: three members on this host, started and stopped by plain commands.
[etcd]
token = "demo-restored"
cacert = "$etcd_pki/ca.crt"
cert = "$etcd_pki/peer.crt"
key = "$etcd_pki/peer.key"
TOML
for name in m0 m1 m2; do
    etcd_write_conf "$fresh" "$name" "${client[$name]}" "${peer[$name]}" "$initial" existing
    cat >> "$work/caasctl.toml" <<TOML

[[etcd.members]]
name = "$name"
peer_url = "https://127.0.0.1:${peer[$name]}"
client_url = "https://127.0.0.1:${client[$name]}"
data_dir = "$fresh/$name/data"
owner = ""
service = { kind = "commands", start = "bash $root/scripts/lib/etcd-member.sh start $fresh/$name", stop = "bash $root/scripts/lib/etcd-member.sh stop $fresh/$name" }
TOML
done
"$caasctl" etcd restore latest --repo "$repo" --cluster "$work/caasctl.toml" --yes

etcd_endpoints=""
for name in m0 m1 m2; do etcd_endpoints+="${etcd_endpoints:+,}https://127.0.0.1:${client[$name]}"; done
etcdctl_tls get "" --prefix > "$work/after.txt"
if cmp -s "$work/before.txt" "$work/after.txt"; then
    echo "every key and value is back: $(grep -c '^/registry/' "$work/after.txt") keys"
else
    echo "the restored cluster differs from the backed-up one: diff $work/before.txt $work/after.txt" >&2
    exit 1
fi
