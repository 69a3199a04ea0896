#!/usr/bin/env bash
# Make a real container engine (podman) usable on this machine kind and build the
# base image localhost/hpm-base:bookworm. Idempotent; fast (about 0.2 s: one smoke
# container) when everything is already in place.
#
#   success: prints "engine: podman ready", exit 0
#   failure: prints "engine: unavailable: <reason>" (one line), exit 3
#
# Environment:
#   HPM_BASE_IMAGE    image to build        (default localhost/hpm-base:bookworm)
#   HPM_CACHE_DIR     rootfs tarball cache  (default /var/cache/hpm)
#   HPM_DEBIAN_MIRROR debootstrap mirror    (default http://deb.debian.org/debian)
#   HPM_SETUP_LOG     full log of slow steps (default $HPM_CACHE_DIR/setup-engine.log)
# See docker/NOTES.md.
set -u -o pipefail

IMAGE=${HPM_BASE_IMAGE:-localhost/hpm-base:bookworm}
SUITE=bookworm
CACHE_DIR=${HPM_CACHE_DIR:-/var/cache/hpm}
MIRROR=${HPM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CONF=/etc/containers/containers.conf
TARBALL="$CACHE_DIR/rootfs-$SUITE-minbase-python3.tar"
export DEBIAN_FRONTEND=noninteractive

fail() { echo "engine: unavailable: $*"; exit 3; }

mkdir -p "$CACHE_DIR" 2>/dev/null || CACHE_DIR=${TMPDIR:-/tmp}/hpm-cache
mkdir -p "$CACHE_DIR" || fail "cannot create cache dir $CACHE_DIR"
LOG=${HPM_SETUP_LOG:-$CACHE_DIR/setup-engine.log}

# One setup at a time (parallel test workers may all call this).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE_DIR/setup-engine.lock" || fail "cannot open lock file in $CACHE_DIR"
    flock -w 900 9 || fail "timed out waiting for another setup-engine.sh"
fi

run_logged() {  # run a slow step, output to the log; on failure show its tail on stderr
    local t0=$SECONDS
    echo "+ [$(date '+%F %T')] $*" >>"$LOG"
    if ! "$@" >>"$LOG" 2>&1; then
        echo "= failed after $((SECONDS - t0))s" >>"$LOG"
        tail -n 15 "$LOG" >&2
        return 1
    fi
    echo "= ok in $((SECONDS - t0))s" >>"$LOG"
}

# 1. packages ---------------------------------------------------------------
if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || fail "podman not installed and not root (apt-get install podman runc debootstrap)"
    command -v apt-get >/dev/null 2>&1 || fail "podman not installed and no apt-get on this machine"
    run_logged apt-get update -qq || fail "apt-get update failed (see $LOG)"
    run_logged apt-get install -y -qq -o DPkg::Lock::Timeout=300 \
        podman runc debootstrap || fail "apt-get install podman runc debootstrap failed (see $LOG)"
    command -v podman >/dev/null 2>&1 || fail "podman still missing after apt-get install"
fi

# 2. containers.conf: runc (crun refuses hybrid cgroups v1), no default ulimits
#    (podman's default nofile is above this machine's hard limit) ------------
if ! { [ -f "$CONF" ] && grep -Eq '^[[:space:]]*runtime[[:space:]]*=[[:space:]]*"runc"' "$CONF" \
                      && grep -Eq '^[[:space:]]*default_ulimits[[:space:]]*=' "$CONF"; }; then
    if [ -w /etc ] || [ "$(id -u)" = 0 ]; then
        mkdir -p /etc/containers || fail "cannot create /etc/containers"
        [ -f "$CONF" ] && cp -p "$CONF" "$CONF.hpm-backup"
        printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n' >"$CONF" \
            || fail "cannot write $CONF"
    else
        fail "$CONF lacks runtime=\"runc\"/default_ulimits=[] and is not writable"
    fi
fi

# 3. base image -------------------------------------------------------------
if ! podman image exists "$IMAGE" 2>/dev/null; then
    if [ ! -s "$TARBALL" ]; then
        command -v debootstrap >/dev/null 2>&1 || {
            [ "$(id -u)" = 0 ] || fail "debootstrap missing and not root"
            run_logged apt-get install -y -qq -o DPkg::Lock::Timeout=300 debootstrap \
                || fail "apt-get install debootstrap failed (see $LOG)"
        }
        ROOTFS=$(mktemp -d "${TMPDIR:-/tmp}/hpm-rootfs.XXXXXX") || fail "mktemp failed"
        trap 'rm -rf "$ROOTFS"' EXIT
        run_logged debootstrap --variant=minbase --include=python3,ca-certificates \
            "$SUITE" "$ROOTFS" "$MIRROR" \
            || fail "debootstrap $SUITE failed (see $LOG)"
        # Slim it a little: apt lists and caches are not needed in the image.
        rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
               "$ROOTFS"/var/cache/apt/archives/*.deb
        tar --numeric-owner -C "$ROOTFS" -cf "$TARBALL.tmp" . \
            || { rm -f "$TARBALL.tmp"; fail "cannot write rootfs tarball $TARBALL"; }
        mv -f "$TARBALL.tmp" "$TARBALL"
        rm -rf "$ROOTFS"; trap - EXIT
    fi
    run_logged podman import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        "$TARBALL" "$IMAGE" \
        || { rm -f "$TARBALL"; fail "podman import of $TARBALL failed (see $LOG); tarball removed, rerun"; }
fi

# 4. prove that a container really runs (about 0.15 s) ------------------------
out=$(podman run --rm --network=none "$IMAGE" python3 -c 'print("ok")' 2>&1) \
    || fail "podman run of $IMAGE failed: $(echo "$out" | tail -n 1)"
[ "$out" = ok ] || fail "podman run of $IMAGE printed: $(echo "$out" | tail -n 1)"

echo "engine: podman ready"
exit 0
