# shellcheck shell=bash
# Functions of scripts/kernels/run.sh that need no emulator, no network and no
# root, so that tests/kernels_script.rs can call them on fixture text and
# directories:  bash -c '. scripts/kernels/lib.sh; kernels_pick_package 6.1 < list'
#
# Naming of Debian's cloud kernels (amd64):
#   up to 6.12 (bullseye, bookworm):  linux-image-<ver>-cloud-amd64-unsigned,
#       the image at boot/vmlinuz-<ver>;
#   from the 2025/26 packaging on (trixie-backports, sid; 7.x):
#       linux-binary-unsigned-<ver>-cloud-amd64, the image at
#       usr/lib/modules/<ver>/vmlinuz.unsigned; linux-image-<ver>-cloud-amd64 is
#       then a ~2 kB metapackage that only depends on it.

# Suites the private apt configuration reads: bullseye (5.10), bookworm (6.1,
# 6.12), trixie-backports and sid (the newest). Each line: URI suite.
KERNELS_SUITES=${KERNELS_SUITES:-"http://deb.debian.org/debian bullseye
http://deb.debian.org/debian-security bullseye-security
http://deb.debian.org/debian bookworm
http://deb.debian.org/debian-security bookworm-security
http://deb.debian.org/debian trixie-backports
http://deb.debian.org/debian sid"}
KERNELS_KEYRING=${KERNELS_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}

# kernels_write_apt_config DIR — writes DIR/apt.conf, DIR/sources.list and the
# empty state/cache directories of a private apt setup, and prints the path of
# apt.conf. Use it as APT_CONFIG=$(…) apt-get update / apt-cache / apt-get
# download: the host's /etc/apt/sources.list{,.d}, preferences and package lists
# are neither read nor written (its apt.conf.d, e.g. a proxy, still applies).
kernels_write_apt_config() {
    local dir=$1
    mkdir -p "$dir/lists/partial" "$dir/archives/partial" "$dir/sources.list.d" \
        "$dir/preferences.d" || return 1
    : > "$dir/status"
    local uri suite
    while read -r uri suite; do
        [ -n "$suite" ] || continue
        printf 'deb [arch=amd64 signed-by=%s] %s %s main\n' "$KERNELS_KEYRING" "$uri" "$suite"
    done <<< "$KERNELS_SUITES" > "$dir/sources.list"
    cat > "$dir/apt.conf" <<EOF
// Private apt configuration of scripts/kernels (see lib.sh); not the host's.
Dir::State "$dir";
Dir::State::Lists "$dir/lists";
Dir::State::status "$dir/status";
Dir::Cache "$dir";
Dir::Cache::archives "$dir/archives";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Dir::Etc::sourcelist "$dir/sources.list";
Dir::Etc::sourceparts "$dir/sources.list.d";
Dir::Etc::preferences "$dir/preferences";
Dir::Etc::preferencesparts "$dir/preferences.d";
APT::Architectures { "amd64"; };
APT::Get::List-Cleanup "false";
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled "false";
Acquire::Check-Valid-Until "false";
EOF
    echo "$dir/apt.conf"
}

# kernels_version_of PACKAGE — the kernel version inside a cloud package name.
kernels_version_of() {
    case "$1" in
        linux-image-*-cloud-amd64-unsigned)
            local v=${1#linux-image-}; echo "${v%-cloud-amd64-unsigned}" ;;
        linux-binary-unsigned-*-cloud-amd64)
            local v=${1#linux-binary-unsigned-}; echo "${v%-cloud-amd64}" ;;
        *) return 1 ;;
    esac
}

# kernels_candidates SERIES < apt-cache-output — the cloud kernel packages of
# SERIES ("5.10", "6.1", "6.12", "7"), newest first, from `apt-cache search` or
# `apt-cache pkgnames` output on stdin (first word of each line), in either
# packaging. SERIES "newest" takes all of them; an exact package name is printed
# as it is. A mirror may list a package whose file is gone (bullseye-security
# did), so run.sh tries them in this order.
kernels_candidates() {
    local series=$1
    case "$series" in
        linux-image-*|linux-binary-*) echo "$series"; return 0 ;;
    esac
    local name ver
    while read -r name _; do
        ver=$(kernels_version_of "$name") || continue
        if [ "$series" != newest ]; then
            case "$ver" in
                "$series".*|"$series"-*|"$series"+*) ;;
                *) continue ;;
            esac
        fi
        printf '%s %s\n' "$ver" "$name"
    done | sort -V -r -k1,1 | cut -d' ' -f2
}

# kernels_pick_package SERIES < apt-cache-output — the newest of kernels_candidates.
kernels_pick_package() {
    kernels_candidates "$1" | head -n 1
}

# kernels_find_image DIR — the kernel image in a package unpacked into DIR:
# boot/vmlinuz-<ver> (old packaging) or usr/lib/modules/<ver>/vmlinuz.unsigned
# (new), also lib/modules/…/vmlinuz. Prints nothing and fails when there is none.
kernels_find_image() {
    local dir=$1 f
    for f in "$dir"/boot/vmlinuz-* "$dir"/usr/lib/modules/*/vmlinuz.unsigned \
             "$dir"/usr/lib/modules/*/vmlinuz "$dir"/lib/modules/*/vmlinuz.unsigned \
             "$dir"/lib/modules/*/vmlinuz; do
        if [ -f "$f" ]; then
            echo "$f"
            return 0
        fi
    done
    return 1
}
