# Shell functions that start a local 3-member etcd cluster with mutual TLS on free loopback ports.
# Sourced by demo.sh and the benchmarks. Every started PID is kept in the array `etcd_pids`, and
# `etcd_cluster_stop` stops them by PID.
#
# After `etcd_cluster_start DIR ETCD_BINARY`, these are set: `etcd_endpoints` (comma-separated client
# URLs), `etcd_pki` (ca.crt, server.crt/key, peer.crt/key), `etcd_names` and one etcd.conf per member
# at DIR/NAME/etcd.conf.

etcd_pids=()

# A free port below Linux's ephemeral range (32768-60999), so that no outgoing connection can
# take it while a member is stopped and restarted.
etcd_free_port() {
    python3 -c '
import random, socket
while True:
    port = random.randint(20000, 32700)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
'
}

etcd_make_pki() {
    local pki=$1
    mkdir -p "$pki"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj /CN=demo-etcd-ca \
        -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
    local name
    for name in server peer; do
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=demo-$name" \
            -keyout "$pki/$name.key" -out "$pki/$name.csr" 2>/dev/null
        openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 30 \
            -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n') \
            -out "$pki/$name.crt" 2>/dev/null
    done
    chmod 600 "$pki"/*.key
}

# etcd_write_conf DIR NAME CLIENT_PORT PEER_PORT INITIAL_CLUSTER STATE
etcd_write_conf() {
    local dir=$1 name=$2 client=$3 peer=$4 initial=$5 state=$6
    mkdir -p "$dir/$name"
    cat > "$dir/$name/etcd.conf" <<CONF
# etcd.conf of member $name, in the shape openshift-ansible writes to /etc/etcd/etcd.conf
ETCD_NAME=$name
ETCD_DATA_DIR=$dir/$name/data
ETCD_LISTEN_CLIENT_URLS=https://127.0.0.1:$client
ETCD_ADVERTISE_CLIENT_URLS=https://127.0.0.1:$client
ETCD_LISTEN_PEER_URLS=https://127.0.0.1:$peer
ETCD_INITIAL_ADVERTISE_PEER_URLS=https://127.0.0.1:$peer
ETCD_INITIAL_CLUSTER=$initial
ETCD_INITIAL_CLUSTER_TOKEN=demo-cluster
ETCD_INITIAL_CLUSTER_STATE=$state
ETCD_QUOTA_BACKEND_BYTES=8589934592
ETCD_TRUSTED_CA_FILE=$etcd_pki/ca.crt
ETCD_CERT_FILE=$etcd_pki/server.crt
ETCD_KEY_FILE=$etcd_pki/server.key
ETCD_CLIENT_CERT_AUTH=true
ETCD_PEER_TRUSTED_CA_FILE=$etcd_pki/ca.crt
ETCD_PEER_CERT_FILE=$etcd_pki/server.crt
ETCD_PEER_KEY_FILE=$etcd_pki/server.key
ETCD_PEER_CLIENT_CERT_AUTH=true
CONF
}

# etcd_run_member DIR NAME ETCD_BINARY: starts one member from its etcd.conf.
etcd_run_member() {
    local dir=$1 name=$2 binary=$3
    ( set -a; . "$dir/$name/etcd.conf"; exec "$binary" ) >> "$dir/$name/etcd.log" 2>&1 &
    etcd_pids+=($!)
}

etcdctl_tls() {
    ETCDCTL_API=3 "${ETCDCTL:-etcdctl}" --endpoints="$etcd_endpoints" --cacert="$etcd_pki/ca.crt" \
        --cert="$etcd_pki/peer.crt" --key="$etcd_pki/peer.key" "$@"
}

etcd_wait_healthy() {
    local _
    for _ in $(seq 1 150); do
        etcdctl_tls endpoint health >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "etcd did not become healthy; logs under the cluster directory" >&2
    return 1
}

# etcd_cluster_start DIR ETCD_BINARY
etcd_cluster_start() {
    local dir=$1 binary=$2 name initial=""
    etcd_pki=$dir/pki
    etcd_make_pki "$etcd_pki"
    etcd_names=(m0 m1 m2)
    declare -gA etcd_client_port etcd_peer_port
    for name in "${etcd_names[@]}"; do
        etcd_client_port[$name]=$(etcd_free_port)
        etcd_peer_port[$name]=$(etcd_free_port)
        initial+="${initial:+,}$name=https://127.0.0.1:${etcd_peer_port[$name]}"
    done
    etcd_initial_cluster=$initial
    etcd_endpoints=""
    for name in "${etcd_names[@]}"; do
        etcd_write_conf "$dir" "$name" "${etcd_client_port[$name]}" "${etcd_peer_port[$name]}" "$initial" new
        etcd_run_member "$dir" "$name" "$binary"
        etcd_endpoints+="${etcd_endpoints:+,}https://127.0.0.1:${etcd_client_port[$name]}"
    done
    etcd_wait_healthy
}

etcd_cluster_stop() {
    local pid
    for pid in "${etcd_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${etcd_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    etcd_pids=()
}
