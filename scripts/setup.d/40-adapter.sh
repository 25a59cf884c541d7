#!/usr/bin/env bash
# kis-adapter tests: Debian's kubectl (package kubernetes-client, 1.20.2) for the
# `kubectl get --raw` end-to-end test, and openssl for deploy/gen-certs.sh.
# kubectl is unpacked under $KIS_CACHE (lib.sh's debian_kubectl); the test runs
# $KIS_CACHE/debian-kubectl/usr/bin/kubectl.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
apt_install openssl
debian_kubectl >/dev/null
