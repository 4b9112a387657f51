#!/usr/bin/env bash
# One server and K client "hosts" on one machine, joined by `acceptbench join`.
#
# Each host is a network namespace with its own address (10.77.0.0/24 exists only
# inside them); they meet on a bridge that lives in a namespace of its own, so the
# machine's own network is never touched. The server namespace runs
# `acceptbench listen --records`, each client namespace `loadgen --records --hlog`,
# then the records are joined into one results directory and the clients' .hlog
# files merged beside it. Every namespace is deleted on exit (trap), whatever happens.
#
# Needs root (ip netns) and iproute2 (apt-get install iproute2).
#
# Environment (defaults):
#   ACCEPTBENCH  the acceptbench binary       (target/release/acceptbench)
#   K            client namespaces            (3)
#   CONNS        connections per client       (3000)
#   CONCURRENCY  connects in flight per client (4)
#   ENGINE       acceptor engine              (std)
#   BACKLOG      listen backlog               (4096)
#   OUT          where the run directory goes (results)
#   PORT         listening port             (9000)
#   KEEP         if set: a directory to copy the raw records into (for tests)
#   LOOPBACK     if 1: no namespaces: the same server and K loadgen processes on the
#                host's loopback (client i from 127.0.0.<i+1>), for a like-for-like
#                comparison of the veth path with loopback
#
# Prints the run directory on the last line of stdout.
set -euo pipefail

ACCEPTBENCH=${ACCEPTBENCH:-target/release/acceptbench}
K=${K:-3}
CONNS=${CONNS:-3000}
CONCURRENCY=${CONCURRENCY:-4}
ENGINE=${ENGINE:-std}
BACKLOG=${BACKLOG:-4096}
OUT=${OUT:-results}
PORT=${PORT:-9000}
SERVER_IP=10.77.0.1
LOOPBACK=${LOOPBACK:-0}
[ "$LOOPBACK" = 1 ] && SERVER_IP=127.0.0.1

if [ "$LOOPBACK" != 1 ] && [ "$(id -u)" != 0 ]; then
    echo "netns-join: needs root (ip netns add); run with sudo" >&2
    exit 77
fi
command -v ip >/dev/null || { echo "netns-join: needs iproute2: apt-get install iproute2" >&2; exit 77; }
[ -x "$ACCEPTBENCH" ] || { echo "netns-join: $ACCEPTBENCH is not an executable (cargo build --release, or set ACCEPTBENCH)" >&2; exit 2; }
case $K in ''|*[!0-9]*) echo "netns-join: K=$K is not a count" >&2; exit 2;; esac
if [ "$K" -lt 1 ] || [ "$K" -gt 200 ]; then echo "netns-join: K=$K: give 1 to 200 clients" >&2; exit 2; fi

ID="ab$$"                      # unique per run: several runs may share the machine
SW="$ID-sw"; SRV="$ID-srv"
TMP=$(mktemp -d)
NAMESPACES=()
SRV_PID=""

cleanup() {
    if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then kill -KILL "$SRV_PID" 2>/dev/null || true; fi
    for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# in_ns NS CMD…: run CMD in namespace NS (on the host itself with LOOPBACK=1).
in_ns() {
    local ns=$1; shift
    if [ "$LOOPBACK" = 1 ]; then "$@"; else ip netns exec "$ns" "$@"; fi
}
client_ip() { if [ "$LOOPBACK" = 1 ]; then echo "127.0.0.$(($1 + 1))"; else echo "10.77.0.$(($1 + 1))"; fi; }

# add_host NS INDEX ADDRESS: a namespace whose eth0 is plugged into the bridge.
add_host() {
    ip netns add "$1"; NAMESPACES+=("$1")
    ip -n "$SW" link add "p$2" type veth peer name eth0 netns "$1"
    ip -n "$SW" link set "p$2" master br0 up
    ip -n "$1" addr add "$3/24" dev eth0
    ip -n "$1" link set eth0 up
    ip -n "$1" link set lo up
}
if [ "$LOOPBACK" != 1 ]; then
    ip netns add "$SW"; NAMESPACES+=("$SW")
    ip -n "$SW" link add br0 type bridge
    ip -n "$SW" link set br0 up
    add_host "$SRV" 0 "$SERVER_IP"
    for i in $(seq 1 "$K"); do add_host "$ID-c$i" "$i" "$(client_ip "$i")"; done
fi

RUN_ID="$([ "$LOOPBACK" = 1 ] && echo loopback || echo netns)-$ID-$(date -u +%Y%m%dT%H%M%SZ)"
TOTAL=$((K * CONNS))
in_ns "$SRV" "$ACCEPTBENCH" listen --engine "$ENGINE" --backlog "$BACKLOG" \
    --addr "$SERVER_IP:$PORT" --count "$TOTAL" --duration 60s \
    --records "$TMP/server.rec" --run-id "$RUN_ID" --json >"$TMP/listen.json" 2>"$TMP/listen.err" &
SRV_PID=$!
for _ in $(seq 1 200); do   # up to 10 s for the listener
    in_ns "$SRV" ss -Hltn "src $SERVER_IP:$PORT" | grep -q . && break
    kill -0 "$SRV_PID" 2>/dev/null || { cat "$TMP/listen.err" >&2; exit 1; }
    sleep 0.05
done

CLIENT_PIDS=()
for i in $(seq 1 "$K"); do
    in_ns "$ID-c$i" "$ACCEPTBENCH" loadgen --target "$SERVER_IP:$PORT" --mode closed \
        --sources "$(client_ip "$i")" \
        --connections "$CONNS" --concurrency "$CONCURRENCY" --records "$TMP/c$i.rec" \
        --hlog "$TMP/c$i.hlog" --run-id "$RUN_ID" --json --quiet >"$TMP/c$i.json" 2>"$TMP/c$i.err" &
    CLIENT_PIDS+=($!)
done
FAILED=0
for p in "${CLIENT_PIDS[@]}"; do wait "$p" || FAILED=1; done
[ "$FAILED" = 0 ] || { echo "netns-join: a loadgen failed:" >&2; cat "$TMP"/c*.err >&2; }

# The acceptor stops by itself after K·CONNS accepts; if some never came, Ctrl-C it.
for _ in $(seq 1 40); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.05; done
kill -INT "$SRV_PID" 2>/dev/null || true
for _ in $(seq 1 100); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.05; done
wait "$SRV_PID" || { echo "netns-join: the acceptor failed:" >&2; cat "$TMP/listen.err" >&2; exit 1; }
SRV_PID=""

CLIENTS=()
for i in $(seq 1 "$K"); do CLIENTS+=("$TMP/c$i.rec"); done
mkdir -p "$OUT"
set +e
"$ACCEPTBENCH" join --server "$TMP/server.rec" --client "${CLIENTS[@]}" --out "$OUT" \
    --engine "$ENGINE" --backlog "$BACKLOG" --mode closed >"$TMP/join.out"
JOIN=$?
set -e
cat "$TMP/join.out"
RUN=$(sed -n 's/^results: //p' "$TMP/join.out")
[ -n "$RUN" ] || exit "$JOIN"
mkdir -p "$RUN/hlog"
for i in $(seq 1 "$K"); do cp "$TMP/c$i.hlog" "$RUN/hlog/client$i.hlog"; done
"$ACCEPTBENCH" merge "$RUN"/hlog/client*.hlog --out "$RUN/hgrm/merged-clients-connect.hgrm" >/dev/null
cp "$TMP/listen.json" "$RUN/listen.json"
{
    echo
    echo "## How this run was made"
    echo
    echo "scripts/hosts/netns-join.sh with K=$K CONNS=$CONNS CONCURRENCY=$CONCURRENCY ENGINE=$ENGINE BACKLOG=$BACKLOG LOOPBACK=$LOOPBACK:"
    if [ "$LOOPBACK" = 1 ]; then
        echo "the acceptor on $SERVER_IP and $K loadgen processes (sources 127.0.0.2 …) on the host's loopback, run id $RUN_ID."
    else
        echo "one server namespace ($SERVER_IP) and $K client namespaces (10.77.0.2 …) on a bridge, run id $RUN_ID."
    fi
    echo "\`hlog/\` holds each client's interval log; \`hgrm/merged-clients-connect.hgrm\` is \`acceptbench merge\` of them; \`listen.json\` the acceptor's summary."
} >>"$RUN/README.md"
if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP"; cp "$TMP"/*.rec "$KEEP"/; fi
echo "$RUN"
exit "$JOIN"
