#!/bin/busybox sh
# /init of the acceptbench guest initramfs (see scripts/kernels/README.md).
# Mounts the basics, brings lo up, runs the sweep given in /sweep-args and
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
# shellcheck disable=SC2046 # the arguments are one line, split on purpose
/acceptbench sweep $(cat /sweep-args) --no-plots --out /tmp/out
rc=$?
echo "acceptbench-guest: sweep exited with $rc"

stty -F /dev/ttyS1 raw -echo 2>/dev/null
{
    echo "ACCEPTBENCH-RESULTS-BEGIN rc=$rc"
    tar -C /tmp/out -cf - . | base64
    echo "ACCEPTBENCH-RESULTS-END"
} > /dev/ttyS1
sync
# QEMU runs with -no-reboot: a reboot ends it.
reboot -f
