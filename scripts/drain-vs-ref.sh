#!/usr/bin/env bash
# Drain rate beside the C reference, in one script run: is acceptbench's drain timed
# fairly? ring_peer (../shared/reference) drains a pre-filled queue timed from the
# release of its loop, reading every peer; acceptbench's sweep drains the same way
# (std = accept4 with the sockaddr, multishot = multishot accept + getsockopt(SO_PEERNAME)
# + close). The ratio multishot/std should match ring_peer's msys/blocking.
#
#   scripts/drain-vs-ref.sh [ROUNDS=5] [N=4000]
#
# Rounds interleave: ring_peer blocking, ring_peer msys, then one acceptbench sweep
# (std and multishot, drain, backlog 4096, 1 s). Server on CPU 0, client on CPU 1.
# Prints one line per round and the medians. Needs gcc + liburing-dev (installed with
# apt-get if missing) and the reference sources beside the repo.
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

# ring_peer MODE: prints "rate cpu_us_per"
ring() {
  port=$((port + 1))
  taskset -c 0 "$ref/ring_peer" "$1" "$port" "$n" 1500 0 >"$work/rp.out" &
  local pid=$!
  sleep 0.2
  taskset -c 1 "$ref/ref_client" "$port" 1 3 8 1 "$n" >/dev/null || true
  wait "$pid" || true
  awk '/SUMMARY/ { for (i=1;i<=NF;i++) { split($i,kv,"="); v[kv[1]]=kv[2] } print v["rate"], v["cpu_us_per"] }' "$work/rp.out"
}

# ours: prints "std_rate multishot_rate std_cpu multishot_cpu"
ours() {
  rm -rf "$work/sweep"
  "$ab" sweep --engines std,multishot --backlogs 4096 --modes drain --duration 1s \
    --repeat 1 --no-plots --quiet --out "$work/sweep" 2>/dev/null || true
  python3 - "$work"/sweep/*/summary.csv <<'PY'
import csv, sys
rows = {r["engine"]: r for r in csv.DictReader(open(sys.argv[1])) if r["status"] == "ok"}
print(rows["std"]["accepts_per_s"], rows["multishot"]["accepts_per_s"],
      rows["std"]["acceptor_cpu_us_per_accept"], rows["multishot"]["acceptor_cpu_us_per_accept"])
PY
}

results="$work/results"
for r in $(seq "$rounds"); do
  read -r b_rate b_cpu < <(ring blocking)
  read -r m_rate m_cpu < <(ring msys)
  read -r s_rate ms_rate s_cpu ms_cpu < <(ours)
  python3 -c "
b,m,s,ms=$b_rate,$m_rate,$s_rate,$ms_rate
print(f'round=$r ring_blocking={b:.0f} ring_msys={m:.0f} ring_ratio={m/b:.3f} ab_std={s:.0f} ab_multishot={ms:.0f} ab_ratio={ms/s:.3f} ring_cpu_us={$b_cpu}/{$m_cpu} ab_cpu_us={$s_cpu:.2f}/{$ms_cpu:.2f}')" | tee -a "$results"
done
echo
echo "medians over $rounds rounds (drain rate, peers read, timed from release):"
python3 - "$results" <<'PY'
import sys, statistics
rows = [dict(p.split("=", 1) for p in l.split()) for l in open(sys.argv[1])]
m = lambda k: statistics.median(float(r[k]) for r in rows)
print("| | baseline conn/s | multishot conn/s | multishot / baseline |")
print("|---|---:|---:|---:|")
print(f"| ring_peer (blocking, msys) | {m('ring_blocking'):.0f} | {m('ring_msys'):.0f} | {m('ring_ratio'):.3f} |")
print(f"| acceptbench sweep drain (std, multishot) | {m('ab_std'):.0f} | {m('ab_multishot'):.0f} | {m('ab_ratio'):.3f} |")
ratios = sorted(float(r["ab_ratio"]) / float(r["ring_ratio"]) for r in rows)
print(f"\nacceptbench ratio / ring_peer ratio: median {statistics.median(ratios):.3f}, per round {', '.join(f'{x:.2f}' for x in ratios)}")
PY
