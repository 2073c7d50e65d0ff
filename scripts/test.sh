#!/usr/bin/env bash
# Runs the whole test suite: unit tests and the integration tests that start real etcd clusters,
# registries, sshd and ansible on loopback. Installs those components first (a quick check when
# they are already there). CAASCTL_TEST_THREADS sets how many tests run at once (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export RUST_BACKTRACE=1
cargo test --workspace --locked --no-fail-fast -- --test-threads="${CAASCTL_TEST_THREADS:-2}"
