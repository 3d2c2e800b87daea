# Builds of the rig: Go programs from the Go module proxy and the images its pods run, cached by version
# under $LUME_CACHE so that a second `up` (or CI on a fresh clone of the same machine) builds nothing.
# Sourced by hack/cluster.sh.

COREDNS_VERSION=v1.14.7
PROVISIONER_VERSION=v0.0.30
CRICTL_VERSION=v1.34.0
PAUSE_VERSION=3.10

# go_tool NAME PACKAGE VERSION [LDFLAGS]: build PACKAGE@VERSION once; prints the binary's path.
go_tool() {
  local name=$1 package=$2 version=$3 ldflags=${4:-} bin="$LUME_CACHE/tools/$1-$3" tmp
  if [ ! -x "$bin" ]; then
    mkdir -p "$LUME_CACHE/tools"
    exec 8>"$LUME_CACHE/tools/$name.lock"; flock 8
    if [ ! -x "$bin" ]; then
      log "building $name $version from the Go module proxy"
      tmp=$(mktemp -d)
      CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath -ldflags "-s -w $ldflags" "$package@$version" >&2
      mv "$tmp/$(basename "$package")" "$bin" && rm -rf "$tmp"
    fi
    exec 8>&-
  fi
  echo "$bin"
}

build_tools() {
  COREDNS_BIN=$(go_tool coredns github.com/coredns/coredns "$COREDNS_VERSION")
  PROVISIONER_BIN=$(go_tool local-path-provisioner github.com/rancher/local-path-provisioner \
    "$PROVISIONER_VERSION" "-X main.VERSION=$PROVISIONER_VERSION")
  CRICTL=$(go_tool crictl sigs.k8s.io/cri-tools/cmd/crictl "$CRICTL_VERSION" \
    "-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION")
}

# image_tar NAME TAG FILE...: `docker build` images/NAME with FILEs added to its context, saved as a tar
# once per content; prints the tar's path. Docker is only needed when the tar is not cached yet.
image_tar() {
  local name=$1 tag=$2 ref="localhost/lume-$1:$2" key tar ctx
  shift 2
  key=$(cat "$ROOT/images/$name"/* "$@" | sha256sum | cut -c1-12)
  tar="$LUME_CACHE/images/lume-$name-$tag-$key.tar"
  if [ ! -s "$tar" ]; then
    "$ROOT/hack/docker.sh"
    log "building image $ref"
    ctx=$(mktemp -d)
    cp -a "$ROOT/images/$name/." "$@" "$ctx/"
    # The legacy builder needs no buildx plugin; its deprecation notice is noise unless the build fails.
    DOCKER_BUILDKIT=0 docker build -q -t "$ref" "$ctx" >"$ctx.log" 2>&1 || { cat "$ctx.log" >&2; exit 1; }
    rm -f "$ctx.log"
    mkdir -p "$LUME_CACHE/images"
    docker save -o "$tar.tmp" "$ref" && mv "$tar.tmp" "$tar"
    rm -rf "$ctx"
  fi
  echo "$tar"
}

build_images() {
  local ctx busybox_version
  ctx=$(mktemp -d)
  gcc -static -O2 -o "$ctx/pause" "$ROOT/images/pause/pause.c"
  PAUSE_IMAGE="localhost/lume-pause:$PAUSE_VERSION"
  IMAGE_TARS=("$(image_tar pause "$PAUSE_VERSION" "$ctx/pause")")
  COREDNS_IMAGE="localhost/lume-coredns:$COREDNS_VERSION"
  cp "$COREDNS_BIN" "$ctx/coredns"
  IMAGE_TARS+=("$(image_tar coredns "$COREDNS_VERSION" "$ctx/coredns")")
  PROVISIONER_IMAGE="localhost/lume-local-path-provisioner:$PROVISIONER_VERSION"
  cp "$PROVISIONER_BIN" "$ctx/local-path-provisioner"
  IMAGE_TARS+=("$(image_tar local-path-provisioner "$PROVISIONER_VERSION" "$ctx/local-path-provisioner")")
  busybox_version=$(dpkg-query -W -f '${Version}' busybox-static | sed -E 's/^[0-9]+://; s/-.*//')
  BUSYBOX_IMAGE="localhost/lume-busybox:$busybox_version"
  cp /bin/busybox "$ctx/busybox"
  IMAGE_TARS+=("$(image_tar busybox "$busybox_version" "$ctx/busybox")")
  rm -rf "$ctx"
}
