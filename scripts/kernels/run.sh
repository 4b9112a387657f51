#!/usr/bin/env bash
# Runs the same acceptbench sweep under other Linux kernels on this machine
# (QEMU software emulation, TCG) and on the host, collects every run under
# results/ and compares them. See scripts/kernels/README.md.
#
#   scripts/kernels/run.sh [--install] [--kernels "6.1 6.12"] [--no-host]
#                          [--out results] [--timeout 1800] [-- SWEEP ARGS…]
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
kernels="6.1 6.12"
host=1
install=0
out="$repo/results"
timeout_s=1800
smp=2
mem=1024
cache="${ACCEPTBENCH_KERNEL_CACHE:-$repo/target/kernels}"
sweep_args=(--engines std,uring,multishot --backlogs 16,128 --modes closed,drain
            --duration 500ms --repeat 3)

usage() { sed -n '2,8p' "$0"; exit "${1:-0}"; }
command_line=$(printf '%q ' "$@")
while [ $# -gt 0 ]; do
    case "$1" in
        --install) install=1 ;;
        --kernels) kernels=$2; shift ;;
        --no-host) host=0 ;;
        --out) out=$2; shift ;;
        --timeout) timeout_s=$2; shift ;;
        --smp) smp=$2; shift ;;
        -h|--help) usage 0 ;;
        --) shift; sweep_args=("$@"); break ;;
        *) echo "run.sh: unknown option $1" >&2; usage 2 ;;
    esac
    shift
done

say() { echo "kernels: $*" >&2; }
die() { echo "kernels: error: $*" >&2; exit 1; }

# --- 1. tools -------------------------------------------------------------
if [ "$install" = 1 ]; then
    say "installing qemu-system-x86, busybox-static, cpio from Debian (apt-get)"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        qemu-system-x86 busybox-static cpio
fi
for tool in qemu-system-x86_64 cpio dpkg-deb apt-get apt-cache gzip base64 tar; do
    command -v "$tool" >/dev/null ||
        die "$tool is missing: run with --install, or: apt-get update && apt-get install qemu-system-x86 busybox-static cpio"
done
# Dynamically linked programs list their libraries ("lib… => /path") under ldd.
is_static() { ! ldd "$1" 2>&1 | grep -q '=>'; }
busybox=$(command -v busybox || echo /bin/busybox)
[ -x "$busybox" ] || die "busybox is missing: apt-get install busybox-static"
is_static "$busybox" || die "busybox at $busybox is dynamically linked: apt-get install busybox-static"

# --- 2. a static acceptbench ----------------------------------------------
say "building a static acceptbench (glibc, crt-static)"
rev=$(cd "$repo" && git rev-parse HEAD 2>/dev/null || echo unknown)
[ -z "$(cd "$repo" && git status --porcelain --untracked-files=no 2>/dev/null)" ] || rev="$rev-dirty"
(cd "$repo" && ACCEPTBENCH_GIT_REV="$rev" RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --target x86_64-unknown-linux-gnu --bin acceptbench)
bin="$repo/target/x86_64-unknown-linux-gnu/release/acceptbench"
is_static "$bin" || die "$bin is dynamically linked; it would not start in the busybox guest"

# --- 3. kernels -------------------------------------------------------------
# Newest Debian cloud kernel of a series ("6.1", "6.12") or an exact package name.
kernel_package() {
    case "$1" in
        linux-image-*) echo "$1"; return ;;
    esac
    local re="^linux-image-${1//./\\.}[.-][0-9][^ ]*-cloud-amd64-unsigned\$"
    apt-cache search --names-only "$re" | awk '{print $1}' | sort -V | tail -n 1
}

fetch_kernel() {   # prints the path of vmlinuz
    local pkg=$1 dir="$cache/$1"
    if ! ls "$dir"/boot/vmlinuz-* >/dev/null 2>&1; then
        mkdir -p "$dir"
        (cd "$cache" && apt-get download "$pkg" >&2)
        dpkg-deb -x "$cache/${pkg}"_*.deb "$dir"
    fi
    ls "$dir"/boot/vmlinuz-* | head -n 1
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
    echo "${sweep_args[*]}" > "$root/sweep-args"
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

boot() {   # vmlinuz label
    local vmlinuz=$1 label=$2
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
    local before
    before=$(ls "$out")
    extract "$serial" || { say "$label: no results on the serial port; see $log"; return 1; }
    comm -13 <(echo "$before") <(ls "$out")
}

make_initrd
new_runs=()
for series in $kernels; do
    pkg=$(kernel_package "$series")
    [ -n "$pkg" ] || die "no Debian cloud kernel package for $series (apt-get update first?)"
    vmlinuz=$(fetch_kernel "$pkg")
    while read -r d; do
        [ -n "$d" ] && new_runs+=("$out/$d")
    done < <(boot "$vmlinuz" "$pkg")
done

if [ "$host" = 1 ]; then
    say "running the same sweep on the host ($(uname -r))"
    host_out=$(mktemp -d)
    "$bin" sweep "${sweep_args[@]}" --no-plots --out "$host_out"
    for d in "$host_out"/*/; do
        mv "$d" "$out/"
        new_runs=("$out/$(basename "$d")" "${new_runs[@]}")
    done
    rmdir "$host_out"
fi

# --- 6. plots and the comparison --------------------------------------------
for d in "${new_runs[@]}"; do
    "$bin" plot "$d" --svg-only >/dev/null || say "plot $d failed"
done
if [ "${#new_runs[@]}" -ge 2 ]; then
    "$bin" compare "${new_runs[@]}" --format markdown | tee "${new_runs[0]}/compare.md"
    "$bin" compare "${new_runs[@]}" --format csv 2>/dev/null > "${new_runs[0]}/compare.csv"
    "$bin" plot "${new_runs[@]}" --svg-only --out "${new_runs[0]}/plots-compare" >/dev/null
    # Side-by-side latency curves (one chart per backlog and mode, a line per engine and
    # kernel) are large; keep the summary charts, draw the rest on demand with `plot`.
    rm -f "${new_runs[0]}/plots-compare"/latency-*
    # The comparison belongs in the host run's README, beside the command that made it.
    {
        printf '\n## Compared with the guest kernels\n\n'
        printf 'Made by `scripts/kernels/run.sh %s`; guests ran under QEMU TCG (software emulation): their speeds are not comparable with the host, their behaviour (engine support, queue limits, overflow counts, SYN retry modes) is. Ratios are to the first column (the host).\n\n' "$command_line"
        cat "${new_runs[0]}/compare.md"
    } >> "${new_runs[0]}/README.md"
    say "comparison in ${new_runs[0]}/compare.md, charts in ${new_runs[0]}/plots-compare/"
fi
printf '%s\n' "${new_runs[@]}"
