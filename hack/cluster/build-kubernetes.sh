#!/usr/bin/env bash
# Build the Kubernetes server binaries, kubectl and etcd from the Go module proxy, once per version.
# Prints the directory that holds them. The tools module beside this script pins the release.
source "$(dirname "$0")/../lib.sh"
module_dir="$ROOT/hack/cluster/kubernetes"
K8S_VERSION=$(awk '$1 == "k8s.io/kubernetes" {print $2}' "$module_dir/go.mod")
# The module's hash is part of the key, so a changed pin never reuses stale binaries.
key="$K8S_VERSION-$(cat "$module_dir/go.mod" "$module_dir/go.sum" | sha256sum | cut -c1-12)"
out="$LUME_CACHE/kubernetes/$key"
programs=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl etcd)

built() { for p in "${programs[@]}"; do [ -x "$out/$p" ] || return 1; done; }
if ! built; then
  mkdir -p "$LUME_CACHE/kubernetes"
  exec 9>"$LUME_CACHE/kubernetes/build.lock"; flock 9
  if ! built; then
    log "building Kubernetes $K8S_VERSION and etcd from the Go module proxy (several minutes on 2 cores)"
    minor=$(echo "$K8S_VERSION" | cut -d. -f2)
    # Without the stamp the API server reports v0.0.0-master, which breaks kubectl, helm's kubeVersion
    # checks and client discovery.
    stamp=""
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      stamp+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
      stamp+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    tmp="$out.tmp"
    rm -rf "$tmp" && mkdir -p "$tmp"
    (cd "$module_dir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w$stamp" -o "$tmp/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy \
      k8s.io/kubernetes/cmd/kubectl go.etcd.io/etcd/server/v3)
    # Go names a binary after the last path element that is not a major-version suffix.
    mv "$tmp/server" "$tmp/etcd"
    rm -rf "$out" && mv "$tmp" "$out"
  fi
fi
echo "$out"
