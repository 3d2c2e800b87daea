#!/usr/bin/env bash
# Build the platform image and the stand-ins for official images (cached by a hash of their inputs), and
# load them into the rig's cluster.
#   hack/images.sh build [NAME...]   build what changed (NAME: platform, mariadb, ferretdb; default all)
#   hack/images.sh load  [NAME...]   build, then `hack/cluster.sh load` the images
#   hack/images.sh refs  [NAME...]   print the image references
source "$(dirname "$0")/lib.sh"

# The tag the e2e values file (charts/lume-platform/ci/e2e-values.yaml) installs; content changes are
# tracked by the dev.lume.inputs label, not by the tag.
TAG=${LUME_IMAGE_TAG:-dev}
BASE_IMAGE=${LUME_BASE_IMAGE:-localhost/lume-base:bookworm}
FERRETDB_VERSION=v1.24.2
ALL=(platform mariadb ferretdb)

ref() { echo "localhost/lume-$1:$TAG"; }

# copy_tree DEST PATH...: copy repository paths into a build context, without caches and build output.
copy_tree() {
  local dest=$1; shift
  mkdir -p "$dest"
  tar -C "$ROOT" -c --exclude=__pycache__ --exclude='*.egg-info' --exclude='*.pyc' --exclude=.pytest_cache \
    "$@" | tar -C "$dest" -x
}

# The host's extra CA certificates go into every build: HTTPS from containers may pass an intercepting
# proxy here. LUME_EXTRA_CA_DIR points elsewhere; an empty or missing directory adds nothing.
add_extra_cas() {
  local dest=$1/images/extra-ca-certificates src=${LUME_EXTRA_CA_DIR:-/usr/local/share/ca-certificates}
  mkdir -p "$dest"
  cp "$ROOT/images/extra-ca-certificates/README.md" "$dest/"
  if compgen -G "$src/*.crt" >/dev/null; then cp "$src"/*.crt "$dest/"; fi
}

# ferretdb_binary: FerretDB built from the Go module proxy once per version. The module as served lacks
# its generated version file, without which the binary panics at start; it is written before building.
ferretdb_binary() {
  local out="$LUME_CACHE/images/ferretdb-$FERRETDB_VERSION/ferretdb"
  if [ ! -x "$out" ]; then
    exec 8>"$LUME_CACHE/images-ferretdb.lock"; flock 8
    if [ ! -x "$out" ]; then
      log "building FerretDB $FERRETDB_VERSION from the Go module proxy"
      local tmp dir
      tmp=$(mktemp -d)
      dir=$(cd "$tmp" && go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" \
        | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
      [ -d "$dir" ] || die "go mod download gave no directory for FerretDB $FERRETDB_VERSION"
      cp -r "$dir" "$tmp/src" && chmod -R u+w "$tmp/src"
      echo "$FERRETDB_VERSION" > "$tmp/src/build/version/version.txt"
      # Static: the image has no Go runtime dependencies to offer (SQLite is pure Go in FerretDB).
      (cd "$tmp/src" && CGO_ENABLED=0 go build -trimpath -o "$tmp/ferretdb" ./cmd/ferretdb)
      mkdir -p "$(dirname "$out")" && mv "$tmp/ferretdb" "$out" && rm -rf "$tmp"
    fi
    exec 8>&-
  fi
  echo "$out"
}

# context NAME DIR: assemble the build context of one image (laid out like the repository).
context() {
  local name=$1 ctx=$2
  case "$name" in
    platform) copy_tree "$ctx" pyproject.toml constraints.txt README.md lume_platform operator examples \
                images/platform ;;
    mariadb)  copy_tree "$ctx" images/mariadb ;;
    ferretdb) copy_tree "$ctx" images/ferretdb && cp "$(ferretdb_binary)" "$ctx/images/ferretdb/ferretdb" ;;
    *) die "unknown image '$name' (known: ${ALL[*]})" ;;
  esac
  add_extra_cas "$ctx"
}

build_one() {
  local name=$1 image ctx inputs have
  image=$(ref "$name")
  ctx=$(mktemp -d)
  context "$name" "$ctx"
  # The hash covers every file of the context and the base image's id: a rebuild happens exactly when
  # one of them changed.
  inputs=$( (cd "$ctx" && find . -type f -print0 | sort -z | xargs -0 sha256sum; \
             docker image inspect -f '{{.Id}}' "$BASE_IMAGE") | sha256sum | cut -c1-16)
  have=$(docker image inspect -f '{{ index .Config.Labels "dev.lume.inputs" }}' "$image" 2>/dev/null || true)
  if [ "$have" = "$inputs" ]; then
    log "$image is up to date ($inputs)"
  else
    log "building $image ($inputs)"
    local started=$SECONDS buildlog="$LUME_STATE/images/$name.build.log"
    mkdir -p "$LUME_STATE/images"
    # The legacy builder: Debian's engine has no BuildKit, and it needs nothing but the local base image.
    DOCKER_BUILDKIT=0 docker build --build-arg "BASE_IMAGE=$BASE_IMAGE" --label "dev.lume.inputs=$inputs" \
      -f "$ctx/images/$name/Dockerfile" -t "$image" "$ctx" >"$buildlog" 2>&1 \
      || { tail -n 30 "$buildlog"; rm -rf "$ctx"; die "building $image failed (log: $buildlog)"; }
    log "built $image in $((SECONDS - started)) s"
  fi
  rm -rf "$ctx"
}

cmd=${1:-build}; shift || true
names=("$@"); [ ${#names[@]} -gt 0 ] || names=("${ALL[@]}")
case "$cmd" in
  refs) for n in "${names[@]}"; do ref "$n"; done; exit 0 ;;
  build|load) ;;
  *) die "usage: hack/images.sh build|load|refs [${ALL[*]}]" ;;
esac

"$ROOT/hack/docker.sh"
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  [ "$BASE_IMAGE" = localhost/lume-base:bookworm ] || die "base image $BASE_IMAGE not found"
  "$ROOT/hack/base-image.sh"
fi
# One build at a time: concurrent callers would both rebuild the same image on 2 cores.
exec 9>"$LUME_CACHE/images.lock"; flock 9
for n in "${names[@]}"; do build_one "$n"; done
if [ "$cmd" = load ]; then
  refs=(); for n in "${names[@]}"; do refs+=("$(ref "$n")"); done
  log "loading ${refs[*]} into the cluster"
  "$ROOT/hack/cluster.sh" load "${refs[@]}"
fi
