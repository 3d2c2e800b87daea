#!/usr/bin/env bash
# Put helm into $LUME_CACHE/bin, built once from the Go module proxy (no release downloads reach us).
source "$(dirname "$0")/lib.sh"
HELM_VERSION=${HELM_VERSION:-v3.21.4}
bin="$LUME_CACHE/bin/helm-$HELM_VERSION"
if [ ! -x "$bin" ]; then
  exec 9>"$LUME_CACHE/helm.lock"; flock 9
  if [ ! -x "$bin" ]; then
    log "building helm $HELM_VERSION from the Go module proxy"
    tmp=$(mktemp -d)
    # Stamp the version, or `helm version` and chart kubeVersion checks see a dev build.
    CGO_ENABLED=0 GOBIN="$tmp" go install \
      -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
      "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    mkdir -p "$LUME_CACHE/bin" && mv "$tmp/helm" "$bin" && rm -rf "$tmp"
  fi
fi
ln -sfn "$bin" "$LUME_CACHE/bin/helm"
echo "$LUME_CACHE/bin/helm"
