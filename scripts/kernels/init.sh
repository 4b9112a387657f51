#!/bin/busybox sh
# shellcheck shell=dash
# /init of the acceptbench guest initramfs (see scripts/kernels/README.md).
# Mounts the basics, brings lo up, runs the sweeps given in /sweep-args (one a line) and
# writes the results directory as a base64 tar stream between marker lines on
# the second serial port (/dev/ttyS1), which QEMU saves to a host file.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
ip link set lo up
ulimit -n 65536
# Sysctls stay at the kernel's defaults: meta.json records them, compare warns on differences.
hostname tcg-guest

echo "acceptbench-guest: kernel $(uname -r), $(nproc) CPUs"
grep -m1 'model name' /proc/cpuinfo
grep -m1 -o -w hypervisor /proc/cpuinfo || echo "no hypervisor flag"
/acceptbench probe

mkdir -p /tmp/out
# One sweep per line of /sweep-args, each into its own run directory.
rc=0
while read -r line; do
    [ -n "$line" ] || continue
    echo "acceptbench-guest: sweep $line"
    # shellcheck disable=SC2086 # one sweep's arguments, split on purpose
    /acceptbench sweep $line --no-plots --quiet --out /tmp/out || rc=$?
done < /sweep-args
echo "acceptbench-guest: sweeps done (last failure status $rc)"
# The capability matrix of scripts/kernels/report.py reads this, beside each run.
for d in /tmp/out/*/; do
    /acceptbench probe --json > "$d/probe.json"
done

stty -F /dev/ttyS1 raw -echo 2>/dev/null
{
    echo "ACCEPTBENCH-RESULTS-BEGIN rc=$rc"
    tar -C /tmp/out -cf - . | base64
    echo "ACCEPTBENCH-RESULTS-END"
} > /dev/ttyS1
sync
# QEMU runs with -no-reboot: a reboot ends it.
reboot -f
