#!/usr/bin/env bash
# Build the webfleet base images offline: debootstrap Debian 12 (bookworm) and 13 (trixie) with
# systemd as init, then `docker import`. Each image is tagged with a hash of this recipe, so it is
# rebuilt only when the recipe changes; `webfleet/debian:<ver>` always points at the current one.
#
#   images/build.sh            build whatever is missing
#   images/build.sh --force    rebuild both
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
MIRROR=${WEBFLEET_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${WEBFLEET_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# What every host needs before Ansible can manage it; the roles install the rest.
INCLUDE=systemd,systemd-sysv,dbus,python3,python3-apt,ca-certificates,iproute2,procps,curl,openssl,gnupg,cron,nftables,less
FORCE=${1:-}

say() { echo "images: $*" >&2; }

# The recipe: this script plus the include list and mirrors. Any change gives new tags.
RECIPE_HASH=$( (cat "$0"; echo "$INCLUDE $MIRROR $SECURITY_MIRROR") | sha256sum | cut -c1-12)

build_one() {
    local version=$1 suite=$2
    local tag="webfleet/debian:${version}-${RECIPE_HASH}"
    if [ "$FORCE" != "--force" ] && docker image inspect "$tag" >/dev/null 2>&1; then
        say "$tag is current; not rebuilding"
        docker tag "$tag" "webfleet/debian:${version}"
        return 0
    fi
    local root
    root=$(mktemp -d "/var/tmp/webfleet-rootfs-${suite}.XXXXXX")
    trap 'rm -rf "$root"' RETURN
    say "debootstrap $suite into $root (takes a few minutes)"
    debootstrap --variant=minbase --include="$INCLUDE" "$suite" "$root" "$MIRROR" \
        >"$root.log" 2>&1 || { tail -n 30 "$root.log" >&2; say "debootstrap $suite failed"; return 1; }
    rm -f "$root.log"

    # Debian 12 needs the security and updates suites listed; so does 13.
    cat >"$root/etc/apt/sources.list" <<SRC
deb $MIRROR $suite main
deb $MIRROR $suite-updates main
deb $SECURITY_MIRROR $suite-security main
SRC
    # Containers have no console, no udev, no real clock: mask what cannot work there.
    for unit in getty.target console-getty.service systemd-udevd.service systemd-udev-trigger.service \
                systemd-firstboot.service sys-kernel-debug.mount \
                sys-kernel-tracing.mount systemd-remount-fs.service; do
        ln -sf /dev/null "$root/etc/systemd/system/$unit"
    done
    ln -sf /lib/systemd/system/multi-user.target "$root/etc/systemd/system/default.target"
    # /tmp is a fresh tmpfs in every container. Debian empties it at boot ("D /tmp"), which races
    # with the first Ansible task after a container starts: its module payload lives in /tmp and
    # vanished under load (a Molecule prepare failed that way). Keep the directory, skip the wipe.
    mkdir -p "$root/etc/tmpfiles.d"
    echo 'd /tmp 1777 root root -' >"$root/etc/tmpfiles.d/tmp.conf"
    : >"$root/etc/machine-id"
    echo 'APT::Install-Recommends "false";' >"$root/etc/apt/apt.conf.d/90webfleet-norecommends"
    # Many containers fetching at once (the 24-web-host bench) saw a transient "Temporary failure
    # resolving deb.debian.org"; apt retries a failed fetch instead of failing the converge.
    echo 'Acquire::Retries "5";' >"$root/etc/apt/apt.conf.d/90webfleet-retries"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

    say "docker import -> $tag"
    tar -C "$root" -c . | docker import \
        --change 'CMD ["/sbin/init"]' \
        --change 'ENV container=docker' \
        --change "LABEL org.webfleet.recipe=${RECIPE_HASH}" \
        - "$tag" >/dev/null
    docker tag "$tag" "webfleet/debian:${version}"
    say "built $tag"
}

"$HERE/../scripts/engine.sh"
# Installed once, before the two builds fork: two apt-gets at once fight over dpkg's lock.
command -v debootstrap >/dev/null || {
    say "installing debootstrap"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
build_one 12 bookworm &
p12=$!
build_one 13 trixie &
p13=$!
rc=0
wait $p12 || rc=1
wait $p13 || rc=1
exit $rc
