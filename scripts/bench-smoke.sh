#!/usr/bin/env bash
# CI smoke test of the main command: `ferry bench --quick` must finish, verify every
# method's bytes (it exits non-zero on any mismatch), and write JSON of the documented
# shape in which every method appears.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/bench-smoke
mkdir -p "$out"
start=$(date +%s)
# Output paths are checked before any work, naming the flag and the path.
cargo build --release -q -p ferry
bin="${CARGO_TARGET_DIR:-target}/release/ferry"
if err=$("$bin" bench --quick --json /nonexistent-dir/x.json 2>&1); then
    echo "bench accepted an unwritable --json path" >&2; exit 1
fi
case "$err" in *"--json /nonexistent-dir/x.json"*) ;; *) echo "bad error: $err" >&2; exit 1 ;; esac
"$bin" bench --quick --json "$out/quick.json" --plot "$out/quick.svg" | tee "$out/quick.txt"
echo "bench --quick took $(( $(date +%s) - start ))s (including the release build)" >&2
python3 - "$out/quick.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["version"] == 1, doc.get("version")
assert isinstance(doc["machine"], dict)
rows = doc["results"]
keys = {"scenario", "method", "size", "connections", "runs", "bytes_per_sec",
        "bytes_per_sec_min", "bytes_per_sec_max", "requests_per_sec", "p50_us", "p90_us",
        "p99_us", "p999_us", "max_us", "cpu_sec_per_gb",
        # added: per-run samples, their unit, spread, ratio and verdict against the baseline
        "samples", "sample_unit", "spread", "ratio_to_baseline", "verdict",
        # added with http-static: CPU per request and CPU against the baseline
        "cpu_us_per_request", "cpu_ratio_to_baseline",
        # added with the congestion-control finding: every CPU's busy time (peer scenarios)
        "machine_cpu_us_per_request", "machine_cpu_sec_per_gb", "machine_cpu_ratio_to_baseline"}
for r in rows:
    assert set(r) == keys, sorted(set(r) ^ keys)
    assert len(r["samples"]) == r["runs"], r
    assert r["verdict"] in ("win", "tie", "loss", "baseline"), r
    assert r["bytes_per_sec"] > 0, r
    per_request = r["scenario"] in ("request-response", "http-static", "https-static", "https-handshakes", "tls-proxy")
    if r["scenario"] == "tcp-proxy":
        per_request = r["connections"] > 1
    assert (r["requests_per_sec"] is None) != per_request, r
    assert (r["cpu_us_per_request"] is None) != per_request, r
    peer = r["scenario"] in ("http-static", "https-static", "https-handshakes", "tcp-proxy", "tls-proxy")
    assert (r["machine_cpu_us_per_request"] is not None) == (peer and per_request), r
    assert (r["machine_cpu_sec_per_gb"] is not None) == (peer and not per_request), r
# Light load (paced, 1000 req/s on one connection): a row for every method of every
# one-connection request-response case up to 64 KiB.
pkeys = {"scenario", "size", "connections", "rate_per_sec", "method", "cpu_us_per_request",
         "cpu_us_per_request_samples", "achieved_per_sec", "p50_us", "p99_us", "max_us",
         "cpu_ratio_to_baseline", "verdict"}
paced = doc["paced"]
for p in paced:
    assert set(p) == pkeys, sorted(set(p) ^ pkeys)
    assert p["connections"] == 1 and p["size"] <= 65536, p
    assert 0 < p["achieved_per_sec"] <= 1.1 * p["rate_per_sec"], p
    assert p["cpu_us_per_request"] > 0 and p["p50_us"] > 0, p
    assert p["verdict"] in ("win", "tie", "loss", "baseline"), p
light = {(r["method"], r["size"]) for r in rows if r["scenario"] == "request-response"
         and r["connections"] == 1 and r["size"] <= 65536}
assert light and {(p["method"], p["size"]) for p in paced
                  if p["scenario"] == "request-response"} == light, (light, paced)
methods = {r["method"] for r in rows}
want = {"read-write", "std-copy", "sendfile", "splice", "engine-uring", "engine-blocking", "engine-local"}
scenarios = {"file-to-socket", "socket-to-socket", "request-response", "file-to-file"}
# http-static needs nginx and wrk (scripts/install-peers.sh); without them it must say
# "not run" with the reason, never fail.
peers = {p["program"]: p["path"] for p in doc["machine"]["peers"]}
if peers.get("nginx") and peers.get("wrk"):
    want |= {"nginx", "nginx-nopush-off", "ferry-serve", "nginx-tls", "ferry-serve-tls"}
    scenarios |= {"http-static", "https-static", "https-handshakes"}
else:
    assert any("http-static" in n and "not installed" in n for n in doc["machine"]["not_run"]), doc["machine"]["not_run"]
    print("bench smoke: nginx or wrk absent: http-static and https-static reported as not run")
# tcp-proxy: ferry-proxy always runs its bulk case; HAProxy needs haproxy, the
# many-connection case needs wrk.
scenarios |= {"tcp-proxy"}
want |= {"ferry-proxy"}
if peers.get("haproxy"):
    want |= {"haproxy", "haproxy-splice"}
else:
    assert any("tcp-proxy" in n and "not installed" in n for n in doc["machine"]["not_run"]), doc["machine"]["not_run"]
    print("bench smoke: haproxy absent: its tcp-proxy rows reported as not run")
# tls-proxy: every case runs under wrk (https) to the HTTP origin (nginx, else ferry
# serve); HAProxy's row needs haproxy too.
if peers.get("wrk"):
    scenarios |= {"tls-proxy"}
    want |= {"ferry-proxy-tls"} | ({"haproxy-tls"} if peers.get("haproxy") else set())
else:
    assert any("tls-proxy" in n and "not installed" in n for n in doc["machine"]["not_run"]), doc["machine"]["not_run"]
    print("bench smoke: wrk absent: tls-proxy reported as not run")
assert methods == want, f"methods that produced results: {sorted(methods)}; missing {sorted(want - methods)}"
scen = {r["scenario"] for r in rows}
assert scen == scenarios, scen
# connections: every server holds the idle clients (each answered twice, every byte
# checked) while wrk runs; it needs wrk, and each peer its program.
conn = doc["connections"]
ckeys = {"scenario", "method", "idle_connections", "active_connections", "active_size", "runs",
         "rss_bytes_per_idle", "rss_bytes_per_idle_min", "rss_bytes_per_idle_max",
         "rss_anon_held_mb", "rss_kept_after_kb", "rss_kept_after_kb_max",
         "cpu_us_per_request_alone", "cpu_us_per_request_with_idle", "cpu_ratio_idle_to_alone",
         "requests_per_sec_with_idle", "p99_us_alone", "p99_us_with_idle",
         "per_idle_ratio_to_peer", "verdict"}
for r in conn:
    assert set(r) == ckeys, sorted(set(r) ^ ckeys)
    assert r["idle_connections"] >= 1 and r["runs"] >= 1, r
    assert r["rss_bytes_per_idle"] >= 0 and r["cpu_us_per_request_with_idle"] > 0, r
    assert r["requests_per_sec_with_idle"] > 0, r
    assert (r["verdict"] is None) == (r["method"] in ("nginx", "haproxy")), r
if peers.get("wrk"):
    cwant = {"ferry-serve", "ferry-proxy"}
    cwant |= {"nginx"} if peers.get("nginx") else set()
    cwant |= {"haproxy"} if peers.get("haproxy") else set()
    assert {r["method"] for r in conn} == cwant, conn
else:
    assert conn == [], conn
    print("bench smoke: wrk absent: connections reported as not run")
assert "placement" in doc["machine"] and "peers" in doc["machine"], doc["machine"]
print(f"bench smoke: {len(rows)} result rows, all methods verified, JSON ok")
PY

# The latency study (--latency), a slice of it: each scenario's baseline and ferry, one
# run a point, 4 KiB, 8 connections. Every point has the floor and each subject at the
# three rates; the histograms decode as HdrHistogram V2 (compressed) with the counts
# the percentiles were taken from.
start=$(date +%s)
methods=(--method sendfile --method engine-local --method nginx --method ferry-serve
         --method haproxy --method ferry-proxy)
"$bin" bench --latency --quick --runs 1 --size 4K --connections 8 "${methods[@]}" \
    --json "$out/latency.json" --plot "$out/latency.svg" | tee "$out/latency.txt"
echo "bench --latency --quick slice took $(( $(date +%s) - start ))s" >&2
grep -q "<svg" "$out/latency.svg"
python3 - "$out/latency.json" <<'PY'
import base64, json, struct, sys, zlib
doc = json.load(open(sys.argv[1]))
assert doc["version"] == 1 and isinstance(doc["machine"], dict)
lat = doc["latency"]
peers = {p["program"]: p["path"] for p in doc["machine"]["peers"]}
want = {"request-response": {"floor", "sendfile", "engine-local"}}
if peers.get("nginx"):
    want["http-static"] = {"floor", "nginx", "ferry-serve"}
else:
    print("latency smoke: nginx absent: http-static not measured")
if peers.get("haproxy") and peers.get("nginx"):
    want["tcp-proxy"] = {"floor", "haproxy", "ferry-proxy"}
else:
    print("latency smoke: haproxy or nginx absent: tcp-proxy not measured")

def counts(text):
    """Total count of an HdrHistogram V2 compressed encoding (base64)."""
    raw = base64.b64decode(text)
    cookie, length = struct.unpack(">iI", raw[:8])
    assert cookie & 0xffffffff == 0x1c849314, hex(cookie)
    inner = zlib.decompress(raw[8:8 + length])
    assert struct.unpack(">I", inner[:4])[0] == 0x1c849313
    payload = struct.unpack(">I", inner[4:8])[0]
    body, i, total = inner[40:40 + payload], 0, 0
    while i < len(body):  # ZigZag LEB128; negative = a run of empty buckets
        v, shift = 0, 0
        while True:
            b = body[i]; i += 1
            v |= (b & 0x7f) << shift; shift += 7
            if b < 0x80:
                break
        v = (v >> 1) ^ -(v & 1)
        total += max(v, 0)
    return total

seen = {}
for p in lat["points"]:
    seen.setdefault(p["scenario"], {}).setdefault(p["subject"], set()).add(p["fraction_of_peak"])
    assert p["errors"] == 0, p["runs"][0]["first_error"]
    assert p["achieved_per_sec"] > 0 and p["offered_per_sec"] > 0, p
    c = p["corrected"]
    assert 0 < c["p50_us"] <= c["p99_us"] <= c["p999_us"] <= c["max_us"], c
    assert counts(p["histogram_corrected"]) == c["count"] > 0, p["subject"]
    for r in p["runs"]:
        assert counts(r["histogram_corrected"]) == r["corrected"]["count"] == r["requests"]
        assert counts(r["histogram_from_send"]) == r["requests"]
    if p["subject"] == p["rates_from"]:
        assert p["verdict_p99"] == "baseline", p
for s, subjects in want.items():
    assert set(seen.get(s, {})) == subjects, (s, seen.get(s))
    for subj, fr in seen[s].items():
        assert sorted(fr) == [0.5, 0.8, 0.95], (s, subj, fr)
peaks = {(k["scenario"], k["method"]) for k in lat["peaks"] if k["baseline"]}
assert {s for s, _ in peaks} == set(want), peaks
print(f"latency smoke: {len(lat['points'])} points, histograms decode, JSON ok")
PY
