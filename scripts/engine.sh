#!/usr/bin/env bash
# Make sure a Docker engine answers. Used by every make target that needs containers.
# - If `docker info` already answers, that engine is used as is.
# - Otherwise Debian's docker.io is installed (when dockerd is missing) and dockerd is started in
#   the background, logging to $WEBFLEET_DOCKERD_LOG, and we wait until it answers.
# - The host's inotify limits are raised for many systemd containers (see raise_sysctl).
# Idempotent: running it again when the engine is up does nothing.
set -euo pipefail

LOG=${WEBFLEET_DOCKERD_LOG:-/var/log/webfleet-dockerd.log}
TIMEOUT=${WEBFLEET_DOCKERD_TIMEOUT:-60}

say() { echo "engine: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# Every systemd container holds about six inotify instances (systemd, journald, dbus, ...), all
# counted against the host's root user, and the kernel's default is 128 per user: the 26
# containers of the 24-web-host bench ran out, systemd (PID 1) exited and Docker kept restarting
# those containers. Raise the limits (never lower them) before any container starts.
raise_sysctl() {
    local key=$1 want=$2 have
    have=$(sysctl -n "$key" 2>/dev/null || echo 0)
    if [ "$have" -lt "$want" ]; then
        if [ "$(id -u)" -eq 0 ] && sysctl -qw "$key=$want" 2>/dev/null; then
            say "raised $key from $have to $want (systemd containers need inotify instances)"
        else
            say "WARNING: $key is $have and could not be raised to $want; more than ~20 systemd containers may fail to boot"
        fi
    fi
}
raise_sysctl fs.inotify.max_user_instances 1024
raise_sysctl fs.inotify.max_user_watches 524288

if docker info >/dev/null 2>&1; then
    say "docker engine already answers ($(docker info --format '{{.ServerVersion}}' 2>/dev/null)); using it"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "no docker engine answers and starting one needs root (run as root, or start dockerd yourself)"

if ! command -v dockerd >/dev/null 2>&1; then
    say "dockerd is not installed: installing Debian's docker.io (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed; is Debian's archive reachable?"
    apt-get install -y -qq docker.io >/dev/null || die "apt-get install docker.io failed"
fi

# A stale pid file from a dead dockerd stops a new one from starting.
if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    say "removing stale /var/run/docker.pid"
    rm -f /var/run/docker.pid
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
    say "starting dockerd in the background (log: $LOG)"
    # containerd is started by dockerd itself when not already running.
    nohup dockerd >>"$LOG" 2>&1 </dev/null &
fi

for _ in $(seq 1 "$TIMEOUT"); do
    if docker info >/dev/null 2>&1; then
        say "docker engine ready ($(docker info --format '{{.ServerVersion}}'))"
        exit 0
    fi
    sleep 1
done
say "last lines of $LOG:"
tail -n 20 "$LOG" >&2 || true
die "dockerd did not answer within ${TIMEOUT}s"
