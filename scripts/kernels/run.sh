#!/usr/bin/env bash
# Runs the same acceptbench sweeps under Debian's cloud kernels from 5.10 to the
# newest (QEMU software emulation, TCG) and on the host, collects every run under
# results/, and appends a capability matrix, a behaviour table and speed ratios
# per kernel to the host's first run's README. See scripts/kernels/README.md.
#
#   scripts/kernels/run.sh [--install] [--kernels "5.10 6.1 6.12 newest"] [--no-host]
#                          [--out results] [--timeout 1800] [--smp 2] [--update]
#                          [--sweep "SWEEP ARGS"]… [-- SWEEP ARGS…]
#   scripts/kernels/run.sh --report RUN_DIR…   (only the report, to stdout)
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=scripts/kernels/lib.sh
. "$repo/scripts/kernels/lib.sh"

kernels="5.10 6.1 6.12 newest"
host=1
install=0
update=0
out="$repo/results"
timeout_s=1800
smp=2
mem=1024
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
cache="${ACCEPTBENCH_KERNEL_CACHE:-$target_dir/kernels}"
# One sweep per line, each its own run directory:
#  1. every engine, closed and drain: support, and speed as ratios to std;
#  2. a burst of 200 against a paused acceptor, B = 16: queue limit, overflows,
#     client-only connections (syncookies at the kernel's default);
#  3. the same with syncookies=0: dropped SYNs are retried, so the SYN-retransmit
#     schedule shows (9 s connect timeout: three retries on either schedule);
#  4. 3. with tcp_abort_on_overflow=1;
#  5. a 2 s stall of the acceptor under 200 conn/s, B = 16: the retry waves on the
#     kernel's own SYN schedule (1, 2, 3 s … since 6.5; 1, 3, 7 s before), the recovery,
#     each beside the model's prediction (a light load, so emulation keeps up).
default_sweeps="--engines std,uring,multishot,uring-linked,tokio-uring,tokio --backlogs 128 --modes closed,drain --duration 300ms --repeat 4
--engines std --backlogs 16 --modes burst --burst-size 200 --connect-timeout 9s --repeat 2
--engines std --backlogs 16 --modes burst --burst-size 200 --connect-timeout 9s --repeat 2 --syncookies 0
--engines std --backlogs 16 --modes burst --burst-size 200 --connect-timeout 9s --repeat 2 --syncookies 0 --abort-on-overflow
--engines std,multishot --backlogs 16 --modes stall --stall 2s --stall-load rate:200 --stall-after 6s --connect-timeout 12s --repeat 1"
sweeps=""

usage() { sed -n '2,10p' "$0"; exit "${1:-0}"; }
command_line="scripts/kernels/run.sh $(printf '%q ' "$@")"
while [ $# -gt 0 ]; do
    case "$1" in
        --install) install=1 ;;
        --update) update=1 ;;
        --kernels) kernels=$2; shift ;;
        --no-host) host=0 ;;
        --out) out=$2; shift ;;
        --timeout) timeout_s=$2; shift ;;
        --smp) smp=$2; shift ;;
        --sweep) sweeps+="${sweeps:+$'\n'}$2"; shift ;;
        --report) shift; exec python3 "$repo/scripts/kernels/report.py" "$@" ;;
        -h|--help) usage 0 ;;
        --) shift; sweeps+="${sweeps:+$'\n'}$*"; break ;;
        *) echo "run.sh: unknown option $1" >&2; usage 2 ;;
    esac
    shift
done
[ -n "$sweeps" ] || sweeps=$default_sweeps

say() { echo "kernels: $*" >&2; }
die() { echo "kernels: error: $*" >&2; exit 1; }

# --- 1. tools -------------------------------------------------------------
if [ "$install" = 1 ]; then
    say "installing qemu-system-x86, busybox-static, cpio, python3 from Debian (apt-get)"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        qemu-system-x86 busybox-static cpio python3
fi
for tool in qemu-system-x86_64 cpio dpkg-deb apt-get apt-cache gzip base64 tar python3; do
    command -v "$tool" >/dev/null ||
        die "$tool is missing: run with --install, or: apt-get update && apt-get install qemu-system-x86 busybox-static cpio"
done
# Dynamically linked programs list their libraries ("lib… => /path") under ldd.
is_static() { ! ldd "$1" 2>&1 | grep -q '=>'; }
busybox=$(command -v busybox || echo /bin/busybox)
[ -x "$busybox" ] || die "busybox is missing: apt-get install busybox-static"
is_static "$busybox" || die "busybox at $busybox is dynamically linked: apt-get install busybox-static"

# --- 2. a static acceptbench ----------------------------------------------
say "building a static acceptbench (glibc, crt-static) in $target_dir"
rev=$(cd "$repo" && git rev-parse HEAD 2>/dev/null || echo unknown)
[ -z "$(cd "$repo" && git status --porcelain --untracked-files=no 2>/dev/null)" ] || rev="$rev-dirty"
(cd "$repo" && ACCEPTBENCH_GIT_REV="$rev" RUSTFLAGS='-C target-feature=+crt-static' \
    CARGO_TARGET_DIR="$target_dir" \
    cargo build --release --target x86_64-unknown-linux-gnu --bin acceptbench)
bin="$target_dir/x86_64-unknown-linux-gnu/release/acceptbench"
is_static "$bin" || die "$bin is dynamically linked; it would not start in the busybox guest"

# --- 3. kernels from Debian, through a private apt configuration -------------
# The host's /etc/apt is neither read for sources nor changed: bullseye, bookworm,
# trixie-backports and sid are listed in $cache/apt/sources.list only.
apt_conf=$(kernels_write_apt_config "$cache/apt")
if [ "$update" = 1 ] || ! ls "$cache/apt/lists/"*_Packages* >/dev/null 2>&1; then
    say "apt-get update with the private configuration $apt_conf"
    APT_CONFIG=$apt_conf apt-get update -q >&2
fi
cloud_list=$(APT_CONFIG=$apt_conf apt-cache search --names-only -- '-cloud-amd64')

fetch_kernel() {   # series → "package vmlinuz" of the newest one that downloads
    local pkg dir img
    while read -r pkg; do
        [ -n "$pkg" ] || continue
        dir="$cache/$pkg"
        if ! img=$(kernels_find_image "$dir"); then
            if ! ls "$cache/${pkg}"_*.deb >/dev/null 2>&1 &&
               ! (cd "$cache" && APT_CONFIG=$apt_conf apt-get download -q "$pkg" >&2); then
                say "$pkg: download failed, trying the next older one"
                continue
            fi
            mkdir -p "$dir"
            dpkg-deb -x "$cache/${pkg}"_*.deb "$dir"
            rm -f "$cache/${pkg}"_*.deb
            img=$(kernels_find_image "$dir") || { say "$pkg: no kernel image inside"; continue; }
        fi
        echo "$pkg $img"
        return 0
    done < <(kernels_candidates "$1" <<< "$cloud_list")
    return 1
}

# --- 4. initramfs -----------------------------------------------------------
initrd="$cache/acceptbench-initrd.cpio.gz"
make_initrd() {
    local root
    root=$(mktemp -d)
    mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp}
    cp "$busybox" "$root/bin/busybox"
    # Without debug info the initramfs is a fraction of the size.
    strip -o "$root/acceptbench" "$bin" 2>/dev/null || cp "$bin" "$root/acceptbench"
    cp "$repo/scripts/kernels/init.sh" "$root/init"
    chmod 755 "$root/init"
    printf '%s\n' "$sweeps" > "$root/sweep-args"
    mkdir -p "$cache"
    (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$initrd"
    rm -rf "$root"
}

# --- 5. boot, run, collect ------------------------------------------------
# Extracts the results tar between the marker lines of a serial log into $out.
extract() {
    local serial=$1
    grep -q '^ACCEPTBENCH-RESULTS-END' "$serial" || return 1
    sed -n '/^ACCEPTBENCH-RESULTS-BEGIN/,/^ACCEPTBENCH-RESULTS-END/p' "$serial" |
        sed '1d;$d' | tr -d '\r' | base64 -d | tar -C "$out" -xf - --no-same-owner
}

boot() {   # vmlinuz label package → prints the new run directories
    local vmlinuz=$1 label=$2 pkg=$3
    local log="$cache/$label.console.log" serial="$cache/$label.serial"
    rm -f "$serial"
    say "booting $label under QEMU TCG ($smp vCPUs, ${mem} MiB); console in $log"
    local t0=$SECONDS
    timeout --foreground "$timeout_s" qemu-system-x86_64 -accel tcg -cpu max -smp "$smp" -m "$mem" \
        -nodefaults -display none -no-reboot \
        -serial stdio -serial "file:$serial" \
        -kernel "$vmlinuz" -initrd "$initrd" \
        -append "console=ttyS0 quiet panic=-1" </dev/null >"$log" 2>&1 ||
        say "qemu ended with status $? (124 = --timeout $timeout_s s reached)"
    say "$label: $((SECONDS - t0)) s in the guest"
    mkdir -p "$out"
    local before d
    before=$(ls "$out")
    extract "$serial" || { say "$label: no results on the serial port; see $log"; return 1; }
    for d in $(comm -13 <(echo "$before") <(ls "$out")); do
        # Which Debian package the guest kernel came from, for the report.
        printf '%s\n' "$pkg" > "$out/$d/kernel-package"
        echo "$d"
    done
}

make_initrd
new_runs=()
for series in $kernels; do
    fetched=$(fetch_kernel "$series") || die "no Debian cloud kernel package for $series could be fetched"
    pkg=${fetched%% *}
    while read -r d; do
        [ -n "$d" ] && new_runs+=("$out/$d")
    done < <(boot "${fetched#* }" "$pkg" "$pkg" || true)
done

host_runs=()
if [ "$host" = 1 ]; then
    say "running the same sweeps on the host ($(uname -r))"
    while read -r line; do
        [ -n "$line" ] || continue
        host_out=$(mktemp -d)
        # shellcheck disable=SC2086 # one sweep's arguments, split on purpose
        "$bin" sweep $line --no-plots --quiet --out "$host_out" || say "host sweep exited with $?"
        for d in "$host_out"/*/; do
            [ -d "$d" ] || continue
            "$bin" probe --json > "$d/probe.json"
            mv "$d" "$out/"
            host_runs+=("$out/$(basename "$d")")
        done
        rmdir "$host_out" 2>/dev/null || true
    done <<< "$sweeps"
    new_runs=("${host_runs[@]}" "${new_runs[@]}")
fi

# --- 6. the report --------------------------------------------------------
[ "${#new_runs[@]}" -ge 1 ] || die "no run was collected"
report_into=${new_runs[0]}
{
    printf '\n## Five years of kernels: capabilities, behaviour, speed ratios\n\n'
    # shellcheck disable=SC2016 # the backquotes are Markdown
    printf 'Made by `%s` (git `%s`); the guests ran under QEMU TCG (software emulation). Report alone, again: `scripts/kernels/run.sh --report %s`.\n\n' \
        "${command_line% }" "$rev" "$(for r in "${new_runs[@]}"; do printf '%s ' "${r#"$repo"/}"; done)"
    python3 "$repo/scripts/kernels/report.py" "${new_runs[@]}"
} > "$report_into/kernels.md"
cat "$report_into/kernels.md" >> "$report_into/README.md"
say "report appended to $report_into/README.md (also $report_into/kernels.md)"
printf '%s\n' "${new_runs[@]}"
