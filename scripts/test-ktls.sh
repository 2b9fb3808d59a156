#!/usr/bin/env bash
# The kernel-TLS tests in a kernel that has TLS: this machine's kernel may lack the
# `tls` module (then those tests skip themselves, saying so), so the HTTPS and TLS-proxy
# test binaries run again under Debian's 6.12 kernel with `tls` loaded, in a throwaway VM
# (in-kernel-vm: qemu, this filesystem shared). Every test of the binary runs there, on
# the io_uring backend and on the epoll fallback. Budget: a few minutes (KVM), 10 at most.
#
#   scripts/test-ktls.sh            (after `cargo test`, which builds the binaries)
#   IN_KERNEL_VM=/path/to/in-kernel-vm scripts/test-ktls.sh
set -euo pipefail
cd "$(dirname "$0")/.."
vm="${IN_KERNEL_VM:-}"
if [ -z "$vm" ]; then
    for c in ../shared/tools/in-kernel-vm /work/shared/tools/in-kernel-vm; do
        [ -x "$c" ] && vm="$c" && break
    done
fi
if [ -z "$vm" ] || [ ! -x "$vm" ]; then
    echo "SKIPPED kernel-TLS VM pass: in-kernel-vm not found (set IN_KERNEL_VM)" >&2
    exit 0
fi
target="${CARGO_TARGET_DIR:-target}"
bins=$(cargo test -p ferry --test serve_tls --test proxy_tls --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] in ("serve_tls", "proxy_tls") and m.get("executable"):
        print(m["executable"])')
# Each binary in turn; rc is the first failure's.
run=""
for b in $bins; do
    run="$run \"$b\" --test-threads 2 --nocapture 2>&1 || rc=\$?;"
done
ferry="$(cd "$target/debug" && pwd)/ferry"
cargo build -p ferry
for backend in io_uring blocking; do
    echo "== serve_tls, proxy_tls under Linux 6.12 with kernel TLS (FERRY_BACKEND=$backend)" >&2
    vmrc=0
    out=$("$vm" --kernel debian-6.12 --modules tls --mem 2048 --timeout 300 -- \
        env CARGO_BIN_EXE_ferry="$ferry" FERRY_BACKEND="$backend" \
        sh -c "rc=0; $run echo rc=\$rc; grep -E 'Tls(Tx|Rx)Sw' /proc/net/tls_stat" \
        2>&1) || vmrc=$?
    if ! echo "$out" | grep -q '^rc='; then
        # The VM itself did not run (no qemu, no kernel package, no KVM and no time).
        echo "$out" | tail -20 >&2
        echo "SKIPPED kernel-TLS VM pass: the VM did not run the tests (exit $vmrc)" >&2
        exit 0
    fi
    echo "$out" | grep -E '^test |SKIPPED|panicked|^rc=|Tls(Tx|Rx)Sw' >&2
    if ! echo "$out" | grep -q '^rc=0'; then
        echo "$out" | tail -40 >&2
        echo "kernel-TLS VM pass failed ($backend)" >&2
        exit 1
    fi
    if echo "$out" | grep -q SKIPPED; then
        echo "kernel TLS did not come up in the VM ($backend)" >&2
        exit 1
    fi
done
