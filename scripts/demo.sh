#!/usr/bin/env bash
# The main job on real input: installs what caasctl needs, starts a local 3-member etcd cluster with
# mutual TLS and sample Kubernetes-shaped data on loopback ports, backs it up with caasctl into
# ./caasctl-backups and verifies the backup. The cluster is stopped by PID when the script ends.
# Environment: DEMO_KEYS (sample keys, default 5000), DEMO_DIR (work directory, default .caasctl-demo).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
keys=${DEMO_KEYS:-5000}
work=${DEMO_DIR:-$root/.caasctl-demo}
repo=$root/caasctl-backups
. scripts/lib/etcd-cluster.sh

bash scripts/install-deps.sh
cargo build --release -q -p caasctl -p caasctl-testing
target=${CARGO_TARGET_DIR:-$root/target}
caasctl=$target/release/caasctl

rm -rf "$work"
mkdir -p "$work"
trap etcd_cluster_stop EXIT

echo "== starting a 3-member etcd 3.4 cluster with mutual TLS in $work"
etcd_cluster_start "$work" /usr/bin/etcd
tls=(--cacert "$etcd_pki/ca.crt" --cert "$etcd_pki/peer.crt" --key "$etcd_pki/peer.key")

echo "== loading $keys Kubernetes-shaped keys"
"$target/release/etcd-load" "$etcd_endpoints" "$keys" 1024 "$etcd_pki/ca.crt" "$etcd_pki/peer.crt" "$etcd_pki/peer.key"

echo "== caasctl etcd health"
"$caasctl" etcd health --endpoints "$etcd_endpoints" "${tls[@]}"

echo "== caasctl etcd backup --repo $repo"
# m0's directory plays the part of /etc/etcd, so its etcd.conf and certificates are archived too.
cp -r "$etcd_pki" "$work/m0/"
"$caasctl" etcd backup --endpoints "$etcd_endpoints" "${tls[@]}" --repo "$repo" --config-dir "$work/m0"

echo "== caasctl etcd backups verify --repo $repo latest"
"$caasctl" etcd backups verify --repo "$repo" latest
"$caasctl" etcd backups list --repo "$repo"
