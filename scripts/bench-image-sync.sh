#!/usr/bin/env bash
# Benchmark of registry-to-registry mirroring: `skopeo sync --all` (Debian skopeo) against
# `caasctl image sync --from-file`, on the same set of images, in one run.
#
# A source registry (Debian docker-registry) gets IMAGES images that share two base layers
# (BASE_MB each) and have one own layer (OWN_MB) each. Every measured first sync goes into a fresh,
# empty destination registry; the two tools alternate which goes first in each round. Then it
# measures a sync with nothing to copy (the destination already has every image).
#
# Usage: scripts/bench-image-sync.sh            (ROUNDS=3 IMAGES=20 BASE_MB=50 OWN_MB=8 JOBS=4)
# CAASCTL=path/to/caasctl picks the binary (default: the newer of target/release and target/debug).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$here/target}
rounds=${ROUNDS:-3}
images=${IMAGES:-20}
base_mb=${BASE_MB:-50}
own_mb=${OWN_MB:-8}
jobs=${JOBS:-4}
caasctl=${CAASCTL:-}
if [ -z "$caasctl" ]; then
    # The newer of the release and debug builds, so a stale build is not measured.
    caasctl=$(ls -t "$target_dir/release/caasctl" "$target_dir/debug/caasctl" 2>/dev/null | head -n1)
fi
for tool in /usr/bin/docker-registry /usr/bin/skopeo python3 "$caasctl"; do
    command -v "$tool" >/dev/null || { echo "missing $tool (run scripts/install-deps.sh and cargo build -p caasctl)" >&2; exit 2; }
done

"$caasctl" image sync --help >/dev/null 2>&1 || { echo "$caasctl has no image sync command; rebuild it with cargo build -p caasctl" >&2; exit 2; }

work=$(mktemp -d /tmp/caasctl-bench-image.XXXXXX)
# Registries are started inside $(...) subshells, so their PIDs are kept in files, not variables.
cleanup() {
    for pidfile in "$work"/*/pid; do
        [ -e "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Starts a registry with its storage under $work/NAME and prints HOST:PORT.
start_registry() {
    local name=$1 port dir
    port=$(free_port)
    dir=$work/$name
    mkdir -p "$dir/storage"
    cat > "$dir/config.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$port
YAML
    /usr/bin/docker-registry serve "$dir/config.yml" > "$dir/log" 2>&1 &
    echo "$!" > "$dir/pid"
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && { echo "127.0.0.1:$port"; return; }
        sleep 0.1
    done
    echo "registry $name did not start" >&2
    exit 1
}

stop_registry() {
    local name=$1
    kill "$(cat "$work/$name/pid")" 2>/dev/null || true
    rm -f "$work/$name/pid"
    rm -rf "$work/$name/storage"
}

src=$(start_registry source)
echo "pushing $images images (2 shared base layers of $base_mb MiB, one own layer of $own_mb MiB each) to $src"
python3 - "$src" "$images" "$base_mb" "$own_mb" <<'PY'
import gzip, hashlib, http.client, json, os, sys
host, count, base_mb, own_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def request(method, path, body=b"", headers=None):
    conn = http.client.HTTPConnection(host)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    response.read()
    conn.close()
    if response.status >= 300:
        sys.exit(f"{method} {path}: HTTP {response.status}")
    return response

def push_blob(repo, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    location = request("POST", f"/v2/{repo}/blobs/uploads/").getheader("Location")
    path = location.split(host, 1)[-1]
    separator = "&" if "?" in path else "?"
    request("PUT", f"{path}{separator}digest={digest}", data, {"Content-Type": "application/octet-stream"})
    return digest, len(data)

# Layers are real gzip streams of random data, so they keep about their stated size. A tool may
# inspect layer compression, and diff_ids are the digests of the uncompressed data, as in real images.
def layer():
    raw = os.urandom(own_mb << 20)
    return gzip.compress(raw, compresslevel=1), "sha256:" + hashlib.sha256(raw).hexdigest()

def base_layer():
    raw = os.urandom(base_mb << 20)
    return gzip.compress(raw, compresslevel=1), "sha256:" + hashlib.sha256(raw).hexdigest()

bases = [base_layer() for _ in range(2)]
for index in range(1, count + 1):
    repo = f"99cloud/comp{index:02d}"
    blobs = bases + [layer()]
    layers = [push_blob(repo, data) for data, _ in blobs]
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff for _, diff in blobs]}}).encode()
    config_digest, config_size = push_blob(repo, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": d, "size": s} for d, s in layers],
    }, indent=3).encode()
    request("PUT", f"/v2/{repo}/manifests/v1", manifest, {"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"})
PY
du -sh "$work/source/storage" | awk '{print "source registry storage: " $1}'

printf '%s:\n  tls-verify: false\n  images:\n' "$src" > "$work/skopeo.yaml"
: > "$work/list.txt"
for index in $(seq -f '%02g' 1 "$images"); do
    printf '    99cloud/comp%s: ["v1"]\n' "$index" >> "$work/skopeo.yaml"
done

now() { date +%s.%N; }

run_skopeo() {
    local dst=$1 start
    start=$(now)
    skopeo sync --all --src yaml --dest docker --src-tls-verify=false --dest-tls-verify=false "$work/skopeo.yaml" "$dst/99cloud" >/dev/null 2>"$work/skopeo.err" \
        || { cat "$work/skopeo.err" >&2; exit 1; }
    awk -v end="$(now)" -v start="$start" 'BEGIN { printf "%.3f\n", end - start }'
}

run_caasctl() {
    local dst=$1 start
    : > "$work/list.txt"
    for index in $(seq -f '%02g' 1 "$images"); do
        echo "$src/99cloud/comp$index:v1 $dst/99cloud/comp$index:v1" >> "$work/list.txt"
    done
    start=$(now)
    "$caasctl" --no-progress image sync --from-file "$work/list.txt" --insecure "$src" --insecure "$dst" --jobs "$jobs" >/dev/null 2>"$work/caasctl.err" \
        || { cat "$work/caasctl.err" >&2; exit 1; }
    awk -v end="$(now)" -v start="$start" 'BEGIN { printf "%.3f\n", end - start }'
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

: > "$work/skopeo.times"
: > "$work/caasctl.times"
for round in $(seq "$rounds"); do
    if [ $((round % 2)) -eq 1 ]; then order="skopeo caasctl"; else order="caasctl skopeo"; fi
    for tool in $order; do
        dst=$(start_registry "dst-$tool-$round")
        seconds=$("run_$tool" "$dst")
        echo "$seconds" >> "$work/$tool.times"
        echo "round $round: $tool first sync ${seconds} s"
        stop_registry "dst-$tool-$round"
    done
done

skopeo_median=$(median < "$work/skopeo.times")
caasctl_median=$(median < "$work/caasctl.times")
echo "first sync, median of $rounds: skopeo sync --all ${skopeo_median} s, caasctl image sync ${caasctl_median} s, ratio $(awk -v a="$skopeo_median" -v b="$caasctl_median" 'BEGIN { printf "%.2f", a / b }')"

# Each tool first fills its own destination, then syncs into it again with nothing to copy.
# Separate destinations keep one tool's tags from being the other's starting point.
noop_caasctl=$(start_registry noop-caasctl)
noop_skopeo=$(start_registry noop-skopeo)
run_caasctl "$noop_caasctl" >/dev/null
run_skopeo "$noop_skopeo" >/dev/null
: > "$work/noop.times"
: > "$work/noop-skopeo.times"
for _ in 1 2 3; do
    run_caasctl "$noop_caasctl" >> "$work/noop.times"
    run_skopeo "$noop_skopeo" >> "$work/noop-skopeo.times"
done
echo "sync with nothing to copy ($images images), median of 3: caasctl $(median < "$work/noop.times") s, skopeo $(median < "$work/noop-skopeo.times") s"
