#!/usr/bin/env bash
# Build localhost/lume-base:bookworm (Debian 12 minbase + Python) with debootstrap: nothing is pulled.
source "$(dirname "$0")/lib.sh"
IMAGE=localhost/lume-base:bookworm
"$ROOT/hack/docker.sh"
docker image inspect "$IMAGE" >/dev/null 2>&1 && exit 0
exec 9>"$LUME_CACHE/base-image.lock"; flock 9
docker image inspect "$IMAGE" >/dev/null 2>&1 && exit 0
apt_install debootstrap
# Use the same Debian mirror apt is configured with: it is the one this machine can reach.
mirror=$(grep -rhE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
  | grep -oE 'https?://[^ ]+/debian/?$' | sed -n 1p || true)
[ -n "$mirror" ] || die "no Debian mirror found in apt's sources"
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
log "debootstrap bookworm from $mirror"
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
  bookworm "$rootfs" "$mirror" >"$LUME_STATE/debootstrap.log" 2>&1 \
  || { tail -n 20 "$LUME_STATE/debootstrap.log"; die "debootstrap failed"; }
cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian*}/debian-security bookworm-security main
SOURCES
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
log "built $IMAGE"
