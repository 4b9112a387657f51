#!/usr/bin/env bash
# A test bed of K ssh client "hosts" on one machine, for `sweep --client-hosts ssh://…`.
#
# As scripts/hosts/netns-join.sh: a server namespace (10.77.0.1) and K client namespaces
# (10.77.0.2 …) on a bridge that lives in a namespace of its own, so the machine's own
# network is never touched. Each client namespace runs its own sshd (Debian's
# openssh-server) on its address only, with a host key and an authorized key made for
# this bed in DIR; DIR/ssh_config lets ssh reach them with that key (BatchMode, no
# password). Everything is torn down by `down` (or on any failure of `up`).
#
#   ssh-bed.sh up DIR K      make the bed; prints the namespace of the server and the
#                            ssh:// addresses (one per line) into DIR/env
#   ssh-bed.sh stop-sshd DIR I   stops client I's sshd (its sessions keep running)
#   ssh-bed.sh down DIR      stops every sshd, deletes the namespaces and DIR
#
# A sweep then runs in the server namespace:
#   . DIR/env; ip netns exec "$SRV" acceptbench sweep --client-hosts "$HOSTS" \
#       --server-addr 10.77.0.1 --ssh-config DIR/ssh_config …
# with HOSTS ssh://root@10.77.0.2/path/to/acceptbench,… (ACCEPTBENCH: the binary's
# absolute path, the same file on every "host" since they share this machine).
#
# Needs root, iproute2 and openssh-server: apt-get install iproute2 openssh-server
# (no sshd service needs to run: the bed starts its own).
set -Eeuo pipefail

die() { echo "ssh-bed: $*" >&2; exit 2; }
need() { command -v "$1" >/dev/null || [ -x "$1" ] || { echo "ssh-bed: $1 is missing: $2" >&2; exit 77; }; }

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: ssh-bed.sh up DIR K | stop-sshd DIR I | down DIR"

down() {
    local d=$1
    # Only a directory this script made (it holds the list of its namespaces).
    [ -f "$d/namespaces" ] || { echo "ssh-bed: $d is not a bed made by ssh-bed.sh up; left alone" >&2; return 0; }
    for p in "$d"/sshd-*.pid; do
        [ -f "$p" ] || continue
        pid=$(cat "$p" 2>/dev/null || true)
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    sleep 0.2
    # Whatever still runs in a client namespace (sessions, loadgen): ended before the
    # namespace goes, so nothing of the bed outlives it.
    while read -r ns; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    done < "$d/namespaces"
    tac "$d/namespaces" | while read -r ns; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$d"
}

case $cmd in
down)
    down "$dir"
    exit 0
    ;;
stop-sshd)
    i=${3:-}
    [ -f "$dir/sshd-$i.pid" ] || die "no sshd $i in $dir"
    kill "$(cat "$dir/sshd-$i.pid")"
    exit 0
    ;;
up) ;;
*) die "unknown command $cmd" ;;
esac

K=${3:-3}
case $K in ''|*[!0-9]*) die "K=$K is not a count" ;; esac
{ [ "$K" -ge 1 ] && [ "$K" -le 50 ]; } || die "K=$K: give 1 to 50 client hosts"
[ "$(id -u)" = 0 ] || { echo "ssh-bed: needs root (ip netns add, sshd)" >&2; exit 77; }
need ip "apt-get install iproute2"
need /usr/sbin/sshd "apt-get install openssh-server"
need ssh-keygen "apt-get install openssh-client"
ACCEPTBENCH=${ACCEPTBENCH:-$(pwd)/target/release/acceptbench}
[ -x "$ACCEPTBENCH" ] || die "$ACCEPTBENCH is not an executable (cargo build --release, or set ACCEPTBENCH to its absolute path)"
case $ACCEPTBENCH in /*) ;; *) die "ACCEPTBENCH=$ACCEPTBENCH: give an absolute path" ;; esac

# A new directory only: `down` removes it whole.
if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
    die "$dir exists and is not empty: give a new directory (down removes it whole)"
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
trap 'down "$dir"' ERR INT TERM
: > "$dir/namespaces"
id="absh$$"
sw="$id-sw"; srv="$id-srv"
ip netns add "$sw"; echo "$sw" >> "$dir/namespaces"
ip -n "$sw" link add br0 type bridge
ip -n "$sw" link set br0 up
add_host() {  # NS INDEX ADDRESS
    ip netns add "$1"; echo "$1" >> "$dir/namespaces"
    ip -n "$sw" link add "p$2" type veth peer name eth0 netns "$1"
    ip -n "$sw" link set "p$2" master br0 up
    ip -n "$1" addr add "$3/24" dev eth0
    ip -n "$1" link set eth0 up
    ip -n "$1" link set lo up
}
add_host "$srv" 0 10.77.0.1

ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key" -C "acceptbench ssh-bed host"
ssh-keygen -q -t ed25519 -N '' -f "$dir/client_key" -C "acceptbench ssh-bed client"
cp "$dir/client_key.pub" "$dir/authorized_keys"
chmod 600 "$dir/authorized_keys" "$dir/host_key" "$dir/client_key"
cat > "$dir/sshd_config" <<EOF
HostKey $dir/host_key
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
StrictModes no
X11Forwarding no
PrintMotd no
Subsystem sftp internal-sftp
EOF
cat > "$dir/ssh_config" <<EOF
Host 10.77.0.*
    User root
    IdentityFile $dir/client_key
    IdentitiesOnly yes
    UserKnownHostsFile $dir/known_hosts
    StrictHostKeyChecking accept-new
    LogLevel ERROR
EOF
mkdir -p /run/sshd   # sshd's privilege-separation directory
hosts=""
for i in $(seq 1 "$K"); do
    ns="$id-c$i"; ip_addr="10.77.0.$((i + 1))"
    add_host "$ns" "$i" "$ip_addr"
    ip netns exec "$ns" /usr/sbin/sshd -f "$dir/sshd_config" \
        -o "ListenAddress=$ip_addr" -o "PidFile=$dir/sshd-$i.pid"
    hosts="${hosts:+$hosts,}ssh://root@$ip_addr$ACCEPTBENCH"
done
# Wait until every sshd answers (ssh-keyscan also fills known_hosts).
for i in $(seq 1 "$K"); do
    ip_addr="10.77.0.$((i + 1))"
    for _ in $(seq 1 50); do
        if ip netns exec "$srv" ssh-keyscan -T 1 -t ed25519 "$ip_addr" >> "$dir/known_hosts" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
done
cat > "$dir/env" <<EOF
SRV=$srv
HOSTS=$hosts
SERVER_ADDR=10.77.0.1
SSH_CONFIG=$dir/ssh_config
EOF
trap - ERR INT TERM
cat "$dir/env"
