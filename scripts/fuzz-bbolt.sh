#!/usr/bin/env bash
# Fuzzes the bbolt reader for a bounded time (FUZZ_SECONDS, default 90) with cargo-fuzz, seeded
# with the real etcd snapshots in crates/bbolt/tests/fixtures. Any panic or sanitizer report fails
# the run and leaves the crashing input under crates/bbolt/fuzz/artifacts/.
# Needs the nightly toolchain (cargo-fuzz builds with -Zsanitizer); cargo-fuzz is installed from
# crates.io when missing.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
seconds=${FUZZ_SECONDS:-90}

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    if [ "${CI:-}" = "true" ]; then
        echo "fuzz-bbolt: the nightly toolchain is missing; CI=true requires it" >&2
        exit 1
    fi
    echo "fuzz-bbolt: skipping, the nightly toolchain is missing" >&2
    exit 0
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz@0.13.2
fi

corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp "$here"/crates/bbolt/tests/fixtures/*.db "$corpus"/

cd "$here/crates/bbolt"
cargo +nightly fuzz run read_db "$corpus" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=262144 -print_final_stats=1
echo "fuzz-bbolt: no crash in ${seconds}s"
