#!/usr/bin/env bash
# A real single-node Kubernetes cluster as local processes, built only from package registries.
# Usage: hack/cluster.sh up | down | status | load IMAGE...
#   up      build what is missing (cached under $LUME_CACHE), start the cluster, write $LUME_STATE/cluster.env
#   down    stop every process it started (by PID), remove pods, mounts, rules and state
#   status  tell what runs (exit 0: all of it, 3: nothing, 1: some of it)
#   load    put locally built Docker images into the node's containerd (what `kind load docker-image` does)
source "$(dirname "$0")/lib.sh"
source "$ROOT/hack/cluster/build.sh"
source "$ROOT/hack/cluster/pki.sh"
# No silent exits under `set -e`: name the command that failed.
set -E
trap 'printf "error: hack/cluster.sh: line %s: %s failed\n" "$LINENO" "$BASH_COMMAND" >&2' ERR

STATE="$LUME_STATE/cluster"
ENV_FILE="$LUME_STATE/cluster.env"
NODE_NAME=lume-node
POD_CIDR=10.244.0.0/16
NODE_POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/12
API_SERVICE_IP=10.96.0.1
DNS_SERVICE_IP=10.96.0.10
API_PORT=6443
ETCD_CLIENT_PORT=2379
ETCD_PEER_PORT=2380
CNI_BRIDGE=lume-cni0
CNI_BIN_DIR=/usr/lib/cni
CONTAINERD_SOCKET="$STATE/containerd/containerd.sock"
# Stopped in this order: the kubelet first so that it restarts nothing, etcd last.
COMPONENTS=(kubelet kube-proxy kube-scheduler kube-controller-manager containerd kube-apiserver etcd)

pid_of() { cat "$STATE/pids/$1.pid" 2>/dev/null || true; }

# running NAME: its recorded PID is alive and still runs the program we started (PIDs get reused).
running() {
  local pid exe
  pid=$(pid_of "$1")
  [ -n "$pid" ] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [ "$(basename "$exe")" = "$1" ]
}

# start NAME PROGRAM ARG...: run detached, log under the state dir, remember the PID.
start() {
  local name=$1
  shift
  mkdir -p "$STATE/logs" "$STATE/pids"
  setsid nohup "$@" >"$STATE/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/pids/$name.pid"
}

# wait_for WHAT SECONDS COMMAND...: poll until COMMAND succeeds; on timeout say which log to read.
wait_for() {
  local what=$1 seconds=$2 deadline
  shift 2
  deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "$what not ready after ${seconds}s; logs are in $STATE/logs"
    sleep 0.5
  done
}

# alive PID: the process exists and has not exited (an exited one lingers until its parent reaps it).
alive() {
  local state
  state=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# stop NAME: SIGTERM, then SIGKILL after a grace period, and wait until it is gone; by PID only.
stop() {
  local pid
  running "$1" || { rm -f "$STATE/pids/$1.pid"; return 0; }
  pid=$(pid_of "$1")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 40); do alive "$pid" || break; sleep 0.25; done
  if alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
  for _ in $(seq 40); do alive "$pid" || break; sleep 0.25; done
  rm -f "$STATE/pids/$1.pid"
}

node_ip() {
  local dev
  dev=$(ip -4 -o route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") print $(i + 1); exit}')
  if [ -n "$dev" ]; then
    ip -4 -o addr show dev "$dev" scope global | awk '{split($4, a, "/"); print a[1]; exit}'
  else
    ip -4 -o addr show scope global | awk '{split($4, a, "/"); print a[1]; exit}'
  fi
}

# render TEMPLATE: substitute the rig's settings (and nothing else, so "$VOL_DIR" stays for the pods).
render() {
  export STATE CONTAINERD_SOCKET PAUSE_IMAGE CNI_BIN_DIR CNI_BRIDGE NODE_POD_CIDR POD_CIDR DNS_SERVICE_IP \
    NODE_NAME COREDNS_IMAGE PROVISIONER_IMAGE BUSYBOX_IMAGE
  envsubst '${STATE} ${CONTAINERD_SOCKET} ${PAUSE_IMAGE} ${CNI_BIN_DIR} ${CNI_BRIDGE} ${NODE_POD_CIDR}
    ${POD_CIDR} ${DNS_SERVICE_IP} ${NODE_NAME} ${COREDNS_IMAGE} ${PROVISIONER_IMAGE} ${BUSYBOX_IMAGE}' <"$1"
}

prepare_host() {
  apt_install containerd runc containernetworking-plugins iptables conntrack socat ethtool \
    gettext-base openssl busybox-static gcc libc6-dev curl iproute2
  # The hosts run cgroup v1 without the hugetlb hierarchy, which the kubelet's QoS cgroups need.
  if [ -d /sys/fs/cgroup/memory ] && ! grep -q ' /sys/fs/cgroup/hugetlb ' /proc/mounts; then
    mkdir -p /sys/fs/cgroup/hugetlb
    mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
  fi
  # Bridged pod-to-pod traffic must pass iptables, or Service replies to pods on the same bridge get lost.
  modprobe br_netfilter 2>/dev/null || true
  [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] ||
    die "the kernel lacks br_netfilter (/proc/sys/net/bridge); Services between pods cannot work"
  echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
  echo 1 >/proc/sys/net/ipv4/ip_forward
}

# ports_free: the ports the cluster listens on are not taken (by another checkout's cluster, say).
ports_free() {
  local port holder
  for port in "$API_PORT" "$ETCD_CLIENT_PORT" "$ETCD_PEER_PORT" 10248 10250 10256 10257 10259; do
    holder=$(ss -Htlnp "sport = :$port" 2>/dev/null | head -1)
    [ -z "$holder" ] || die "port $port is taken ($holder); is another cluster running? stop it first"
  done
}

build_all() {
  local kubernetes
  kubernetes=$("$ROOT/hack/cluster/build-kubernetes.sh")
  K8S_BIN="$kubernetes"
  KUBECTL="$K8S_BIN/kubectl"
  build_tools
  build_images
  HELM=$("$ROOT/hack/helm.sh")
  mkdir -p "$LUME_CACHE/bin"
  ln -sfn "$KUBECTL" "$LUME_CACHE/bin/kubectl"
}

start_etcd() {
  mkdir -p "$STATE/etcd" && chmod 700 "$STATE/etcd"
  start etcd "$K8S_BIN/etcd" --name="$NODE_NAME" --data-dir="$STATE/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --advertise-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="$NODE_NAME=http://127.0.0.1:$ETCD_PEER_PORT" \
    --listen-metrics-urls="" --log-level=warn
}

start_apiserver() {
  local pki="$STATE/pki"
  start kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --bind-address=0.0.0.0 --secure-port="$API_PORT" --advertise-address="$NODE_IP" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$pki/ca.crt" --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true \
    --requestheader-client-ca-file="$pki/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$pki/front-proxy-client.crt" \
    --proxy-client-key-file="$pki/front-proxy-client.key" \
    --profiling=false --v=1
}

start_controllers() {
  local pki="$STATE/pki" kc
  kc="$STATE/controller-manager.kubeconfig"
  start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig="$kc" --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" \
    --bind-address=127.0.0.1 --leader-elect=false --cluster-name=lume \
    --client-ca-file="$pki/ca.crt" --requestheader-client-ca-file="$pki/front-proxy-ca.crt" \
    --root-ca-file="$pki/ca.crt" --service-account-private-key-file="$pki/sa.key" \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
    --use-service-account-credentials=true --controllers='*,bootstrapsigner,tokencleaner' \
    --allocate-node-cidrs=true --cluster-cidr="$POD_CIDR" --node-cidr-mask-size=24 \
    --service-cluster-ip-range="$SERVICE_CIDR" --profiling=false --v=1
  kc="$STATE/scheduler.kubeconfig"
  start kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig="$kc" --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" \
    --bind-address=127.0.0.1 --leader-elect=false --profiling=false --v=1
}

start_containerd() {
  mkdir -p "$STATE/containerd" "$STATE/cni/net.d" "$STATE/pod-logs" "$STATE/volumes"
  render "$ROOT/hack/cluster/templates/containerd.toml" >"$STATE/containerd/config.toml"
  render "$ROOT/hack/cluster/templates/cni.conflist" >"$STATE/cni/net.d/10-lume.conflist"
  start containerd /usr/bin/containerd --config "$STATE/containerd/config.toml"
}

ctr_() { ctr --address "$CONTAINERD_SOCKET" --namespace k8s.io "$@"; }

import_images() {
  local tar
  for tar in "$@"; do
    ctr_ images import "$tar" >/dev/null || die "could not import $tar into the node"
  done
}

# Docker sets the FORWARD policy to DROP: let traffic from and to the pods' bridge through, in a chain of
# ours that `down` removes again.
open_forwarding() {
  iptables -w -N LUME-FORWARD 2>/dev/null || iptables -w -F LUME-FORWARD
  iptables -w -A LUME-FORWARD -i "$CNI_BRIDGE" -m comment --comment "lume cluster pods" -j ACCEPT
  iptables -w -A LUME-FORWARD -o "$CNI_BRIDGE" -m comment --comment "lume cluster pods" -j ACCEPT
  iptables -w -C FORWARD -j LUME-FORWARD 2>/dev/null || iptables -w -I FORWARD 1 -j LUME-FORWARD
}

close_forwarding() {
  while iptables -w -D FORWARD -j LUME-FORWARD 2>/dev/null; do :; done
  iptables -w -F LUME-FORWARD 2>/dev/null || true
  iptables -w -X LUME-FORWARD 2>/dev/null || true
}

start_node() {
  open_forwarding
  mkdir -p "$STATE/kubelet"
  render "$ROOT/hack/cluster/templates/kubelet.yaml" >"$STATE/kubelet/config.yaml"
  start kubelet "$K8S_BIN/kubelet" --config="$STATE/kubelet/config.yaml" \
    --kubeconfig="$STATE/kubelet.kubeconfig" --root-dir="$STATE/kubelet" \
    --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=1
  mkdir -p "$STATE/kube-proxy"
  render "$ROOT/hack/cluster/templates/kube-proxy.yaml" >"$STATE/kube-proxy/config.yaml"
  start kube-proxy "$K8S_BIN/kube-proxy" --config="$STATE/kube-proxy/config.yaml" --v=1
}

write_env() {
  cp "$STATE/admin.kubeconfig" "$STATE/kubeconfig"
  {
    echo "# Written by hack/cluster.sh up: the rig's cluster, and kubectl $("$KUBECTL" version --client \
      -o json | sed -n 's/.*"gitVersion": "\(.*\)".*/\1/p' | head -1) and helm that match it."
    echo "KUBECONFIG=$STATE/kubeconfig"
    echo "PATH=$LUME_CACHE/bin:\$PATH"
  } >"$ENV_FILE"
}

api_ready() { "$KUBECTL" --kubeconfig="$STATE/admin.kubeconfig" get --raw /readyz; }
etcd_ready() { curl -fsS "http://127.0.0.1:$ETCD_CLIENT_PORT/health"; }

all_running() {
  local c
  for c in "${COMPONENTS[@]}"; do running "$c" || return 1; done
}

cmd_up() {
  local started=$SECONDS
  if all_running && [ -s "$ENV_FILE" ] && KUBECTL="$LUME_CACHE/bin/kubectl" api_ready >/dev/null 2>&1; then
    log "the cluster is already running (KUBECONFIG=$STATE/kubeconfig)"
    return 0
  fi
  # Half a cluster (a crash, a reboot) is cleaned away before starting again.
  [ -d "$STATE" ] && cmd_down
  prepare_host
  ports_free
  # A cluster killed without `down` (a machine handed on, another checkout) leaves its bridge behind, with
  # the veths of dead pods holding the addresses the new pods get: start from a fresh bridge.
  if ip link show "$CNI_BRIDGE" >/dev/null 2>&1; then ip link delete "$CNI_BRIDGE"; fi
  build_all
  log "starting the control plane"
  NODE_IP=$(node_ip)
  [ -n "$NODE_IP" ] || die "no global IPv4 address on this machine for the node"
  mkdir -p "$STATE" && chmod 700 "$STATE"
  echo "$K8S_BIN" >"$STATE/bin-dir"
  make_pki
  start_etcd
  start_containerd
  wait_for etcd 60 etcd_ready
  start_apiserver
  wait_for containerd 60 test -S "$CONTAINERD_SOCKET"
  import_images "${IMAGE_TARS[@]}"
  wait_for kube-apiserver 120 api_ready
  start_controllers
  start_node
  write_env
  log "starting the add-ons (CoreDNS, local-path storage)"
  local kubectl=("$KUBECTL" --kubeconfig="$STATE/admin.kubeconfig")
  for addon in coredns local-path-storage; do
    render "$ROOT/hack/cluster/addons/$addon.yaml" | "${kubectl[@]}" apply -f - >/dev/null
  done
  wait_for "node $NODE_NAME registration" 120 "${kubectl[@]}" get node "$NODE_NAME"
  "${kubectl[@]}" wait --for=condition=Ready "node/$NODE_NAME" --timeout=180s >/dev/null ||
    die "node $NODE_NAME is not Ready; logs are in $STATE/logs"
  "${kubectl[@]}" -n kube-system rollout status deployment/coredns --timeout=180s >/dev/null ||
    die "CoreDNS did not become available; see kubectl -n kube-system describe pods"
  "${kubectl[@]}" -n local-path-storage rollout status deployment/local-path-provisioner --timeout=180s \
    >/dev/null || die "the local-path provisioner did not become available"
  log "cluster ready in $((SECONDS - started))s: Kubernetes $("${kubectl[@]}" version -o json |
    sed -n '/serverVersion/,$p' | sed -n 's/.*"gitVersion": "\(.*\)".*/\1/p' | head -1) on node $NODE_NAME"
  cat >&2 <<EOF
Use it with:
  set -a; source $ENV_FILE; set +a
  kubectl get nodes
Load locally built images with: hack/cluster.sh load IMAGE...
EOF
}

# Shim processes of the rig's containerd that survived it (their command line names its socket).
leftover_shims() {
  local dir
  for dir in /proc/[0-9]*; do
    { tr '\0' ' ' <"$dir/cmdline"; } 2>/dev/null | grep -qF -- "-address $CONTAINERD_SOCKET " &&
      echo "${dir#/proc/}"
  done
  return 0
}

cmd_down() {
  local crictl="$LUME_CACHE/tools/crictl-$CRICTL_VERSION" pid mnt
  [ -d "$STATE" ] || { rm -f "$ENV_FILE"; log "no cluster state; nothing to stop"; return 0; }
  log "stopping the cluster"
  stop kubelet
  # Removing the pods through CRI also runs the CNI teardown (addresses, rules, network namespaces).
  if running containerd && [ -x "$crictl" ]; then
    timeout 90 "$crictl" --runtime-endpoint "unix://$CONTAINERD_SOCKET" rmp --all --force >/dev/null 2>&1 ||
      log "could not remove every pod through CRI; killing what is left"
  fi
  stop kube-proxy
  # kube-proxy leaves its iptables rules behind when stopped; its --cleanup mode removes them.
  local kube_proxy
  kube_proxy="$(cat "$STATE/bin-dir" 2>/dev/null)/kube-proxy"
  if [ -x "$kube_proxy" ]; then timeout 60 "$kube_proxy" --cleanup >/dev/null 2>&1 || true; fi
  local c
  for c in "${COMPONENTS[@]}"; do stop "$c"; done
  for pid in $(leftover_shims); do kill -9 "$pid" 2>/dev/null || true; done
  # Pod volumes and container root filesystems are mounted under the state dir: deepest first.
  awk -v s="$STATE/" 'index($5, s) == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
  if ip link show "$CNI_BRIDGE" >/dev/null 2>&1; then ip link delete "$CNI_BRIDGE"; fi
  close_forwarding
  rm -rf "$STATE" "$ENV_FILE"
  log "cluster stopped and its state removed"
}

cmd_status() {
  local c up=0 total=0
  for c in "${COMPONENTS[@]}"; do
    total=$((total + 1))
    if running "$c"; then
      up=$((up + 1))
      printf '%-24s running (pid %s)\n' "$c" "$(pid_of "$c")"
    else
      printf '%-24s stopped\n' "$c"
    fi
  done
  if [ "$up" -gt 0 ] && [ -s "$ENV_FILE" ]; then
    echo "KUBECONFIG=$STATE/kubeconfig"
    "$LUME_CACHE/bin/kubectl" --kubeconfig="$STATE/kubeconfig" --request-timeout=5s get nodes 2>&1 || true
  fi
  # Exit codes report the state; they are not failures to trap.
  trap - ERR
  [ "$up" -eq "$total" ] && return 0
  [ "$up" -eq 0 ] && return 3
  return 1
}

cmd_load() {
  [ $# -gt 0 ] || die "usage: hack/cluster.sh load IMAGE..."
  running containerd || die "the cluster is not running; start it with hack/cluster.sh up"
  "$ROOT/hack/docker.sh"
  local image
  for image in "$@"; do
    docker image inspect "$image" >/dev/null 2>&1 || die "no local Docker image named $image"
    log "loading $image into the node"
    docker save "$image" | ctr_ images import - >/dev/null || die "could not import $image into the node"
  done
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  load) shift; cmd_load "$@" ;;
  *) die "usage: hack/cluster.sh up|down|status|load IMAGE..." ;;
esac
