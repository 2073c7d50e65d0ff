#!/usr/bin/env bash
# Runs the whole test suite: unit tests and the integration tests that start real etcd clusters,
# registries, sshd and ansible on loopback. Installs those components first (a quick check when
# they are already there). CAASCTL_TEST_THREADS sets how many tests run at once (default 2),
# CAASCTL_TEST_TIMEOUT the limit of the whole run (default 50m).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export RUST_BACKTRACE=1
# A hung test must fail the run with a message, not hold a CI machine until it is shut down.
# The limit covers the build too (about 10 minutes from nothing on 2 cores); the tests take about 8.
limit=${CAASCTL_TEST_TIMEOUT:-50m}
status=0
timeout --kill-after=60s "$limit" cargo test --workspace --locked --no-fail-fast -- --test-threads="${CAASCTL_TEST_THREADS:-2}" || status=$?
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
    echo "test.sh: the test run did not finish within $limit (CAASCTL_TEST_TIMEOUT) and was stopped" >&2
fi
exit "$status"
