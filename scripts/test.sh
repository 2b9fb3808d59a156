#!/usr/bin/env bash
# The project's test command (README.md): format, lints, the whole suite, then the
# suite again with the portable fallbacks forced (compat's read/write emulation and
# the engine's blocking backend).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
# Optional peers of `ferry bench` (nginx, wrk, HAProxy): never fatal when absent.
scripts/install-peers.sh

step() { printf '\n== %s\n' "$*" >&2; }

step "format"
cargo fmt --all -- --check
step "module cycles"
scripts/module-cycles.py
step "clippy"
cargo clippy --workspace --all-targets -- -D warnings
step "tests (default: linux syscalls, io_uring backend)"
cargo test --workspace
if [ -d crates/engine ]; then
    # The body cache reads files only from memory (RWF_NOWAIT, which tmpfs refuses):
    # its tests again with their files on tmpfs.
    if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ]; then
        step "engine body-cache and file tests with TMPDIR on tmpfs (/dev/shm)"
        TMPDIR=/dev/shm cargo test -p ferry-engine --test local_body_cache --test local_file_splices --test transfers
    else
        echo "tmpfs pass skipped: /dev/shm is not a tmpfs here" >&2
    fi
    step "tests with FERRY_BACKEND=blocking"
    FERRY_BACKEND=blocking cargo test --workspace
fi
if [ -d crates/cli ]; then
    step "HTTPS tests under a kernel with kernel TLS (VM, both backends)"
    scripts/test-ktls.sh
fi
step "clippy + tests with --cfg ferry_force_fallback (portable fallback forced)"
export RUSTFLAGS="--cfg ferry_force_fallback" RUSTDOCFLAGS="--cfg ferry_force_fallback"
# A separate target dir (different cfg), under the caller's CARGO_TARGET_DIR if set.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/fallback"
cargo clippy --workspace --all-targets -- -D warnings
FERRY_BACKEND=blocking cargo test --workspace
# The fallback build is ~1 GB and used only here: removed unless asked to keep it.
[ "${FERRY_KEEP_FALLBACK_TARGET:-0}" = 1 ] || rm -rf "$CARGO_TARGET_DIR"
unset RUSTFLAGS RUSTDOCFLAGS
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR%/fallback}"
if [ -d crates/cli ]; then
    step "ferry bench --quick (smoke: every method's bytes verified, JSON parses)"
    scripts/bench-smoke.sh
fi
step "all green"
