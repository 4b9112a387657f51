#!/usr/bin/env bash
# Drain rate beside the C reference, in one script run: is acceptbench's drain timed
# fairly? ring_peer (../shared/reference) drains a pre-filled queue timed from the
# release of its loop, reading every peer, and reports both end points: `rate_closed`
# / `cpu_us_per` to the last close (a connection is done when it is closed) and `rate`
# to the last peer held. acceptbench's sweep drains the same way and reports the same
# two (accepts_per_s, peers_held_per_s). Pairs: std = blocking (accept4 with the
# sockaddr + close), multishot = msys (multishot accept + getsockopt(SO_PEERNAME) +
# close), uring-linked = mring with DEFER=1 (in-ring getsockopt linked to close,
# SINGLE_ISSUER|DEFER_TASKRUN). Each ratio to its baseline should match the C one.
#
#   scripts/drain-vs-ref.sh [ROUNDS=5] [N=4000]
#
# Rounds interleave: ring_peer blocking, msys, mring+DEFER, then one acceptbench sweep
# (std, multishot, uring-linked; drain, backlog 4096, 1 s). Server on CPU 0, client on
# CPU 1. Prints one line per round and the medians. Needs gcc + liburing-dev
# (installed with apt-get if missing) and the reference sources beside the repo.
set -euo pipefail
rounds=${1:-5}
n=${2:-4000}
here=$(cd "$(dirname "$0")/.." && pwd)
ref_src=${REF_SRC:-$here/../shared/reference}
ref=${REF_OUT:-/tmp/acceptbench-ref}
if [ ! -x "$ref/ring_peer" ]; then
  if [ ! -f /usr/include/liburing.h ]; then apt-get update -qq && apt-get install -y -qq liburing-dev; fi
  "$ref_src/build.sh" "$ref" >/dev/null
fi
cargo build --release -q --manifest-path "$here/Cargo.toml"
ab="$here/target/release/acceptbench"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
port=$((30000 + RANDOM % 10000))

# ring_peer MODE DEFER: prints "rate_closed cpu_us_per rate"
ring() {
  port=$((port + 1))
  taskset -c 0 "$ref/ring_peer" "$1" "$port" "$n" 1500 "$2" >"$work/rp.out" &
  local pid=$!
  sleep 0.2
  taskset -c 1 "$ref/ref_client" "$port" 1 3 8 1 "$n" >/dev/null || true
  wait "$pid" || true
  awk '/SUMMARY/ { for (i=1;i<=NF;i++) { split($i,kv,"="); v[kv[1]]=kv[2] } print v["rate_closed"], v["cpu_us_per"], v["rate"] }' "$work/rp.out"
}

# ours: prints "engine=closed/cpu/held ..." for std, multishot, uring-linked
ours() {
  rm -rf "$work/sweep"
  "$ab" sweep --engines std,multishot,uring-linked --backlogs 4096 --modes drain --duration 1s \
    --repeat 1 --no-plots --quiet --out "$work/sweep" 2>/dev/null || true
  python3 - "$work"/sweep/*/summary.csv <<'PY'
import csv, sys
rows = {r["engine"]: r for r in csv.DictReader(open(sys.argv[1])) if r["status"] == "ok"}
print(" ".join(rows[e][k] for e in ("std", "multishot", "uring-linked")
               for k in ("accepts_per_s", "acceptor_cpu_us_per_accept", "peers_held_per_s")))
PY
}

results="$work/results"
for r in $(seq "$rounds"); do
  read -r b_c b_cpu b_h < <(ring blocking 0)
  read -r m_c m_cpu m_h < <(ring msys 0)
  read -r l_c l_cpu l_h < <(ring mring 1)
  read -r s_c s_cpu s_h ms_c ms_cpu ms_h ul_c ul_cpu ul_h < <(ours)
  echo "round=$r ref_blocking=$b_c ref_msys=$m_c ref_mring_defer=$l_c ref_blocking_held=$b_h ref_msys_held=$m_h ref_mring_defer_held=$l_h ref_cpu_blocking=$b_cpu ref_cpu_msys=$m_cpu ref_cpu_mring_defer=$l_cpu ab_std=$s_c ab_multishot=$ms_c ab_linked=$ul_c ab_std_held=$s_h ab_multishot_held=$ms_h ab_linked_held=$ul_h ab_cpu_std=$s_cpu ab_cpu_multishot=$ms_cpu ab_cpu_linked=$ul_cpu" | tee -a "$results"
done
echo
echo "medians over $rounds rounds (drain of $n pre-queued reset connections, peers read, timed from release):"
python3 - "$results" <<'PY'
import sys, statistics
rows = [{k: (v if k == "round" else float(v)) for k, v in (p.split("=", 1) for p in l.split())} for l in open(sys.argv[1])]
med = lambda f: statistics.median(f(r) for r in rows)
print("| C reference / acceptbench | conn/s to last close | × baseline (same round) | conn/s to last peer held | × baseline | CPU µs/conn to last close |")
print("|---|---:|---:|---:|---:|---:|")
pairs = [("blocking", "std"), ("msys", "multishot"), ("mring_defer", "linked")]
for c, a in pairs:
    for side, key, base in (("ref", c, "blocking"), ("ab", a, "std")):
        name = f"ring_peer {c.replace('_', '+')}" if side == "ref" else f"acceptbench {a.replace('linked', 'uring-linked')}"
        print(f"| {name} | {med(lambda r: r[f'{side}_{key}']):.0f} | {med(lambda r: r[f'{side}_{key}'] / r[f'{side}_{base}']):.3f} "
              f"| {med(lambda r: r[f'{side}_{key}_held']):.0f} | {med(lambda r: r[f'{side}_{key}_held'] / r[f'{side}_{base}_held']):.3f} "
              f"| {med(lambda r: r[f'{side}_cpu_{key}']):.2f} |")
print()
for c, a in pairs[1:]:
    rr = sorted((r[f"ab_{a}"] / r["ab_std"]) / (r[f"ref_{c}"] / r["ref_blocking"]) for r in rows)
    print(f"acceptbench {a}/std over ring_peer {c}/blocking, to the last close: median {statistics.median(rr):.3f}, per round {', '.join(f'{x:.2f}' for x in rr)}")
PY
