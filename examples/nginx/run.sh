#!/bin/sh
# nginx as an external server for acceptbench:
#
#   acceptbench sweep --server nginx='examples/nginx/run.sh {addr} {port} {backlog}' \
#       --server-request nginx='GET / HTTP/1.0\r\n\r\n' --engines std,nginx
#
# Writes nginx.conf from the template beside this script into a private directory
# (pid, temporary files), runs nginx in the foreground (daemon off, one worker) and
# removes the directory when it ends. Debian's nginx or nginx-light package is
# enough; its own service need not run.
set -eu
if [ "$#" -ne 3 ]; then
    echo "usage: $0 ADDR PORT BACKLOG" >&2
    exit 2
fi
addr=$1 port=$2 backlog=$3
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx" ] || { echo "nginx not found: apt-get install nginx-light (or nginx)" >&2; exit 127; }
here=$(cd "$(dirname "$0")" && pwd)
# Set before anything is started: a SIGTERM that comes early (a sweep's first start
# is stopped as soon as it listens) must not end this shell before its clean-up.
pid=
trap 'if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null; fi' TERM INT
dir=$(mktemp -d "${TMPDIR:-/tmp}/acceptbench-nginx.XXXXXX")
trap 'rm -rf "$dir"' EXIT
# An IPv6 address is written in brackets in nginx's listen directive.
case "$addr" in *:*) addr="[$addr]" ;; esac
sed -e "s|@ADDR@|$addr|g" -e "s|@PORT@|$port|g" -e "s|@BACKLOG@|$backlog|g" -e "s|@DIR@|$dir|g" \
    "$here/nginx.conf.template" > "$dir/nginx.conf"
echo "nginx: config and pid in $dir"
# nginx runs as this shell's child, in its process group (so the sweep's SIGSTOP,
# SIGCONT and SIGTERM reach it directly); the shell removes the directory once it has
# gone and exits with its status.
"$nginx" -p "$dir" -c "$dir/nginx.conf" &
pid=$!
status=0
wait "$pid" || status=$?
# A trapped signal ends the first wait early: wait for nginx itself.
while kill -0 "$pid" 2>/dev/null; do wait "$pid" || status=$?; done
exit "$status"
