#!/usr/bin/env bash
# Installs the optional peers that `ferry bench` compares against and the serve/proxy
# tests talk to: nginx (nginx-light), wrk (load generator), HAProxy, curl.
# Idempotent. Where it cannot install (not root, no apt-get, no network), it says what is
# missing and exits 0: the benches then report "not run: <peer> not installed" and the
# tests that need a peer say so out loud.
set -uo pipefail

want=()
command -v nginx   >/dev/null 2>&1 || want+=(nginx-light)
command -v wrk     >/dev/null 2>&1 || want+=(wrk)
command -v haproxy >/dev/null 2>&1 || want+=(haproxy)
command -v curl    >/dev/null 2>&1 || want+=(curl)
if ((${#want[@]} == 0)); then
    echo "install-peers: nginx, wrk, haproxy and curl are present" >&2
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-peers: cannot install ${want[*]} (needs root and apt-get); benches will report them as not run" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${want[@]}"; } >&2; then
    echo "install-peers: apt-get could not install ${want[*]}; benches will report them as not run" >&2
    exit 0
fi
# Debian starts the packaged services; ferry runs its own instances with its own configs.
for svc in nginx haproxy; do
    if command -v systemctl >/dev/null 2>&1; then systemctl stop "$svc" >/dev/null 2>&1 || true; fi
    if [ -x "/etc/init.d/$svc" ]; then "/etc/init.d/$svc" stop >/dev/null 2>&1 || true; fi
done
echo "install-peers: installed ${want[*]}" >&2
