#!/usr/bin/env bash
# Runs each cargo-fuzz target (fuzz/fuzz_targets/) for a bounded time:
# the request parsers (order and owner bodies, order ids, events on the
# topic) and the parsers of what the Redis scripts store. Needs the nightly
# toolchain and cargo-fuzz (cargo install cargo-fuzz --locked). Not part of
# the test command; a crash it finds is fixed and kept as a unit test.
#
#   scripts/fuzz.sh            60 s per target
#   FUZZ_SECS=600 scripts/fuzz.sh
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cargo +nightly fuzz --version >/dev/null 2>&1 || die "cargo-fuzz on the nightly toolchain is needed: cargo install cargo-fuzz --locked"
SECS="${FUZZ_SECS:-60}"
cd "$ROOT/fuzz"
for target in $(cargo +nightly fuzz list); do
  log "fuzz: $target for ${SECS}s"
  cargo +nightly fuzz run "$target" -- -max_total_time="$SECS" -rss_limit_mb=2048 2>&1 | tail -3
done
log "fuzz: no crash (inputs kept in fuzz/corpus/)"
