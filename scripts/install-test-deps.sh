#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain. Idempotent.
#  - setpriv (util-linux): the pipe-budget test re-runs itself as uid 65534.
#  - curl: `ferry serve` is tested against a real HTTP client too.
#  - ss (iproute2): the proxy's --congestion test reads its sockets' algorithm.
#  - rustfmt, clippy: the format and lint checks.
set -euo pipefail

need_apt=()
command -v setpriv >/dev/null 2>&1 || need_apt+=(util-linux)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v ss >/dev/null 2>&1 || need_apt+=(iproute2)
command -v strace >/dev/null 2>&1 || need_apt+=(strace) # the kernel-TLS tests: what moved the bytes
if ((${#need_apt[@]})); then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
    else
        echo "install-test-deps: please install: ${need_apt[*]}" >&2
        exit 1
    fi
fi
if command -v rustup >/dev/null 2>&1; then
    rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi
