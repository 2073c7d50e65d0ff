#!/usr/bin/env bash
# Runs the whole test suite: unit tests and the integration tests that start real etcd clusters,
# registries, sshd and ansible on loopback. Run scripts/install-deps.sh once first.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUST_BACKTRACE=1
cargo test --workspace --locked -- --test-threads="${CAASCTL_TEST_THREADS:-2}"
