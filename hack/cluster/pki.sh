# Certificates and kubeconfigs of the rig's cluster, made with openssl. Sourced by hack/cluster.sh.
# Expects STATE, NODE_NAME, NODE_IP, API_SERVICE_IP, API_PORT and KUBECTL to be set.

# sign NAME CA SUBJECT [SAN]: a key and a certificate signed by CA (client auth, plus server auth with a SAN).
sign() {
  local name=$1 ca=$2 subject=$3 san=${4:-}
  local pki="$STATE/pki" ext
  openssl genrsa -out "$pki/$name.key" 2048 2>/dev/null
  openssl req -new -key "$pki/$name.key" -subj "$subject" -out "$pki/$name.csr" 2>/dev/null
  ext="$pki/$name.ext"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$san" ]; then
      echo "extendedKeyUsage=serverAuth,clientAuth"
      echo "subjectAltName=$san"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } >"$ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/$ca.crt" -CAkey "$pki/$ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr" "$ext"
}

# make_ca NAME CN: a self-signed certificate authority.
make_ca() {
  local pki="$STATE/pki"
  openssl genrsa -out "$pki/$1.key" 2048 2>/dev/null
  openssl req -x509 -new -key "$pki/$1.key" -subj "/CN=$2" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$pki/$1.crt" 2>/dev/null
}

# kubeconfig FILE USER: a kubeconfig that reaches the API server with USER's client certificate.
kubeconfig() {
  local file=$1 user=$2 pki="$STATE/pki"
  "$KUBECTL" config --kubeconfig="$file" set-cluster lume --server="https://127.0.0.1:$API_PORT" \
    --certificate-authority="$pki/ca.crt" --embed-certs=true >/dev/null
  "$KUBECTL" config --kubeconfig="$file" set-credentials "$user" --client-certificate="$pki/$user.crt" \
    --client-key="$pki/$user.key" --embed-certs=true >/dev/null
  "$KUBECTL" config --kubeconfig="$file" set-context lume --cluster=lume --user="$user" >/dev/null
  "$KUBECTL" config --kubeconfig="$file" use-context lume >/dev/null
}

# make_pki: every key, certificate and kubeconfig the control plane and the node need.
make_pki() {
  local pki="$STATE/pki"
  mkdir -p "$pki" && chmod 700 "$pki"
  make_ca ca lume-cluster-ca
  make_ca front-proxy-ca lume-front-proxy-ca
  sign apiserver ca "/CN=kube-apiserver" \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,DNS:$NODE_NAME,IP:127.0.0.1,IP:$NODE_IP,IP:$API_SERVICE_IP"
  sign apiserver-kubelet-client ca "/O=system:masters/CN=kube-apiserver-kubelet-client"
  sign front-proxy-client front-proxy-ca "/CN=front-proxy-client"
  sign admin ca "/O=system:masters/CN=lume-admin"
  sign controller-manager ca "/CN=system:kube-controller-manager"
  sign scheduler ca "/CN=system:kube-scheduler"
  sign kube-proxy ca "/CN=system:kube-proxy"
  sign kubelet ca "/O=system:nodes/CN=system:node:$NODE_NAME"
  sign kubelet-serving ca "/CN=$NODE_NAME" "DNS:$NODE_NAME,DNS:localhost,IP:127.0.0.1,IP:$NODE_IP"
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  for user in admin controller-manager scheduler kube-proxy kubelet; do
    kubeconfig "$STATE/$user.kubeconfig" "$user"
  done
}
