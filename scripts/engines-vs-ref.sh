#!/usr/bin/env bash
# Acceptor CPU per accept: each acceptbench engine beside the C reference server of the
# same mechanism (../shared/reference/ref_server), driven by the same C client
# (ref_client, 1 thread, RST close) in the same run. Server pinned to CPU 0, client to CPU 1.
#
#   scripts/engines-vs-ref.sh [SECONDS=5] [ROUNDS=3]
#
# Prints one line per (mechanism, round) and a median table. Needs gcc + liburing-dev
# (installed with apt-get if missing) and the reference sources beside the repo.
# uring-linked is paired with ref_server multishot (which reads no peer address, so
# the C side is cheaper by the peer read). With DRAIN=1 it then also runs the drain of
# a pre-filled queue with every peer read: ring_peer blocking/msys/mring/mdirect with
# DEFER=1 (and mring without) beside `cargo bench --bench ring` (std, multishot and
# uring-linked ring variants), in the same session.
set -euo pipefail
secs=${1:-5}
rounds=${2:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
ref_src=${REF_SRC:-$here/../shared/reference}
ref=${REF_OUT:-/tmp/acceptbench-ref}
if [ ! -x "$ref/ref_server" ]; then
  if [ ! -f /usr/include/liburing.h ]; then apt-get update -qq && apt-get install -y -qq liburing-dev; fi
  "$ref_src/build.sh" "$ref" >/dev/null
fi
cargo build --release -q --manifest-path "$here/Cargo.toml"
ab="${CARGO_TARGET_DIR:-$here/target}/release/acceptbench"

# A fresh port per server: the C io_uring servers exit with accepts still armed, and
# the kernel tears such a ring down asynchronously, holding the port for a moment.
port=$((20000 + RANDOM % 10000))
next_port() { port=$((port + 1)); }
client() { taskset -c 1 "$ref/ref_client" "$port" 1 "$secs" 0 1 | awk '/SUMMARY/'; }

# ref MODE [QDEPTH]: prints "accepts cpu_s"
ref_run() {
  taskset -c 0 "$ref/ref_server" "$1" "$port" 4096 $((secs + 1)) "${2:-1}" >/tmp/ref_server.out &
  local pid=$!
  sleep 0.3
  client >/dev/null
  wait "$pid" || true
  awk '/SUMMARY/ { for (i=1;i<=NF;i++) { split($i,kv,"="); v[kv[1]]=kv[2] } print v["accepts"], v["user_s"]+v["sys_s"] }' /tmp/ref_server.out
}

# ours ENGINE [INFLIGHT]: prints "accepts cpu_s"
ours_run() {
  "$ab" listen --engine "$1" --addr "127.0.0.1:$port" --backlog 4096 --duration "$((secs + 1))s" \
    --inflight "${2:-8}" --cpu 0 --json >/tmp/ab_listen.json &
  local pid=$!
  sleep 0.3
  client >/dev/null
  wait "$pid"
  python3 -c 'import json,sys; d=json.load(open("/tmp/ab_listen.json")); print(d["accepted"], d["cpu_user_s"]+d["cpu_sys_s"])'
}

pairs=(
  "blocking:1 std:1"
  "epoll:1 tokio:1"
  "uring:1 uring:1"
  "uring:8 uring:8"
  "multishot:1 multishot:1"
  "multishot:1 uring-linked:1"
  "uring:1 tokio-uring:1"
)
results=$(mktemp)
for r in $(seq "$rounds"); do
  for p in "${pairs[@]}"; do
    set -- $p
    rm=${1%%:*}; rq=${1##*:}; oe=${2%%:*}; oq=${2##*:}
    next_port
    read -r ra rc < <(ref_run "$rm" "$rq")
    next_port
    read -r oa oc < <(ours_run "$oe" "$oq")
    line=$(python3 -c "
ra,rc,oa,oc=$ra,$rc,$oa,$oc
ru=rc*1e6/ra; ou=oc*1e6/oa
print(f'round=$r ref=$rm/q$rq ours=$oe/q$oq ref_conn_s={ra/$secs:.0f} ours_conn_s={oa/$secs:.0f} ref_us_per_accept={ru:.2f} ours_us_per_accept={ou:.2f} ratio={ou/ru:.3f}')")
    echo "$line" | tee -a "$results"
  done
done
echo
echo "median over $rounds rounds (µs of acceptor CPU per accept; ratio = ours / C reference):"
python3 - "$results" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    kv = dict(p.split("=", 1) for p in line.split())
    rows[(kv["ref"], kv["ours"])].append(kv)
print(f"| C reference | acceptbench engine | C µs/accept | ours µs/accept | ours / C | client conn/s (C srv / ours) |")
print("|---|---|---:|---:|---:|---:|")
for (ref, ours), kvs in rows.items():
    m = lambda k: statistics.median(float(x[k]) for x in kvs)
    print(f"| {ref} | {ours} | {m('ref_us_per_accept'):.2f} | {m('ours_us_per_accept'):.2f} | {m('ratio'):.3f} | {m('ref_conn_s'):.0f} / {m('ours_conn_s'):.0f} |")
PY
rm -f "$results"

[ "${DRAIN:-0}" = 1 ] || exit 0
echo
echo "drain of 4000 pre-queued reset connections, every peer read (C reference ring_peer, $rounds interleaved rounds, medians):"
python3 - "$ref" "$rounds" <<'PY'
import os, random, statistics, subprocess, sys, time
ref, rounds, n = sys.argv[1], int(sys.argv[2]), 4000
def one(mode, defer):
    port = 31000 + random.randrange(2000)
    p = subprocess.Popen(["taskset", "-c", "0", f"{ref}/ring_peer", mode, str(port), str(n), "600", str(defer)],
                         stdout=subprocess.PIPE, text=True)
    time.sleep(0.12)
    subprocess.run(["taskset", "-c", "1", f"{ref}/ref_client", str(port), "1", "1", "0", "1", str(n)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, ru = os.wait4(p.pid, 0)
    kv = dict(x.split("=", 1) for x in p.stdout.read().split() if "=" in x)
    return float(kv["rate_closed"]), float(kv["rate"]), float(kv["cpu_us_per"]), (ru.ru_utime + ru.ru_stime) * 1e6 / n
modes = [("blocking", 0), ("msys", 1), ("mring", 0), ("mring", 1), ("mdirect", 1)]
res = {m: [] for m in modes}
for r in range(rounds):
    for k in range(len(modes)):
        m = modes[(r + k) % len(modes)]
        res[m].append(one(*m))
print("| ring_peer mode | DEFER | conn/s (release → last close) | conn/s (release → last peer held) | CPU µs/conn to last close | whole-process CPU µs/conn (incl. exec and exit) |")
print("|---|---|---:|---:|---:|---:|")
for m in modes:
    med = lambda i: statistics.median(x[i] for x in res[m])
    print(f"| {m[0]} | {m[1]} | {med(0):.0f} | {med(1):.0f} | {med(2):.2f} | {med(3):.2f} |")
PY
echo
ROUNDS=$rounds cargo bench -q --manifest-path "$here/Cargo.toml" --bench ring 2>/dev/null | grep '^|\|^ring'
