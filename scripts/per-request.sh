#!/usr/bin/env bash
# What one request costs at one connection, per thread of `ferry bench`'s
# request-response case (the server, the client), closed loop and at the light load
# of 1000 req/s: CPU time, context switches, wake-ups, syscalls by name, io_uring
# submissions/completions/poll arms/task work, each divided by the requests the client
# sent. Every event is counted (perf record -c 1 on tracepoints; CPU from
# sched_stat_runtime, inflated by the tracing itself: compare counts, and take CPU
# from the bench), over the whole bench run of METHOD.
# Needs perf (linux-perf) and root or kernel.perf_event_paranoid <= 1.
#
#   scripts/per-request.sh [METHOD] [SIZE]       e.g. engine-local 4K
#
# Used for docs/local.md, "What a request costs at one connection".
set -euo pipefail
method=${1:-engine-local}
size=${2:-4K}
ferry=${FERRY:-target/release/ferry}
command -v perf >/dev/null || { echo "per-request: perf is not installed (apt-get install linux-perf)" >&2; exit 1; }
tp=/sys/kernel/tracing/events
events=sched:sched_stat_runtime,sched:sched_switch,sched:sched_wakeup,irq_vectors:local_timer_entry
for s in io_uring_enter sendto sendmsg recvfrom recvmsg read write epoll_wait pread64 newfstatat sendfile64 splice; do
    [ -d $tp/syscalls/sys_enter_$s ] && events+=",syscalls:sys_enter_$s"
done
for e in io_uring_submit_req io_uring_complete io_uring_poll_arm io_uring_task_add io_uring_cqring_wait; do
    [ -d $tp/io_uring/$e ] && events+=",io_uring:$e"
done
data=$(mktemp)
trap 'rm -f "$data"' EXIT
perf record -q -c 1 -e "$events" -o "$data" -- \
    "$ferry" bench --scenario request-response --size "$size" --connections 1 --method "$method" --runs 2 --quick >/dev/null 2>&1
perf script -i "$data" -F comm,tid,time,event,trace 2>/dev/null | python3 -c '
import sys, collections, re
method, size = sys.argv[1:3]
count = collections.defaultdict(collections.Counter)   # tid -> event -> n
runtime = collections.Counter()                        # tid -> ns on CPU
comm_of, first, last = {}, {}, {}
for line in sys.stdin:
    m = re.match(r"\s*(\S+)\s+(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)", line)
    if not m:
        continue
    comm, tid, t, event, trace = m.groups()
    t = float(t)
    event = event.split(":")[-1]
    if event == "sched_stat_runtime":
        r = re.search(r"comm=(\S+) pid=(\d+) runtime=(\d+)", trace)
        if r:
            comm_of[r.group(2)] = r.group(1)
            runtime[r.group(2)] += int(r.group(3))
        continue
    if event == "local_timer_entry":
        tid = "irq"
        comm = "(timer interrupts)"
    comm_of.setdefault(tid, comm)
    count[tid][event] += 1
    first.setdefault(tid, t)
    last[tid] = t
# Each run has its own rr-server and rr-client threads, started together. A run is
# "light" when its client asked at most 1500 times a second (the paced runs), else
# "closed" (as fast as answers come).
clients = sorted((first[t], t) for t in count if comm_of.get(t) == "rr-client")
servers = sorted((first[t], t) for t in count if comm_of.get(t) == "rr-server")
phase = {}
for (_, c), (_, srv) in zip(clients, servers):
    n = count[c]["sys_enter_sendto"]
    rate = n / max(last[c] - first[c], 1e-3)
    phase[c] = phase[srv] = "light" if rate < 1500 else "closed"
for ph in ("closed", "light"):
    tids = [t for t in phase if phase[t] == ph]
    cl = [t for t in tids if comm_of[t] == "rr-client"]
    requests = sum(count[t]["sys_enter_sendto"] for t in cl)
    if not requests:
        continue
    roles = {"rr-client": [t for t in tids if comm_of[t] == "rr-client"],
             "rr-server": [t for t in tids if comm_of[t] == "rr-server"]}
    what = "closed loop" if ph == "closed" else "light load (paced)"
    print(f"{method} {size} x1, {what}: {requests} requests")
    print("per request".ljust(26) + "".join(f"{r:>14}" for r in roles))
    print("CPU µs (traced)".ljust(26) + "".join(f"{sum(runtime[t] for t in ts) / 1000 / requests:14.2f}" for ts in roles.values()))
    keys = sorted({k for ts in roles.values() for t in ts for k in count[t]})
    for k in keys:
        row = [sum(count[t][k] for t in ts) / requests for ts in roles.values()]
        if all(v < 0.005 for v in row):
            continue
        print(k.removeprefix("sys_enter_").ljust(26) + "".join(f"{v:14.2f}" for v in row))
    print()
' "$method" "$size"
