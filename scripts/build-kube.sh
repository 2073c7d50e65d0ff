#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler and kubemark from Debian's
# `kubernetes` source package (1.20.2) for the control-plane test harness in crates/testing.
# No binary package ships these servers. The source comes through a private apt sources list, so
# the machine's own apt configuration is never changed.
#
# Idempotent: when the four binaries already sit in the cache
# ($CAASCTL_TOOLS_DIR, default ~/.cache/caasctl-tools, then kube-1.20.2/bin) the script exits at once.
# The Go build runs at the lowest CPU priority (nice -n 19). Set CAASCTL_KUBE_BUILD_JOBS=1 on a
# machine shared with other builds: the make step then took 1180 s on a busy 2-core machine
# (Debian 12, Go 1.19). By default it uses every core.
set -euo pipefail

version=1.20.2
tools=${CAASCTL_TOOLS_DIR:-$HOME/.cache/caasctl-tools}
dest="$tools/kube-$version"
bins=(kube-apiserver kube-controller-manager kube-scheduler kubemark)

have_all() {
    local b
    for b in "${bins[@]}"; do
        [ -x "$dest/bin/$b" ] || return 1
    done
}

if have_all; then
    echo "kubernetes $version binaries in $dest/bin"
    exit 0
fi

mkdir -p "$dest"
# Two concurrent runs (two test scripts, say) must not build into the same tree.
exec 9>"$dest/.lock"
flock 9
if have_all; then
    echo "kubernetes $version binaries in $dest/bin"
    exit 0
fi

need_apt=()
for pkg in golang-go rsync jq dpkg-dev golang-github-modern-go-reflect2-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -q
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${need_apt[@]}"
fi

work="$dest/build"
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/src"

# Private apt state: only this deb-src line, with its own lists and caches. Dir::Etc::SourceParts points
# at /dev/null so the machine's sources.list.d entries are not read either.
cat >"$work/apt/sources.list" <<'EOF'
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
EOF
apt_private=(
    -o "Dir::Etc::SourceList=$work/apt/sources.list"
    -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$work/apt/lists"
    -o "Dir::Cache=$work/apt/cache"
    -o Dir::Cache::pkgcache=
    -o Dir::Cache::srcpkgcache=
)

tree=$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
if [ -z "$tree" ]; then
    apt-get "${apt_private[@]}" update -q
    (cd "$work/src" && apt-get "${apt_private[@]}" source --download-only kubernetes)
    dsc=$(find "$work/src" -maxdepth 1 -name 'kubernetes_*.dsc' | head -n1)
    [ -n "$dsc" ] || { echo "build-kube: no kubernetes .dsc downloaded into $work/src" >&2; exit 1; }
    (cd "$work/src" && dpkg-source --no-check -x "$(basename "$dsc")")
    tree=$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
fi
echo "build-kube: source tree $tree"

# Fix 1: vendored reflect2 v1.0.1 crashes under Go 1.18 and later ("fatal error: fault" while
# iterating maps), so Debian's packaged 1.0.2 sources replace it.
reflect2_src=/usr/share/gocode/src/github.com/modern-go/reflect2
reflect2_dst="$tree/vendor/github.com/modern-go/reflect2"
if ! cmp -s "$reflect2_src/reflect2.go" "$reflect2_dst/reflect2.go"; then
    rm -rf "$reflect2_dst"
    mkdir -p "$reflect2_dst"
    cp -r "$reflect2_src"/. "$reflect2_dst"/
fi

# Fix 2: GOPATH mode, because Go 1.19 rejects this tree's go.mod in module mode.
export GO111MODULE=off
jobs=${CAASCTL_KUBE_BUILD_JOBS:-$(nproc)}
export GOFLAGS=-p=$jobs
export GOMAXPROCS=$jobs
export GOCACHE="$work/gocache"
export GOTOOLCHAIN=local
unset GOPATH GOBIN

out="$tree/_output/bin"
built=1
for b in "${bins[@]}"; do
    [ -x "$out/$b" ] || built=0
done
# A tree that already contains the four binaries (an earlier run stopped after make) is not rebuilt.
if [ "$built" = 0 ]; then
    start=$(date +%s)
    (cd "$tree" && nice -n 19 make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubemark")
    end=$(date +%s)
    echo "build-kube: make took $((end - start)) s"
fi
for b in "${bins[@]}"; do
    [ -x "$out/$b" ] || { echo "build-kube: $out/$b missing after make" >&2; exit 1; }
done

# Copy into a fresh directory and rename it into place, so a half-copied cache never looks complete.
rm -rf "$dest/bin.tmp"
mkdir -p "$dest/bin.tmp"
for b in "${bins[@]}"; do
    cp "$out/$b" "$dest/bin.tmp/$b"
done
rm -rf "$dest/bin"
mv "$dest/bin.tmp" "$dest/bin"

# The tree and Go build cache take about 3.5 GB. Set CAASCTL_KEEP_KUBE_BUILD=1 to keep them.
if [ "${CAASCTL_KEEP_KUBE_BUILD:-0}" != 1 ]; then
    rm -rf "$work"
fi
"$dest/bin/kube-apiserver" --version
echo "kubernetes $version binaries in $dest/bin"
