#!/usr/bin/env bash
# Generates a CA and a serving certificate for kis-adapter, and writes to OUT:
#   ca.crt ca.key tls.crt tls.key token     the material itself
#   secrets.yaml                            Secrets kis-adapter-tls and kis-adapter-publish-token,
#                                           and kis-agent/kis-agent-adapter (the same token and
#                                           ca.crt, for the agent: Secrets do not cross namespaces)
#   apiservice.yaml                         deploy/apiservice.yaml with spec.caBundle filled in
# Usage: deploy/gen-certs.sh OUT [SERVICE] [NAMESPACE] [DAYS]
# This operator-facing script uses the openssl command because it runs where there is no Rust
# toolchain (an admin's shell, a CI job); everything inside the workspace (the adapter's
# --self-signed, its tests and benches, kis-e2e's control-plane PKI) uses kis_adapter::pki (rcgen).
set -euo pipefail
out="${1:?usage: gen-certs.sh OUT [SERVICE] [NAMESPACE] [DAYS]}"
svc="${2:-kis-adapter}"
ns="${3:-kis-system}"
days="${4:-365}"
here="$(cd "$(dirname "$0")" && pwd)"
command -v openssl >/dev/null || { echo "gen-certs.sh: openssl not found (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$out"
cd "$out"
umask 077
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days "$days" \
  -subj "/CN=kis-adapter-ca" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout tls.key -out tls.csr -subj "/CN=${svc}.${ns}.svc" 2>/dev/null
printf 'subjectAltName=DNS:%s,DNS:%s.%s,DNS:%s.%s.svc,DNS:%s.%s.svc.cluster.local,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE\n' \
  "$svc" "$svc" "$ns" "$svc" "$ns" "$svc" "$ns" > tls.ext
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out tls.crt -days "$days" \
  -extfile tls.ext 2>/dev/null
rm -f tls.csr tls.ext ca.srl
[ -f token ] || openssl rand -hex 32 > token
b64() { base64 -w0 < "$1"; }
cat > secrets.yaml <<YAML
apiVersion: v1
kind: Secret
metadata: {name: ${svc}-tls, namespace: ${ns}}
type: kubernetes.io/tls
data:
  tls.crt: $(b64 tls.crt)
  tls.key: $(b64 tls.key)
---
apiVersion: v1
kind: Secret
metadata: {name: ${svc}-publish-token, namespace: ${ns}}
type: Opaque
data:
  token: $(b64 token)
---
apiVersion: v1
kind: Secret
metadata: {name: kis-agent-adapter, namespace: ${AGENT_NAMESPACE:-kis-agent}}
type: Opaque
data:
  token: $(b64 token)
  ca.crt: $(b64 ca.crt)
YAML
sed -e "s/^\(    name: \)kis-adapter$/\1${svc}/" -e "s/^\(    namespace: \)kis-system$/\1${ns}/" \
  "$here/apiservice.yaml" > apiservice.yaml
printf '  caBundle: %s\n' "$(b64 ca.crt)" >> apiservice.yaml
echo "wrote $out: ca.crt tls.crt tls.key token secrets.yaml apiservice.yaml" >&2
