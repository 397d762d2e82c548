#!/usr/bin/env bash
# Prove the device runner on a Raspberry Pi OS-like userland (Debian bookworm, arm64) under
# qemu-user emulation, and compare its predictions with the same run on this x86 host.
#
#   sudo scripts/check_aarch64.sh [--rebuild] [--keep] MODEL [MODEL...] -- IMAGE [IMAGE...]
#
# Every MODEL runs on every IMAGE, with `python -m edgetl.runtime MODEL IMAGE... --top-k 3 --json`
# on the host (the project's .venv) and inside the arm64 chroot. Exit 0 only if, for every model
# and image, the two agree under the golden-vector rule (edgetl.runtime.golden.tolerance_for):
# a float model's top-3 indices equal and scores within 1e-5; a quantized model's top-1 equal and
# scores within 12 output steps (ARM and x86 int8 kernels round differently); exit 1 on a
# mismatch; exit 2 on bad usage or a setup failure.
#
# What it does (needs root: apt-get, mount, chroot, binfmt_misc):
#   1. apt-get installs qemu-user-static, binfmt-support, zstd and the rootfs builder (mmdebstrap
#      and arch-test, or debootstrap) if missing; mounts binfmt_misc and enables qemu-aarch64.
#   2. Unpacks the cached rootfs tarball $EDGETL_AARCH64_CACHE/rootfs-$ROOTFS_KEY.tar.zst, or
#      builds it once (--variant=minbase; the packages' maintainer scripts run under qemu: minutes)
#      and writes the tarball atomically. The tarball holds only Debian packages
#      (python3, python3-venv, ca-certificates); edgetl and its wheels are installed fresh on
#      every run, exactly as docs/raspberry-pi.md tells users.
#   3. Mounts /proc, /sys, /dev, binds a Raspberry Pi 4 /proc/cpuinfo over /proc/cpuinfo
#      (LiteRT's CPU detection crashes on the host's x86 cpuinfo, and without /proc XNNPACK is
#      skipped and scores change), copies in the host's CA bundle and resolv.conf, and sets
#      QEMU_CPU=cortex-a72 so the emulated CPU features are a Pi 4's.
#   4. Copies the working tree to /src/edgetl and follows docs/raspberry-pi.md's steps: builds
#      the wheel there with the host python (`python -m pip wheel --no-deps -w dist .`), copies it
#      to the chroot's ~, then python3 -m venv ~/edgetl-venv;
#      ~/edgetl-venv/bin/pip install ~/"edgetl-VERSION-py3-none-any.whl[runtime]"; runs the runner
#      and the installed `edgetl predict`; compares. `edgetl train` must say what to install.
# Mounts are always undone (trap), and the scratch rootfs is deleted unless --keep.
#
# Environment:
#   EDGETL_AARCH64_CACHE   cache directory (default /var/cache/edgetl)
#   EDGETL_AARCH64_MIRROR  Debian mirror for the rootfs (default: the host's apt bookworm source)
#   EDGETL_AARCH64_BUILDER mmdebstrap (default) or debootstrap (--foreign, then --second-stage
#                          under qemu). Measured here from nothing, on the same busy 2-core host:
#                          mmdebstrap 4.0 min, debootstrap 8.9 min; idle, debootstrap took 3.9 min.
#   EDGETL_HOST_PYTHON     host interpreter with edgetl installed (default: <repo>/.venv/bin/python)
#
# Timings printed here are of an emulated CPU on this host: they are NOT Raspberry Pi timings.
set -euo pipefail

# Bump when the rootfs recipe below changes: a new key builds a new tarball.
ROOTFS_VERSION=1
SUITE=bookworm
ARCH=arm64
INCLUDE=python3,python3-venv,ca-certificates
BUILDER=${EDGETL_AARCH64_BUILDER:-mmdebstrap}
ROOTFS_KEY="${SUITE}-${ARCH}-minbase-py3venv-${BUILDER}-v${ROOTFS_VERSION}"
TOP_K=3

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
CACHE_DIR=${EDGETL_AARCH64_CACHE:-/var/cache/edgetl}
TARBALL="$CACHE_DIR/rootfs-$ROOTFS_KEY.tar.zst"
HOST_PY=${EDGETL_HOST_PYTHON:-$REPO/.venv/bin/python}

log() { printf '[check_aarch64 %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'check_aarch64: error: %s\n' "$*" >&2; exit 2; }
usage() {
    sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------- arguments
REBUILD=0
KEEP=0
MODELS=()
IMAGES=()
seen_sep=0
for arg in "$@"; do
    if [ "$seen_sep" = 0 ]; then
        case "$arg" in
            -h|--help) usage ;;
            --rebuild) REBUILD=1 ;;
            --keep) KEEP=1 ;;
            --) seen_sep=1 ;;
            -*) die "unknown option: $arg (see --help)" ;;
            *) MODELS+=("$arg") ;;
        esac
    else
        IMAGES+=("$arg")
    fi
done
[ "${#MODELS[@]}" -gt 0 ] && [ "${#IMAGES[@]}" -gt 0 ] \
    || die "usage: $0 [--rebuild] [--keep] MODEL [MODEL...] -- IMAGE [IMAGE...]"
[ "$(id -u)" = 0 ] || die "must run as root (it uses apt-get, mount, chroot and binfmt_misc): sudo $0 $*"
for f in "${MODELS[@]}" "${IMAGES[@]}"; do
    [ -f "$f" ] || die "no such file: $f"
done
[ -x "$HOST_PY" ] || die "host python not found: $HOST_PY (run scripts/setup.sh, or set EDGETL_HOST_PYTHON)"
[ -f "$REPO/edgetl/runtime/__main__.py" ] || die "$REPO/edgetl/runtime/__main__.py is missing: nothing to run"

case "$BUILDER" in
    mmdebstrap) BUILDER_TOOLS=(mmdebstrap:mmdebstrap arch-test:arch-test) ;;
    debootstrap) BUILDER_TOOLS=(debootstrap:debootstrap) ;;
    *) die "EDGETL_AARCH64_BUILDER must be mmdebstrap or debootstrap. Received: $BUILDER" ;;
esac
T_START=$(now)

# ---------------------------------------------------------------- host tools
have() { local p; p=$(command -v "$1") && [ -f "$p" ] && [ -x "$p" ]; }
# command:package pairs
TOOLS=(qemu-aarch64-static:qemu-user-static update-binfmts:binfmt-support zstd:zstd "${BUILDER_TOOLS[@]}")
HOST_PACKAGES=("${TOOLS[@]#*:}")
missing=()
for tool in "${TOOLS[@]}"; do have "${tool%%:*}" || missing+=("${tool#*:}"); done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]} with apt-get"
    t=$(now)
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/edgetl-aarch64-apt.log 2>&1; then
        apt-get update -q >>/tmp/edgetl-aarch64-apt.log 2>&1 || true
        apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/edgetl-aarch64-apt.log 2>&1 \
            || { tail -n 15 /tmp/edgetl-aarch64-apt.log >&2
                 die "apt-get could not install ${missing[*]} (needed: ${HOST_PACKAGES[*]}); log: /tmp/edgetl-aarch64-apt.log"; }
    fi
    log "apt-get done in $(elapsed "$t") s"
fi
for tool in "${TOOLS[@]}"; do
    have "${tool%%:*}" || die "${tool%%:*} is still missing after installing package ${tool#*:}"
done

# ---------------------------------------------------------------- binfmt_misc
BINFMT=/proc/sys/fs/binfmt_misc
if [ ! -e "$BINFMT/register" ]; then
    mount -t binfmt_misc binfmt_misc "$BINFMT" \
        || die "cannot mount binfmt_misc on $BINFMT (in a container it must be privileged)"
fi
if [ ! -e "$BINFMT/qemu-aarch64" ]; then
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
fi
if [ ! -e "$BINFMT/qemu-aarch64" ]; then
    # binfmt-support could not do it (e.g. no /usr/share/binfmts entry): register by hand, with
    # the F flag so the interpreter is opened now and needs no copy inside the chroot.
    printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F' \
        >"$BINFMT/register" || die "cannot register qemu-aarch64 in binfmt_misc"
fi
grep -qx enabled "$BINFMT/qemu-aarch64" || echo 1 >"$BINFMT/qemu-aarch64"
grep -qx enabled "$BINFMT/qemu-aarch64" || die "binfmt_misc entry qemu-aarch64 exists but is disabled"
QEMU_INTERP=$(awk '$1 == "interpreter" { print $2 }' "$BINFMT/qemu-aarch64")
QEMU_FLAGS=$(awk '$1 == "flags:" { print $2 }' "$BINFMT/qemu-aarch64")
log "binfmt_misc: qemu-aarch64 enabled (interpreter $QEMU_INTERP, flags ${QEMU_FLAGS:-none})"

# ---------------------------------------------------------------- scratch dir, cleanup
WORK=$(mktemp -d /var/tmp/edgetl-aarch64.XXXXXX)
ROOT="$WORK/rootfs"
mkdir -p "$ROOT"
MOUNTS=()   # mount points in the order they were mounted

cleanup() {
    local rc=$? i
    set +e
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" 2>/dev/null \
            || printf 'check_aarch64: warning: could not unmount %s\n' "${MOUNTS[i]}" >&2
    done
    if grep -q " $ROOT/" /proc/self/mounts 2>/dev/null; then
        printf 'check_aarch64: warning: mounts remain under %s; not deleting it\n' "$ROOT" >&2
    elif [ "$KEEP" = 1 ]; then
        log "kept $WORK (delete it with: rm -rf --one-file-system $WORK)"
    else
        rm -rf --one-file-system "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

bind() {  # bind SRC DST [ro]
    if [ -d "$1" ]; then mkdir -p "$2"; elif [ ! -e "$2" ]; then touch "$2"; fi
    mount --bind "$1" "$2"
    MOUNTS+=("$2")
    if [ "${3:-}" = ro ]; then mount -o remount,bind,ro "$2"; fi
}

# Run a command in the chroot with a clean environment: none of the host's pip settings
# (x86 find-links, constraints, local indexes) leak in; only proxy settings do.
chroot_env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
            LANG=C.UTF-8 QEMU_CPU=cortex-a72 PIP_DISABLE_PIP_VERSION_CHECK=1)
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    [ -n "${!v:-}" ] && chroot_env+=("$v=${!v}")
done
in_chroot() { env -i "${chroot_env[@]}" chroot "$ROOT" "$@"; }

# ---------------------------------------------------------------- rootfs
host_mirror() {
    local m
    m=$(grep -hs -A3 '^Types:.*deb' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '/^URIs:/ { u = $2 } /^Suites:/ && / bookworm( |$)/ { print u; exit }')
    [ -n "$m" ] || m=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
    echo "${m:-http://deb.debian.org/debian}"
}

build_rootfs() {
    local mirror t tmp keyring=()
    mirror=${EDGETL_AARCH64_MIRROR:-$(host_mirror)}
    [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] \
        && keyring=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
    local stamp="$ROOTFS_KEY built $(date -u +%FT%TZ) by $BUILDER from $mirror"
    mkdir -p "$CACHE_DIR"
    tmp="$CACHE_DIR/.tmp.$$.rootfs.tar.zst"
    t=$(now)
    if [ "$BUILDER" = mmdebstrap ]; then
        log "building the $ROOTFS_KEY rootfs with mmdebstrap from $mirror (maintainer scripts under qemu: minutes)"
        mmdebstrap --mode=root --variant=minbase --arch="$ARCH" --include="$INCLUDE" "${keyring[@]}" \
            --customize-hook="echo '$stamp' > \"\$1/etc/edgetl-rootfs\"" \
            "$SUITE" "$tmp" "$mirror" >"$WORK/build.log" 2>&1 \
            || { rm -f "$tmp"; tail -n 20 "$WORK/build.log" >&2; die "mmdebstrap failed (log above)"; }
    else
        log "building the $ROOTFS_KEY rootfs with debootstrap from $mirror (first stage)"
        debootstrap --arch="$ARCH" --foreign --variant=minbase --include="$INCLUDE" "${keyring[@]}" \
            "$SUITE" "$ROOT" "$mirror" >"$WORK/build.log" 2>&1 \
            || { tail -n 20 "$WORK/build.log" >&2; die "debootstrap (first stage) failed"; }
        log "first stage done in $(elapsed "$t") s; second stage under qemu (several minutes)"
        [[ "$QEMU_FLAGS" == *F* ]] || { mkdir -p "$ROOT$(dirname "$QEMU_INTERP")"; cp "$QEMU_INTERP" "$ROOT$QEMU_INTERP"; }
        in_chroot /debootstrap/debootstrap --second-stage >>"$WORK/build.log" 2>&1 \
            || { tail -n 20 "$WORK/build.log" >&2; die "debootstrap (second stage, under qemu) failed"; }
        in_chroot apt-get clean
        rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin
        [[ "$QEMU_FLAGS" == *F* ]] || rm -f "$ROOT$QEMU_INTERP"
        echo "$stamp" >"$ROOT/etc/edgetl-rootfs"
        tar --numeric-owner --xattrs -C "$ROOT" -cf - . | zstd -q -T0 -10 -o "$tmp" \
            || { rm -f "$tmp"; die "could not write the rootfs tarball $tmp"; }
        find "$ROOT" -mindepth 1 -delete
    fi
    mv -f "$tmp" "$TARBALL" || { rm -f "$tmp"; die "could not write the rootfs cache $TARBALL"; }
    log "built and cached $TARBALL ($(du -h "$TARBALL" | cut -f1)) in $(elapsed "$t") s"
}

unpack_rootfs() {
    zstd -q -dc "$TARBALL" | tar --numeric-owner --xattrs -C "$ROOT" -xf -
}

T_ROOTFS=$(now)
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/.lock"
flock 9   # one builder at a time; a concurrent run waits, then reuses the new tarball
if [ "$REBUILD" = 0 ] && [ -f "$TARBALL" ] && unpack_rootfs; then
    log "unpacked cached rootfs $TARBALL in $(elapsed "$T_ROOTFS") s"
else
    [ -f "$TARBALL" ] && [ "$REBUILD" = 0 ] && { log "cached tarball is unreadable: rebuilding"; rm -f "$TARBALL"; }
    find "$ROOT" -mindepth 1 -delete
    build_rootfs
    unpack_rootfs || die "the freshly built $TARBALL does not unpack"
fi
flock -u 9
exec 9>&-
ROOTFS_S=$(elapsed "$T_ROOTFS")
[ -x "$ROOT/usr/bin/python3" ] || die "the rootfs has no /usr/bin/python3"
[[ "$QEMU_FLAGS" == *F* ]] || { mkdir -p "$ROOT$(dirname "$QEMU_INTERP")"; cp "$QEMU_INTERP" "$ROOT$QEMU_INTERP"; }

# ---------------------------------------------------------------- mounts, network, inputs
mount -t proc proc "$ROOT/proc" && MOUNTS+=("$ROOT/proc")
mount -t sysfs sysfs "$ROOT/sys" && MOUNTS+=("$ROOT/sys")
bind /dev "$ROOT/dev"
# A Raspberry Pi 4 Model B (BCM2711, 4 x Cortex-A72) running a 64-bit kernel.
{
    for cpu in 0 1 2 3; do
        printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$cpu"
        printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n'
    done
    printf 'Hardware\t: BCM2835\nRevision\t: c03114\nSerial\t\t: 10000000deadbeef\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n'
} >"$WORK/cpuinfo"
bind "$WORK/cpuinfo" "$ROOT/proc/cpuinfo" ro
grep -q 'Cortex\|0xd08' "$ROOT/proc/cpuinfo" || die "the ARM cpuinfo is not visible in the chroot"

# pip inside reaches PyPI the way the host does: same CA bundle (a proxy may re-sign TLS) and
# resolver; the host's pip.conf is deliberately NOT copied (its find-links/constraints are x86).
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
[ -f /etc/hosts ] && cp /etc/hosts "$ROOT/etc/hosts"

# The working tree as it is now (tracked and untracked files, not ignored ones such as .venv).
mkdir -p "$ROOT/src/edgetl"
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
        | xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh \
        | tar --null -T - -cf -) | tar -C "$ROOT/src/edgetl" -xf -
else
    tar -C "$REPO" --exclude=./.venv --exclude=./.git --exclude='*.egg-info' --exclude=./build \
        --exclude=./runs --exclude='__pycache__' -cf - . | tar -C "$ROOT/src/edgetl" -xf -
fi
[ -f "$ROOT/src/edgetl/pyproject.toml" ] || die "could not copy the working tree into the chroot"

# Inputs: each file's directory is bound read-only (a model's sidecar files travel with it).
declare -A DIR_OF=()
C_MODELS=(); C_IMAGES=(); H_MODELS=(); H_IMAGES=()
map_input() {  # map_input HOST_FILE: sets H_PATH (absolute, host) and C_PATH (inside the chroot)
    local d
    d=$(cd "$(dirname "$1")" && pwd -P)
    if [ -z "${DIR_OF[$d]:-}" ]; then
        DIR_OF[$d]=/inputs/d${#DIR_OF[@]}
        bind "$d" "$ROOT${DIR_OF[$d]}" ro
    fi
    H_PATH="$d/$(basename "$1")"
    C_PATH="${DIR_OF[$d]}/$(basename "$1")"
}
for f in "${MODELS[@]}"; do map_input "$f"; H_MODELS+=("$H_PATH"); C_MODELS+=("$C_PATH"); done
for f in "${IMAGES[@]}"; do map_input "$f"; H_IMAGES+=("$H_PATH"); C_IMAGES+=("$C_PATH"); done

# ---------------------------------------------------------------- install, as docs/raspberry-pi.md says
T_INSTALL=$(now)
log "python -m pip wheel --no-deps -w dist . (host, in the copied tree)"
(cd "$ROOT/src/edgetl" && "$HOST_PY" -m pip wheel --no-deps -q -w dist .) >"$WORK/wheel.log" 2>&1 \
    || { tail -n 30 "$WORK/wheel.log" >&2; die "building the edgetl wheel failed"; }
WHEELS=("$ROOT"/src/edgetl/dist/edgetl-*-py3-none-any.whl)
[ "${#WHEELS[@]}" = 1 ] && [ -f "${WHEELS[0]}" ] || die "expected one edgetl wheel in dist/, found: ${WHEELS[*]}"
WHEEL=$(basename "${WHEELS[0]}")
cp "${WHEELS[0]}" "$ROOT/root/$WHEEL"   # the scp of docs/raspberry-pi.md
log "python3 -m venv ~/edgetl-venv; ~/edgetl-venv/bin/pip install ~/\"$WHEEL[runtime]\""
if ! in_chroot sh -c 'cd ~ && python3 -m venv ~/edgetl-venv && ~/edgetl-venv/bin/pip install ~/"$1[runtime]"' sh "$WHEEL" \
        >"$WORK/pip.log" 2>&1; then
    tail -n 30 "$WORK/pip.log" >&2
    die "installing $WHEEL[runtime] inside the arm64 chroot failed"
fi
grep '^Successfully installed' "$WORK/pip.log" >&2 || true
in_chroot /root/edgetl-venv/bin/python -c 'import edgetl.runtime, importlib.util as u, sys
bad = [m for m in ("tensorflow", "keras") if u.find_spec(m)]
sys.exit(f"the runtime install pulled in {bad}" if bad else 0)' \
    || die "the runtime-only install inside the chroot is not TensorFlow-free"
VERSIONS='import sys, importlib.metadata as m, edgetl, pathlib
print(f"{pathlib.Path(edgetl.__file__).resolve().parent}|python {sys.version.split()[0]}, " + ", ".join(
    f"{d} {m.version(d)}" for d in ("edgetl", "ai-edge-litert", "numpy", "pillow")))'
ARM_VERSIONS=$(in_chroot /root/edgetl-venv/bin/python -c "$VERSIONS" | cut -d'|' -f2)
HOST_INFO=$(cd / && "$HOST_PY" -c "$VERSIONS") || die "edgetl is not importable by the host python $HOST_PY"
HOST_VERSIONS=${HOST_INFO#*|}
[ "${HOST_INFO%%|*}" = "$REPO/edgetl" ] \
    || die "the host python imports edgetl from ${HOST_INFO%%|*}, not from this tree ($REPO): set EDGETL_HOST_PYTHON"
INSTALL_S=$(elapsed "$T_INSTALL")
log "installed in $INSTALL_S s (emulated)"

# ---------------------------------------------------------------- run and compare
RESULTS="$WORK/results"
mkdir -p "$RESULTS"
T_RUN=$(now)
status=0
for i in "${!MODELS[@]}"; do
    log "model $(basename "${MODELS[i]}"): x86 host"
    if ! (cd / && "$HOST_PY" -m edgetl.runtime "${H_MODELS[i]}" "${H_IMAGES[@]}" --top-k "$TOP_K" --json) \
            >"$RESULTS/$i.x86.json" 2>"$RESULTS/$i.x86.err"; then
        cat "$RESULTS/$i.x86.err" >&2; die "the runner failed on the x86 host for ${MODELS[i]}"
    fi
    log "model $(basename "${MODELS[i]}"): aarch64 chroot"
    if ! in_chroot sh -c 'cd / && exec /root/edgetl-venv/bin/python -m edgetl.runtime "$@"' sh \
            "${C_MODELS[i]}" "${C_IMAGES[@]}" --top-k "$TOP_K" --json \
            >"$RESULTS/$i.aarch64.json" 2>"$RESULTS/$i.aarch64.err"; then
        cat "$RESULTS/$i.aarch64.err" >&2
        log "the runner failed inside the arm64 chroot for ${MODELS[i]}"
        status=1
        : >"$RESULTS/$i.aarch64.json"
    fi
done
# The installed `edgetl` command: predict gives the runner's JSON; train names what to install.
log "edgetl predict (the installed command) in the aarch64 chroot"
in_chroot sh -c 'cd / && exec /root/edgetl-venv/bin/edgetl predict "$@"' sh "${C_MODELS[0]}" "${C_IMAGES[@]}" \
    --top-k "$TOP_K" --json >"$RESULTS/cli.aarch64.json" 2>"$RESULTS/cli.aarch64.err" \
    && cmp -s "$RESULTS/cli.aarch64.json" "$RESULTS/0.aarch64.json" \
    || { cat "$RESULTS/cli.aarch64.err" >&2; log "edgetl predict differs from python -m edgetl.runtime in the chroot"; status=1; }
train_rc=0
in_chroot /root/edgetl-venv/bin/edgetl train /src/edgetl >/dev/null 2>"$RESULTS/train.err" || train_rc=$?
if [ "$train_rc" != 2 ] || ! grep -q "pip install 'edgetl\[full\]'" "$RESULTS/train.err"; then
    cat "$RESULTS/train.err" >&2; log "edgetl train on the runtime install did not say what to install (exit $train_rc)"; status=1
fi
RUN_S=$(elapsed "$T_RUN")

printf '\nx86_64 host:     %s\naarch64 chroot:  %s (qemu-user, QEMU_CPU=cortex-a72, Raspberry Pi 4 cpuinfo)\n' \
    "$HOST_VERSIONS" "$ARM_VERSIONS"
(cd / && "$HOST_PY" - "$RESULTS" "${H_MODELS[@]}") <<'PY' || status=1
import json, sys
from pathlib import Path

from edgetl.runtime import Classifier
from edgetl.runtime.golden import tolerance_for

results, models = Path(sys.argv[1]), sys.argv[2:]
ok_all = True

def load(path):
    try:
        return json.loads(path.read_text()), None
    except (OSError, ValueError) as exc:
        return None, f"no JSON ({exc.__class__.__name__})"

for i, model in enumerate(models):
    x86, e1 = load(results / f"{i}.x86.json")
    arm, e2 = load(results / f"{i}.aarch64.json")
    tolerance = tolerance_for(Classifier.from_file(model))
    print(f"\n== {Path(model).name}  (rule: {tolerance.rule})")
    if e1 or e2 or not x86 or len(x86) != len(arm):
        print(f"   FAIL: x86 {e1 or len(x86)} results, aarch64 {e2 or len(arm)} results")
        ok_all = False
        continue
    print(f"   {'image':<22} {'#':>1}  {'x86 index label score':<42} {'aarch64 index label score':<42} {'|diff|':>8}  ok")
    for a, b in zip(x86, arm):
        name = Path(a["image"]).name
        ka, kb = a["top_k"], b["top_k"]
        rows = max(len(ka), len(kb))
        for r in range(rows):
            pa = ka[r] if r < len(ka) else None
            pb = kb[r] if r < len(kb) else None
            fmt = lambda p: f"{p['index']:>4} {p['label'][:24]:<24} {p['score']:.6f}" if p else "-"
            if pa and pb:
                diff = abs(pa["score"] - pb["score"])
                same = pa["index"] == pb["index"] and pa["label"] == pb["label"]
                ok = (same or (r > 0 and not tolerance.top_k_exact)) and (diff <= tolerance.score_atol or not same)
                d = f"{diff:.1e}"
            else:
                ok, d = False, "-"
            ok_all &= ok
            print(f"   {name if r == 0 else '':<22} {r + 1:>1}  {fmt(pa):<42} {fmt(pb):<42} {d:>8}  {'ok' if ok else 'MISMATCH'}")
        ok_all &= Path(a["image"]).name == Path(b["image"]).name
print()
print("RESULT: aarch64 predictions EQUAL x86 within the golden-vector rule of each model"
      if ok_all else "RESULT: aarch64 predictions DIFFER from x86")
sys.exit(0 if ok_all else 1)
PY

log "times (emulated on $(uname -m), NOT Raspberry Pi timings): rootfs $ROOTFS_S s, install $INSTALL_S s, runs $RUN_S s, total $(elapsed "$T_START") s"
exit "$status"
