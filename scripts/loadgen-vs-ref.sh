#!/usr/bin/env bash
# loadgen closed mode vs the plain C client (shared/reference/ref_client.c), same run,
# same server, same pinning, RST close. Prints conn/s and conn per client-CPU-second for
# each and the ratio loadgen/ref. Not part of `cargo test`; loopback only.
#
# usage: scripts/loadgen-vs-ref.sh [REPS] [SECONDS]
#   env: PORT (18080), SERVER_CPU (0), CLIENT_CPU (1), LOADGEN_ARGS (extra loadgen flags),
#        VARIANTS (several loadgen set-ups measured in turn in every rep, after ref:
#        "label=flags;label=flags", e.g.
#        "syscall=--method uring;ring=--method uring --socket-ops ring --ring-setup defer";
#        default: one, "loadgen=$LOADGEN_ARGS"),
#        REF_DIR (/tmp/acceptbench-ref), SHARED (<repo>/../shared), LOADGEN (path to binary;
#        default: cargo build --release -p loadgen)
#
# Client CPU is measured the same way for both: GNU time's user+sys of the client process
# (both are single processes; loadgen's main thread only sleeps). Conn/s: ref's SUMMARY
# conns / SECONDS; loadgen's established / measured duration.
set -euo pipefail

REPS=${1:-3}
SECS=${2:-5}
PORT=${PORT:-18080}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared}
REF_DIR=${REF_DIR:-/tmp/acceptbench-ref}
TIME=/usr/bin/time
WORK=$(mktemp -d /tmp/loadgen-vs-ref.XXXXXX)
SERVER_PID=

cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ ! -x "$TIME" ]; then
    echo "needs GNU time at $TIME (apt-get install -y time)" >&2; exit 2
fi
if [ ! -x "$REF_DIR/ref_client" ] || [ ! -x "$REF_DIR/ref_server" ]; then
    if [ ! -f /usr/include/liburing.h ]; then
        apt-get update && apt-get install -y liburing-dev
    fi
    "$SHARED/reference/build.sh" "$REF_DIR"
fi
if [ -z "${LOADGEN:-}" ]; then
    (cd "$ROOT" && cargo build --release -p loadgen)
    LOADGEN=$ROOT/target/release/loadgen
fi

VARIANTS=${VARIANTS:-loadgen=${LOADGEN_ARGS:-}}
IFS=';' read -r -a VARS <<<"$VARIANTS"
# One server for the whole comparison, so every client meets the same accept loop.
SERVER_SECS=$(( REPS * (1 + ${#VARS[@]}) * (SECS + 2) + 10 ))
taskset -c "$SERVER_CPU" "$REF_DIR/ref_server" blocking "$PORT" 4096 "$SERVER_SECS" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
sleep 0.5

cpu_of() { awk '/^TIME/ {printf "%.3f", $2 + $3}' "$1"; }

printf '%-4s %-10s %12s %12s %16s\n' rep client conn/s cpu_s conn/cpu_s
declare -a R_RATE R_EFF
declare -A V_RATE V_EFF V_METHOD V_RATIO V_PAIR
for ((i = 1; i <= REPS; i++)); do
    "$TIME" -f 'TIME %U %S %e' -o "$WORK/ref.time" taskset -c "$CLIENT_CPU" \
        "$REF_DIR/ref_client" "$PORT" 1 "$SECS" 0 1 >"$WORK/ref.out"
    conns=$(sed -n 's/^SUMMARY.* conns=\([0-9]*\).*/\1/p' "$WORK/ref.out")
    cpu=$(cpu_of "$WORK/ref.time")
    rate=$(awk -v c="$conns" -v s="$SECS" 'BEGIN {printf "%.0f", c / s}')
    eff=$(awk -v c="$conns" -v t="$cpu" 'BEGIN {printf "%.0f", (t > 0 ? c / t : 0)}')
    R_RATE+=("$rate"); R_EFF+=("$eff")
    printf '%-4s %-10s %12s %12s %16s\n' "$i" ref "$rate" "$cpu" "$eff"

    first_eff=
    for v in "${VARS[@]}"; do
        label=${v%%=*}; args=${v#*=}
        # shellcheck disable=SC2086
        "$TIME" -f 'TIME %U %S %e' -o "$WORK/lg.time" \
            "$LOADGEN" --target "127.0.0.1:$PORT" --mode closed --threads 1 --cpus "$CLIENT_CPU" \
            --duration "${SECS}s" --json --quiet $args >"$WORK/lg.json"
        read -r est dur method < <(python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().splitlines()[-1]); print(r["established"], r["duration_s"], r["method"] + ("/" + r["ring_setup"] + "/" + r["socket_ops"] if r.get("ring_setup") else ""))' "$WORK/lg.json")
        cpu=$(cpu_of "$WORK/lg.time")
        rate=$(awk -v c="$est" -v s="$dur" 'BEGIN {printf "%.0f", c / s}')
        eff=$(awk -v c="$est" -v t="$cpu" 'BEGIN {printf "%.0f", (t > 0 ? c / t : 0)}')
        V_RATE[$label]+="$rate "; V_EFF[$label]+="$eff "; V_METHOD[$label]=$method
        V_RATIO[$label]+="$(awk -v a="$eff" -v b="${R_EFF[-1]}" 'BEGIN {printf "%.4f", (b > 0 ? a / b : 0)}') "
        first_eff=${first_eff:-$eff}
        V_PAIR[$label]+="$(awk -v a="$eff" -v b="$first_eff" 'BEGIN {printf "%.4f", (b > 0 ? a / b : 0)}') "
        printf '%-4s %-10s %12s %12s %16s\n' "$i" "$label" "$rate" "$cpu" "$eff"
    done
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}'; }
rr=$(median "${R_RATE[@]}"); re=$(median "${R_EFF[@]}")
echo
echo "medians over $REPS x ${SECS}s, server ref_server blocking on cpu $SERVER_CPU, clients on cpu $CLIENT_CPU, RST close"
printf '%-10s %8s conn/s  %8s conn per client-cpu-s\n' ref_client "$rr" "$re"
for v in "${VARS[@]}"; do
    label=${v%%=*}
    # shellcheck disable=SC2086
    lr=$(median ${V_RATE[$label]}); le=$(median ${V_EFF[$label]})
    # shellcheck disable=SC2086
    range=$(printf '%s\n' ${V_RATIO[$label]} | sort -n | awk '{a[NR]=$1} END {printf "%.3f [%.3f, %.3f]", (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2), a[1], a[NR]}')
    printf '%-10s %8s conn/s  %8s conn per client-cpu-s   ratio to ref: conn/s %s  per cpu-s %s; same-rep per cpu-s %s   (%s; %s)\n' \
        "$label" "$lr" "$le" \
        "$(awk -v a="$lr" -v b="$rr" 'BEGIN {printf "%.3f", a / b}')" \
        "$(awk -v a="$le" -v b="$re" 'BEGIN {printf "%.3f", a / b}')" \
        "$range" "${V_METHOD[$label]}" "${v#*=}"
done
if [ "${#VARS[@]}" -gt 1 ]; then
    echo
    echo "paired with ${VARS[0]%%=*} (each rep's conn per client-cpu-s over ${VARS[0]%%=*}'s in the same rep), median [min, max]:"
    for v in "${VARS[@]:1}"; do
        label=${v%%=*}
        # shellcheck disable=SC2086
        printf '%-10s %s\n' "$label" "$(printf '%s\n' ${V_PAIR[$label]} | sort -n | awk '{a[NR]=$1} END {printf "%.3f [%.3f, %.3f]", (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2), a[1], a[NR]}')"
    done
fi
echo "same-rep: each rep's conn per client-cpu-s over that rep's ref_client, median [min, max] over the reps"
echo "([min, max] of n reps holds the median with probability 1 - 2^(1-n): 97% for 6, 98% for 7)"
