#!/usr/bin/env bash
# Mask agreement of our models on 64-bit ARM, under QEMU user-mode emulation.
#
# Builds (or reuses) an arm64 Debian bookworm chroot, copies this working tree
# into it (uncommitted changes included: git-tracked and untracked-but-not-ignored
# files), installs it there with `pip install -e .` in a venv as a user would
# (openvino's aarch64 wheel from PyPI), and runs scripts/agreement.py inside.
# Not part of CI: it needs root, Debian's and PyPI's servers, and about 20
# minutes on 2 cores (most of it the chroot build, which a second run reuses).
#
#   sudo scripts/arm64-check.sh [agreement.py arguments...]   # default: tests/data/heldout
#   sudo QEMU_CPU=cortex-a72 scripts/arm64-check.sh           # Raspberry Pi 4's core (Pi 5: cortex-a76)
#
# Environment:
#   ARM64_ROOT     the chroot (default /var/tmp/edgeportrait-arm64); reused if complete
#   QEMU_CPU       CPU model QEMU emulates (default: QEMU's own, "max"); passed into the chroot
#   DEBIAN_MIRROR  default http://deb.debian.org/debian
#   ARM64_JSON     also write agreement.py's JSON here (a path on this machine)
#   PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST, PIP_DEFAULT_TIMEOUT, http_proxy,
#   https_proxy, no_proxy (and upper-case forms): passed into the chroot when set.
#
# This machine's extra CA certificates (/usr/local/share/ca-certificates/*.crt)
# go into the chroot's trust store, for TLS-intercepting proxies. Its pip
# configuration is not copied: find-links and file:// indexes point at x86
# wheels on this machine's disk, which the chroot neither has nor can use.
# Paths given to agreement.py (--data DIR, --json FILE) are read inside the
# chroot: a relative --data is taken relative to the copied tree.
set -euo pipefail

ROOT="${ARM64_ROOT:-/var/tmp/edgeportrait-arm64}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
REPO="$(cd "$(dirname "$0")/.." && pwd)"
SRC=/opt/edgeportrait/src      # inside the chroot
VENV=/opt/edgeportrait/venv    # inside the chroot; kept between runs
MARK="$ROOT/.edgeportrait-chroot-ok"
CPU_LABEL="${QEMU_CPU:-max (QEMU default)}"

log() { printf '[arm64-check %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap, mount and chroot need it)"
[ "$(uname -m)" = x86_64 ] || log "warning: written for an x86_64 host, this is $(uname -m)"

declare -A SECS
stage_start() { STAGE="$1"; T0=$(date +%s); log "== $1"; }
stage_end() { SECS[$STAGE]=$(( $(date +%s) - T0 )); log "== $STAGE done in ${SECS[$STAGE]} s"; }

# --- 1. host tools and binfmt ------------------------------------------------------------
stage_start host
need=()
for p in qemu-user-static binfmt-support debootstrap; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
BINFMT=/proc/sys/fs/binfmt_misc
[ -e "$BINFMT/register" ] || mount -t binfmt_misc binfmt_misc "$BINFMT"
if [ ! -e "$BINFMT/qemu-aarch64" ]; then
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
fi
if [ ! -e "$BINFMT/qemu-aarch64" ]; then
    # by hand, as qemu-user-static's binfmt-support entry does it; F: the kernel opens the
    # interpreter now, so it needs no copy inside the chroot
    log "registering qemu-aarch64 with binfmt_misc by hand"
    magic='\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
    mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
    echo ":qemu-aarch64:M::$magic:$mask:/usr/bin/qemu-aarch64-static:F" >"$BINFMT/register"
fi
grep -qx enabled "$BINFMT/qemu-aarch64" || echo 1 >"$BINFMT/qemu-aarch64"
grep -qx enabled "$BINFMT/status" || echo 1 >"$BINFMT/status"
log "binfmt: $(head -2 "$BINFMT/qemu-aarch64" | tr '\n' ' ')"
stage_end

# --- mounts (removed on exit) --------------------------------------------------------------
MOUNTED=()
cleanup() {
    local i
    # newest first; a path may be listed twice (debootstrap's second stage unmounts what it
    # mounted over ours, and we mount again), so only what is still mounted
    for (( i=${#MOUNTED[@]}-1; i>=0; i-- )); do
        mountpoint -q "${MOUNTED[$i]}" || continue
        umount -l "${MOUNTED[$i]}" || log "warning: could not unmount ${MOUNTED[$i]}"
    done
}
trap cleanup EXIT
mount_into_chroot() {
    local what
    for what in proc sys dev dev/pts; do
        mountpoint -q "$ROOT/$what" && continue
        mkdir -p "$ROOT/$what"
        case $what in
            proc) mount -t proc proc "$ROOT/proc" ;;
            sys) mount --bind /sys "$ROOT/sys"; mount -o remount,bind,ro "$ROOT/sys" ;;
            dev) mount --bind /dev "$ROOT/dev" ;;
            dev/pts) mount --bind /dev/pts "$ROOT/dev/pts" ;;
        esac
        MOUNTED+=("$ROOT/$what")
    done
}

# The chroot's environment: a clean one, plus what pip may need and QEMU_CPU.
CHROOT_ENV=(HOME=/root LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
            PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1)
for v in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST PIP_DEFAULT_TIMEOUT \
         http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY QEMU_CPU; do
    [ -n "${!v:-}" ] && CHROOT_ENV+=("$v=${!v}")
done
in_chroot() { env -i "${CHROOT_ENV[@]}" chroot "$ROOT" "$@"; }

if [ -n "${QEMU_CPU:-}" ]; then
    # fail early on a CPU name this QEMU does not know
    if [ -x "$ROOT/bin/true" ] && ! QEMU_CPU="$QEMU_CPU" chroot "$ROOT" /bin/true 2>/dev/null; then
        die "QEMU does not know CPU '$QEMU_CPU' (qemu-aarch64-static -cpu help lists them)"
    fi
fi

# --- 2. the arm64 chroot --------------------------------------------------------------------
stage_start chroot
if [ -e "$MARK" ]; then
    log "reusing the chroot at $ROOT"
else
    if [ -d "$ROOT" ] && [ -n "$(ls -A "$ROOT" 2>/dev/null)" ]; then
        die "$ROOT exists but is not a finished chroot (no $MARK): remove it (check first that nothing is mounted under it) or set ARM64_ROOT"
    fi
    mkdir -p "$ROOT"
    log "debootstrap $SUITE arm64 into $ROOT from $MIRROR (first stage)"
    debootstrap --arch=arm64 --foreign --variant=minbase \
        --include=python3,python3-venv,python3-pip,ca-certificates \
        "$SUITE" "$ROOT" "$MIRROR" >"$ROOT.debootstrap.log" 2>&1 \
        || { tail -20 "$ROOT.debootstrap.log" >&2; die "debootstrap (first stage) failed; log: $ROOT.debootstrap.log"; }
    log "second stage, emulated"
    mount_into_chroot
    env -i "${CHROOT_ENV[@]}" chroot "$ROOT" /debootstrap/debootstrap --second-stage >>"$ROOT.debootstrap.log" 2>&1 \
        || { tail -20 "$ROOT.debootstrap.log" >&2; die "debootstrap (second stage) failed; log: $ROOT.debootstrap.log"; }
    touch "$MARK"
fi
mount_into_chroot
# network and trust: refreshed on every run, the host's may have changed
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
cp /etc/hosts "$ROOT/etc/hosts"
CA_DIR=usr/local/share/ca-certificates
mkdir -p "$ROOT/$CA_DIR"
# update-ca-certificates takes half a minute emulated: only when the set changed
if ! diff -rq "/$CA_DIR" "$ROOT/$CA_DIR" >/dev/null 2>&1 || [ ! -e "$ROOT/etc/ssl/certs/.edgeportrait-updated" ]; then
    find "$ROOT/$CA_DIR" -name '*.crt' -delete
    if compgen -G "/$CA_DIR/*.crt" >/dev/null; then
        cp "/$CA_DIR"/*.crt "$ROOT/$CA_DIR/"
    fi
    in_chroot update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates failed in the chroot"
    touch "$ROOT/etc/ssl/certs/.edgeportrait-updated"
    log "CA certificates: $(cd "$ROOT/$CA_DIR" && echo *.crt)"
fi
# shellcheck disable=SC2016  # expanded inside the chroot
log "chroot: $(in_chroot uname -m), $(in_chroot sh -c '. /etc/os-release; echo "$PRETTY_NAME"'), $(in_chroot python3 -V), $(in_chroot ldd --version | head -1)"
stage_end

# --- 3. the project, installed as a user would ----------------------------------------------
stage_start install
rm -rf "$ROOT$SRC"
mkdir -p "$ROOT$SRC"
# the working tree: tracked files that still exist, and untracked ones that are not ignored
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
    | tar --null -T - -cf -) | tar -xf - -C "$ROOT$SRC"
log "copied $(cd "$REPO" && git rev-parse --short HEAD)$(cd "$REPO" && git diff --quiet HEAD -- . || echo '+uncommitted changes') ($(du -sh "$ROOT$SRC" | cut -f1))"
[ -x "$ROOT$VENV/bin/python" ] || in_chroot python3 -m venv "$VENV"
in_chroot sh -c "cd $SRC && $VENV/bin/python -m pip install -q -e ." \
    || die "pip install -e . failed in the chroot"
log "installed: $(in_chroot "$VENV/bin/python" -c 'import openvino, numpy, cv2; print("openvino", openvino.__version__, "numpy", numpy.__version__, "opencv", cv2.__version__)')"
stage_end

# --- 4./5. the check ------------------------------------------------------------------------
stage_start check
in_chroot "$VENV/bin/python" - "$CPU_LABEL" <<'EOF'
import platform, sys
import openvino as ov
# AT_HWCAP from the (QEMU-provided) auxiliary vector: which ARMv8 features the emulated CPU has
names = ["fp", "asimd", "evtstrm", "aes", "pmull", "sha1", "sha2", "crc32", "atomics", "fphp", "asimdhp",
         "cpuid", "asimdrdm", "jscvt", "fcma", "lrcpc", "dcpop", "sha3", "sm3", "sm4", "asimddp", "sha512",
         "sve", "asimdfhm", "dit", "uscat", "ilrcpc", "flagm", "ssbs", "sb", "paca", "pacg"]
auxv = open("/proc/self/auxv", "rb").read()
hwcap = next((int.from_bytes(auxv[i + 8:i + 16], "little") for i in range(0, len(auxv), 16)
              if int.from_bytes(auxv[i:i + 8], "little") == 16), 0)
core = ov.Core()
print(f"arm64 under QEMU ({sys.argv[1]}): machine {platform.machine()}, "
      f"OpenVINO's CPU name {core.get_property('CPU', 'FULL_DEVICE_NAME')!r} (read from the host's /proc/cpuinfo)",
      file=sys.stderr)
print("HWCAP: " + " ".join(n for i, n in enumerate(names) if hwcap >> i & 1), file=sys.stderr)
EOF
JSON_IN=/tmp/edgeportrait-agreement.json
rm -f "$ROOT$JSON_IN"
# shellcheck disable=SC2016  # expanded by the chroot's sh
in_chroot sh -c 'cd "$0" && exec "$@"' "$SRC" "$VENV/bin/python" scripts/agreement.py \
    --label "arm64 under QEMU ($CPU_LABEL)" --json "$JSON_IN" "$@"
if [ -n "${ARM64_JSON:-}" ] && [ -e "$ROOT$JSON_IN" ]; then
    cp "$ROOT$JSON_IN" "$ARM64_JSON"
    log "JSON: $ARM64_JSON"
fi
stage_end

log "wall time: host ${SECS[host]} s, chroot ${SECS[chroot]} s, install ${SECS[install]} s, check ${SECS[check]} s"
