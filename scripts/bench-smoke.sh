#!/usr/bin/env bash
# CI smoke test of the main command: `ferry bench --quick` must finish, verify every
# method's bytes (it exits non-zero on any mismatch), and write JSON of the documented
# shape in which every method appears.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/bench-smoke
mkdir -p "$out"
start=$(date +%s)
cargo run --release -q -p ferry -- bench --quick --json "$out/quick.json" --plot "$out/quick.svg" | tee "$out/quick.txt"
echo "bench --quick took $(( $(date +%s) - start ))s (including the release build)" >&2
python3 - "$out/quick.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["version"] == 1, doc.get("version")
assert isinstance(doc["machine"], dict)
rows = doc["results"]
keys = {"scenario", "method", "size", "connections", "runs", "bytes_per_sec",
        "bytes_per_sec_min", "bytes_per_sec_max", "requests_per_sec", "p50_us", "p90_us",
        "p99_us", "p999_us", "max_us", "cpu_sec_per_gb"}
for r in rows:
    assert set(r) == keys, sorted(set(r) ^ keys)
    assert r["bytes_per_sec"] > 0, r
    assert (r["requests_per_sec"] is None) == (r["scenario"] != "request-response"), r
methods = {r["method"] for r in rows}
want = {"read-write", "std-copy", "sendfile", "splice", "engine-uring", "engine-blocking", "engine-local"}
assert methods == want, f"methods that produced results: {sorted(methods)}; missing {sorted(want - methods)}"
scen = {r["scenario"] for r in rows}
assert scen == {"file-to-socket", "socket-to-socket", "request-response", "file-to-file"}, scen
print(f"bench smoke: {len(rows)} result rows, all methods verified, JSON ok")
PY
