#!/usr/bin/env bash
# The main job on real input: installs what caasctl needs, starts a local 3-member etcd cluster with
# mutual TLS and sample Kubernetes-shaped data on loopback ports, backs it up with caasctl into
# ./caasctl-backups and verifies the backup. The cluster is stopped by PID when the script ends.
# Environment: DEMO_KEYS (sample keys, default 2000), DEMO_DIR (work directory, default .caasctl-demo).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
keys=${DEMO_KEYS:-2000}
work=${DEMO_DIR:-$root/.caasctl-demo}
repo=$root/caasctl-backups

bash scripts/install-deps.sh
cargo build --release -q -p caasctl
caasctl=$root/target/release/caasctl

rm -rf "$work"
mkdir -p "$work/pki"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

echo "== certificates (CA, server, client) in $work/pki"
pki=$work/pki
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj /CN=demo-etcd-ca \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
for name in server peer; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=demo-$name" \
        -keyout "$pki/$name.key" -out "$pki/$name.csr" 2>/dev/null
    openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 30 \
        -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n') \
        -out "$pki/$name.crt" 2>/dev/null
done
chmod 600 "$pki"/*.key

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
names=(m0 m1 m2)
declare -A client peer
initial=""
for n in "${names[@]}"; do
    client[$n]=$(free_port); peer[$n]=$(free_port)
    initial+="${initial:+,}$n=https://127.0.0.1:${peer[$n]}"
done

echo "== starting etcd 3.4 members ${names[*]}"
endpoints=""
for n in "${names[@]}"; do
    mkdir -p "$work/$n"
    cat > "$work/$n/etcd.conf" <<CONF
ETCD_NAME=$n
ETCD_DATA_DIR=$work/$n/data
ETCD_LISTEN_CLIENT_URLS=https://127.0.0.1:${client[$n]}
ETCD_ADVERTISE_CLIENT_URLS=https://127.0.0.1:${client[$n]}
ETCD_LISTEN_PEER_URLS=https://127.0.0.1:${peer[$n]}
ETCD_INITIAL_ADVERTISE_PEER_URLS=https://127.0.0.1:${peer[$n]}
ETCD_INITIAL_CLUSTER=$initial
ETCD_INITIAL_CLUSTER_TOKEN=demo-cluster
ETCD_INITIAL_CLUSTER_STATE=new
ETCD_TRUSTED_CA_FILE=$pki/ca.crt
ETCD_CERT_FILE=$pki/server.crt
ETCD_KEY_FILE=$pki/server.key
ETCD_CLIENT_CERT_AUTH=true
ETCD_PEER_TRUSTED_CA_FILE=$pki/ca.crt
ETCD_PEER_CERT_FILE=$pki/server.crt
ETCD_PEER_KEY_FILE=$pki/server.key
ETCD_PEER_CLIENT_CERT_AUTH=true
CONF
    cp -r "$pki" "$work/$n/"
    ( set -a; . "$work/$n/etcd.conf"; exec /usr/bin/etcd ) > "$work/$n/etcd.log" 2>&1 &
    pids+=($!)
    endpoints+="${endpoints:+,}https://127.0.0.1:${client[$n]}"
done

ctl() { ETCDCTL_API=3 etcdctl --endpoints="$endpoints" --cacert="$pki/ca.crt" --cert="$pki/peer.crt" --key="$pki/peer.key" "$@"; }
for _ in $(seq 1 100); do ctl endpoint health >/dev/null 2>&1 && break; sleep 0.2; done

echo "== loading $keys Kubernetes-shaped keys"
# etcdctl txn reads compares, success operations and failure operations, each block ended by an
# empty line; one transaction per 100 keys keeps the load fast without a client library.
python3 - "$keys" <<'PY' | while IFS= read -r -d '' chunk; do printf '%s' "$chunk" | ctl txn >/dev/null; done
import sys
n = int(sys.argv[1])
kinds = ["pods", "configmaps", "secrets", "deployments"]
for start in range(0, n, 100):
    puts = []
    for i in range(start, min(n, start + 100)):
        kind = kinds[i % len(kinds)]
        value = '{"kind":"%s","n":%d}' % (kind, i)
        puts.append("put /registry/%s/ns%d/obj-%06d '%s'" % (kind, i % 5, i, value))
    sys.stdout.write("\n" + "\n".join(puts) + "\n\n\n\0")
PY
ctl get /registry --prefix --keys-only | grep -c /registry

echo "== caasctl etcd health"
"$caasctl" etcd health --cacert "$pki/ca.crt" --cert "$pki/peer.crt" --key "$pki/peer.key" \
    --endpoints "$endpoints"

echo "== caasctl etcd backup --repo $repo"
"$caasctl" etcd backup --endpoints "$endpoints" --cacert "$pki/ca.crt" --cert "$pki/peer.crt" --key "$pki/peer.key" \
    --repo "$repo" --config-dir "$work/m0"

echo "== caasctl etcd backups verify --repo $repo latest"
"$caasctl" etcd backups verify --repo "$repo" latest
"$caasctl" etcd backups list --repo "$repo"
