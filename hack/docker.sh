#!/usr/bin/env bash
# Make a Docker engine available: Debian's docker.io, started in the background (no systemd here).
source "$(dirname "$0")/lib.sh"
docker info >/dev/null 2>&1 && exit 0
exec 9>"$LUME_CACHE/docker.lock"; flock 9   # helpers and scripts may race to start it
docker info >/dev/null 2>&1 && exit 0
apt_install docker.io
log "starting dockerd"
mkdir -p "$LUME_STATE/docker"
setsid nohup dockerd >"$LUME_STATE/docker/dockerd.log" 2>&1 </dev/null &
for _ in $(seq 60); do docker info >/dev/null 2>&1 && exit 0; sleep 1; done
die "dockerd did not start; see $LUME_STATE/docker/dockerd.log"
